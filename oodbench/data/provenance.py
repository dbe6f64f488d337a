"""Per-sample provenance: where each image of an :class:`~oodbench.data.ImageSet` came from.

A sample's provenance is (source, index): the split it was read from (``"mnist/test"``, an image folder's
resolved path, ``"gaussian/seed=1/1×28×28"``) and its position there. Subsets, class selections, format
conversions, corruptions and derived sets (``cifar10-jpeg-bw`` is ``cifar10-jpeg``'s test split in grey)
keep it, so two sets can be checked for shared samples whatever their names (issue 11: tuning and
evaluation must never share a sample). Exact duplicates by *content* are a separate, weaker fact
(:func:`content_keys`): a dataset may hold the same image twice; those are reported, not refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Provenance:
    """``source[i]`` indexes ``sources``; ``index[i]`` is the sample's position in that source."""

    sources: tuple[str, ...]
    source: torch.Tensor  # int64 (N,)
    index: torch.Tensor  # int64 (N,)

    @classmethod
    def origin(cls, source: str, n: int) -> Provenance:
        """``n`` samples read in order from one source."""
        return cls((source,), torch.zeros(n, dtype=torch.long), torch.arange(n, dtype=torch.long))

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, index: torch.Tensor) -> Provenance:
        return Provenance(self.sources, self.source[index], self.index[index])

    def cat(self, other: Provenance) -> Provenance:
        """This set's samples followed by ``other``'s."""
        table = {s: i for i, s in enumerate(self.sources)}
        for s in other.sources:
            table.setdefault(s, len(table))
        remap = torch.tensor([table[s] for s in other.sources], dtype=torch.long)
        return Provenance(
            tuple(table), torch.cat([self.source, remap[other.source]]), torch.cat([self.index, other.index])
        )

    def keys(self, table: dict[str, int]) -> torch.Tensor:
        """One int64 per sample, unique across every source named in ``table`` (extended in place)."""
        for s in self.sources:
            table.setdefault(s, len(table))
        ids = torch.tensor([table[s] for s in self.sources], dtype=torch.long)
        return (ids[self.source] << 40) | self.index

    def describe(self) -> str:
        """Source names with their sample counts, e.g. ``mnist/test: 9000``."""
        counts = torch.bincount(self.source, minlength=len(self.sources)).tolist()
        return ", ".join(f"{s}: {c}" for s, c in zip(self.sources, counts) if c)


def shared(a: Provenance, b: Provenance) -> torch.Tensor:
    """Boolean mask over ``a``: the samples whose provenance also occurs in ``b``."""
    table: dict[str, int] = {}
    ka, kb = a.keys(table), b.keys(table)
    return torch.isin(ka, kb)


def union(parts: list[Provenance]) -> Provenance:
    out = parts[0]
    for p in parts[1:]:
        out = out.cat(p)
    return out


_WEIGHTS: dict[int, torch.Tensor] = {}


def content_keys(images: torch.Tensor) -> torch.Tensor:
    """A 64-bit hash of each image's bytes (equal images, equal keys; distinct ones collide with probability
    about 2⁻⁶³ per pair). Vectorised: a dot product with fixed random odd weights, wrapping modulo 2⁶⁴."""
    if hasattr(images, "content_keys"):  # streamed files (oodbench.data.streams): a hash of each file's bytes
        return images.content_keys()
    flat = images.reshape(len(images), -1)
    d = flat.shape[1]
    if d not in _WEIGHTS:
        g = torch.Generator().manual_seed(d)
        _WEIGHTS[d] = torch.randint(-(2**62), 2**62, (d,), generator=g, dtype=torch.long) * 2 + 1
    keys = torch.zeros(len(flat), dtype=torch.long)
    for start in range(0, len(flat), 4096):  # bounded memory: a (4096 × D) int64 block at a time
        block = flat[start : start + 4096].long()
        keys[start : start + 4096] = (block * _WEIGHTS[d]).sum(1)
    return keys
