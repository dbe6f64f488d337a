"""Synthetic images drawn batch by batch from a per-sample seed: what a noise OOD set holds when its images are too
large to hold whole (issue 31: 10,000 Gaussian images at 3×224×224 drawn as one float32 tensor, plus two
temporaries of the same size, took 18 GB).

Sample ``i`` is drawn by its own ``torch.Generator`` seeded from (the set's seed, ``i``), so its pixels do not
depend on the batch size, on the subset it is read in, or on the other samples; a batch is the stack of its
samples' draws. The loop over a batch's samples launches one generator call per image (~150k values at 224×224),
not per pixel.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch

from oodbench.data.streams import Streamed

#: ``draw(shape, generator)``: float pixels of ``shape`` (leading 1: one sample), clamped to [0, 1] by the caller
Draw = Callable[[tuple[int, ...], torch.Generator], torch.Tensor]


def quantised(pixels: torch.Tensor) -> torch.Tensor:
    """Float pixels → uint8, in place on ``pixels`` (no temporary of its size): clamp to [0, 1], ×255, round."""
    return pixels.clamp_(0, 1).mul_(255).round_().to(torch.uint8)


def sample_seed(seed: int, index: int) -> int:
    """Sample ``index``'s generator seed: distinct for every (seed, index) below 2**32 samples."""
    return (seed << 32) + index


class _Batches:
    """``split(n)`` of a generated or transformed set: a sized iterable (progress bars know the total) over
    ``make()``'s batches, made as they are consumed."""

    def __init__(self, length: int, batch_size: int, make: Callable[[], Iterator[torch.Tensor]]):
        self.length, self.batch_size, self.make = length, batch_size, make

    def __len__(self) -> int:
        return math.ceil(self.length / self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.make()


@dataclass(frozen=True, eq=False)
class GeneratedImages(Streamed):
    """``len(index)`` images of ``image_shape`` drawn by ``draw`` from per-sample seeds (see the module doc)."""

    draw: Draw
    kind: str
    seed: int
    index: tuple[int, ...]
    image_shape: tuple[int, int, int]

    @classmethod
    def of(cls, draw: Draw, kind: str, seed: int, size: int, shape: Sequence[int]) -> GeneratedImages:
        return cls(draw, kind, seed, tuple(range(size)), tuple(shape))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), *self.image_shape))

    def __getitem__(self, index: torch.Tensor | Sequence[int]) -> GeneratedImages:
        picked = torch.as_tensor(index, dtype=torch.long).tolist()
        return replace(self, index=tuple(self.index[i] for i in picked))

    def one(self, i: int) -> torch.Tensor:
        """Sample ``i`` as uint8 ``C×H×W``, drawn from its own seed."""
        g = torch.Generator().manual_seed(sample_seed(self.seed, i))
        return quantised(self.draw((1, *self.image_shape), g))[0]

    def batch(self, index: Sequence[int]) -> torch.Tensor:
        out = torch.empty((len(index), *self.image_shape), dtype=torch.uint8)
        for row, i in enumerate(index):
            out[row] = self.one(i)
        return out

    def split(self, batch_size: int, device: torch.device | None = None) -> _Batches:
        """uint8 batches on the CPU, drawn as they are consumed (at most one batch held)."""
        index = self.index
        starts = range(0, len(index), batch_size)
        return _Batches(len(self), batch_size, lambda: (self.batch(index[s : s + batch_size]) for s in starts))

    def to_shape(self, shape: tuple[int, int, int]) -> GeneratedImages:
        """The same samples drawn at another C×H×W (noise has no geometry to resize: it is drawn at that shape)."""
        return replace(self, image_shape=tuple(shape))

    def with_geometry(self, data_config: dict) -> GeneratedImages:
        return self  # drawn at the input shape: no resize or crop to follow

    def describe(self) -> str:
        c, h, w = self.image_shape
        return f"generated per sample (seed {self.seed}, one generator per image), {c}×{h}×{w}, drawn in batches"

    def fingerprint(self) -> str:
        key = repr((self.kind, self.seed, self.image_shape, self.index))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def content_keys(self) -> torch.Tensor:
        """One key per sample from (kind, seed, shape, sample): two draws share a key only if they are one draw."""
        head = repr((self.kind, self.seed, self.image_shape)).encode()
        digests = (hashlib.blake2b(head + i.to_bytes(8, "little"), digest_size=8).digest() for i in self.index)
        keys = [int.from_bytes(d, "little", signed=True) for d in digests]
        return torch.tensor(keys, dtype=torch.long)


#: ``change(pixels, generator)``: one sample's float pixels (``1×C×H×W`` in [0, 1]) changed, clamped by the caller
Change = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True, eq=False)
class TransformedImages(Streamed):
    """A streamed set with each sample changed by ``change`` (a corruption, a patch shuffle) as its batches are
    produced: sample ``i`` from its own generator seeded from (``seed``, ``i``), ``i`` its position in the set it
    was made from, so a subset or another batch size changes nothing. Held: one batch."""

    source: Streamed
    change: Change
    kind: str
    seed: int
    index: tuple[int, ...]

    @classmethod
    def of(cls, source: Streamed, change: Change, kind: str, seed: int) -> TransformedImages:
        return cls(source, change, kind, seed, tuple(range(len(source))))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> torch.Size:
        return self.source.shape

    def __getitem__(self, index: torch.Tensor | Sequence[int]) -> TransformedImages:
        picked = torch.as_tensor(index, dtype=torch.long)
        return replace(self, source=self.source[picked], index=tuple(self.index[i] for i in picked.tolist()))

    def batch(self, images: torch.Tensor, index: Sequence[int]) -> torch.Tensor:
        out = torch.empty_like(images)
        for row, i in enumerate(index):
            g = torch.Generator().manual_seed(sample_seed(self.seed, i))
            out[row] = quantised(self.change(images[row : row + 1].float() / 255, g))[0]
        return out

    def split(self, batch_size: int, device: torch.device | None = None) -> _Batches:
        """uint8 batches on the CPU (the source's, decoded there, then changed)."""
        starts = range(0, len(self), batch_size)

        def make() -> Iterator[torch.Tensor]:
            for start, batch in zip(starts, self.source.split(batch_size)):
                yield self.batch(batch, self.index[start : start + batch_size])

        return _Batches(len(self), batch_size, make)

    def to_shape(self, shape: tuple[int, int, int]) -> TransformedImages:
        return replace(self, source=self.source.to_shape(shape))

    def with_geometry(self, data_config: dict) -> TransformedImages:
        return replace(self, source=self.source.with_geometry(data_config))

    def describe(self) -> str:
        return f"{self.source.describe()}; {self.kind} per sample (seed {self.seed}, one generator per image)"

    def fingerprint(self) -> str:
        key = repr((self.source.fingerprint(), self.kind, self.seed, self.index))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def content_keys(self) -> torch.Tensor:
        """The source's keys mixed with (kind, seed): a changed copy is not its source image."""
        mix = int.from_bytes(hashlib.blake2b(repr((self.kind, self.seed)).encode(), digest_size=8).digest(), "little")
        return self.source.content_keys() ^ (mix >> 1)
