"""Datasets as in-memory image tensors, the data root, and format conversion.

Every dataset loads to an :class:`ImageSet`: uint8 images ``(N, C, H, W)`` plus int64
labels (``-1`` where a set has none). Models see float images in ``[0, 1]``; each backbone
normalises internally, so detectors, noise sets and input perturbations all live in pixel
space.
"""

from __future__ import annotations

import contextvars
import functools
import os
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from oodbench.core.errors import DataNotFoundError, UsageError
from oodbench.data.provenance import Provenance
from oodbench.data.streams import Streamed, is_streamed

DATA_ENV = "OODBENCH_DATA"
CACHE_ENV = "OODBENCH_CACHE"


def to_float(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 images → float ``[0, 1]`` on ``device`` (what every model sees)."""
    return images.to(device, non_blocking=True).float().div_(255.0)


def cache_dir() -> Path:
    """Per-user cache (checkpoints, decoded image folders): ``$OODBENCH_CACHE`` or ``~/.cache/oodbench``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "oodbench"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """``--data-root``, then ``$OODBENCH_DATA``, then ``<cache>/data``. A named root must exist."""
    for value, origin in ((data_root, "--data-root"), (os.environ.get(DATA_ENV), f"${DATA_ENV}")):
        if value:
            root = Path(value).expanduser().resolve()
            if not root.is_dir():
                raise UsageError(f"data root {str(root)!r} (from {origin}) is not a directory")
            return root
    return cache_dir() / "data"


@dataclass(frozen=True)
class ImageSet:
    """Images (uint8, N×C×H×W) and labels (int64, N; -1 = unlabelled) of one split."""

    images: torch.Tensor | Streamed  # Streamed: decoded or generated in batches (oodbench.data.streams)
    labels: torch.Tensor
    name: str
    classes: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())  # provenance and conversions, recorded in results
    #: where each sample came from (source split, index); None until stamped at load (:meth:`stamped`)
    provenance: Provenance | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"{self.name}: images must be uint8 N×C×H×W, got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if len(self.labels) != len(self.images):
            raise ValueError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")
        if self.provenance is not None and len(self.provenance) != len(self.images):
            raise ValueError(f"{self.name}: {len(self.images)} images but {len(self.provenance)} provenance entries")

    def stamped(self, source: str) -> ImageSet:
        """This set with each sample's provenance, ``(source, position)``, unless a loader already gave one."""
        if self.provenance is not None:
            return self
        return replace(self, provenance=Provenance.origin(source, len(self)))

    def derive(
        self, images: torch.Tensor, name: str | None = None, note: str | None = None, labels: torch.Tensor | None = None
    ) -> ImageSet:
        """A set whose sample ``i`` is a transformed copy of this set's sample ``i`` (inverted, rotated,
        corrupted, resized …): it keeps this set's per-sample provenance, so the leakage check knows the copies
        of an evaluated image and keeps them out of tuning. ``labels`` default to this set's."""
        if len(images) != len(self):
            raise ValueError(f"{self.name}: derive takes one image per sample ({len(self)}), got {len(images)}")
        notes = self.notes + ((note,) if note else ())
        labels = self.labels if labels is None else labels
        return replace(self, images=images, labels=labels, name=name or self.name, notes=notes)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def fingerprint(self) -> str:
        """Content hash of images and labels (keys the on-disk feature cache)."""
        import hashlib

        if is_streamed(self.images):
            return hashlib.sha256(f"{self.images.fingerprint()}|".encode() + self.labels.numpy().tobytes()).hexdigest()[
                :16
            ]
        h = hashlib.sha256()
        h.update(str(tuple(self.images.shape)).encode())
        h.update(self.images.contiguous().numpy().tobytes())
        h.update(self.labels.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else int(self.labels.max()) + 1

    def subset(self, index: torch.Tensor, note: str | None = None) -> ImageSet:
        notes = self.notes + ((note,) if note else ())
        prov = self.provenance.subset(index) if self.provenance is not None else None
        return replace(self, images=self.images[index], labels=self.labels[index], notes=notes, provenance=prov)

    def head(self, limit: int | None, seed: int = 0) -> ImageSet:
        """A seeded random subset of ``limit`` samples (all of them if ``limit`` is None or larger)."""
        if limit is None or limit >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(self), generator=g)[:limit].sort().values
        return self.subset(index, f"random subset of {limit} (seed {seed})")

    def concat(self, others: list[ImageSet], name: str, note: str) -> ImageSet:
        """This set followed by ``others`` (same format; in memory), each sample keeping its provenance."""
        for part in (self, *others):
            if is_streamed(part.images):
                raise UsageError(f"{part.name} is streamed; concatenating sets needs them in memory")
        provs = [p.provenance for p in (self, *others)]
        prov = None
        if all(p is not None for p in provs):
            prov = provs[0]
            for p in provs[1:]:
                prov = prov.cat(p)
        images = torch.cat([self.images, *(o.images for o in others)])
        labels = torch.cat([self.labels, *(o.labels for o in others)])
        return replace(self, images=images, labels=labels, name=name, notes=self.notes + (note,), provenance=prov)

    def with_classes(self, keep: list[int]) -> ImageSet:
        """Samples of the given classes only, relabelled 0..len(keep)-1 in the given order."""
        mapping = torch.full((int(self.labels.max()) + 1,), -1, dtype=torch.long)
        mapping[torch.tensor(keep)] = torch.arange(len(keep))
        index = torch.nonzero(mapping[self.labels] >= 0).flatten()
        out = self.subset(index, f"classes {keep}")
        names = tuple(self.classes[k] for k in keep) if self.classes else ()
        return replace(out, labels=mapping[out.labels], classes=names)

    def to_format(self, shape: tuple[int, int, int]) -> ImageSet:
        """Convert to another C×H×W (channel repeat / luminance, bilinear antialiased resize)."""
        if self.shape == tuple(shape):
            return self
        if is_streamed(self.images):
            if shape[0] not in (1, 3):
                raise UsageError(f"cannot stream {self.name} as {shape[0]} channels (only 1 or 3)")
            images = self.images.to_shape(tuple(shape))
            return replace(self, images=images, notes=self.notes + (images.describe(),))
        c, h, w = shape
        x = self.images
        steps = []
        if x.shape[1] != c:
            if x.shape[1] == 1:
                x = x.expand(-1, c, -1, -1)
                steps.append(f"grey→{c} channels (repeat)")
            elif c == 1 and x.shape[1] == 3:
                weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
                x = (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
                steps.append("RGB→grey (ITU-R 601 luma)")
            else:
                raise UsageError(
                    f"cannot convert {self.name} from {x.shape[1]} to {c} channels (only 1 ↔ 3 are converted); "
                    "pick datasets whose channels match"
                )
        if tuple(x.shape[2:]) != (h, w):
            chunks = []
            for part in x.split(4096):
                y = F.interpolate(part.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
                chunks.append(y.round().clamp(0, 255).to(torch.uint8))
            x = torch.cat(chunks)
            steps.append(f"resize {self.shape[1]}×{self.shape[2]}→{h}×{w} (bilinear, antialias)")
        note = "converted " + "×".join(map(str, self.shape)) + "→" + "×".join(map(str, shape)) + ": " + ", ".join(steps)
        return self.derive(x.contiguous(), note=note)


@dataclass(frozen=True)
class LoadContext:
    """What a dataset's ``load`` may use: the data root, the download permission, a seed, (for synthetic
    sets) the shape and size to produce, and the run's device."""

    root: Path
    download: bool = False
    seed: int = 0
    shape: tuple[int, int, int] | None = None
    size: int = 10_000
    id_name: str | None = None  # the run's ID dataset (for sets derived from it, e.g. perturbed-id)
    device: str = "cpu"  # the run's device: image folders decode JPEGs there (torchvision decode_jpeg on CUDA)
    stream: bool = False  # the run's ID data is streamed: sets derived or drawn for it are produced in batches too


class Dataset(ABC):
    """A named dataset plugin. Subclasses set ``name``, ``description`` and ``splits``.

    ``load(split, ctx)`` returns an :class:`ImageSet`; a dataset with only a test split is an
    OOD-only set. Raise :class:`DataNotFoundError` (one line, naming where you looked) when the
    files are missing and may not be downloaded.
    """

    name: str = ""
    description: str = ""
    splits: tuple[str, ...] = ("train", "test")
    synthetic: bool = False  # shape comes from the ID set (ctx.shape)

    def __init_subclass__(cls, **kwargs) -> None:
        """Every ``load`` returns its samples stamped ``NAME/SPLIT`` (unless they carry a provenance already), so
        a plugin that loads another dataset and derives from it (:meth:`ImageSet.derive`) keeps the source's."""
        super().__init_subclass__(**kwargs)
        if "load" in cls.__dict__ and not getattr(cls.__dict__["load"], "stamps", False):
            cls.load = _stamping(cls.__dict__["load"])  # type: ignore[method-assign]

    @abstractmethod
    def load(self, split: str, ctx: LoadContext) -> ImageSet: ...

    def __repr__(self) -> str:
        return f"<Dataset {self.name}>"


class DerivedWithoutProvenance(UserWarning):
    """A dataset loaded another dataset's samples but returned samples that do not keep their provenance."""


#: the provenance sources of the datasets loaded inside the ``load`` now running (None outside any load)
_INNER: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("oodbench_inner_loads", default=None)


def _stamping(load):
    @functools.wraps(load)
    def stamped_load(self: Dataset, split: str, ctx: LoadContext) -> ImageSet:
        inner: set[str] = set()
        token = _INNER.set(inner)
        try:
            data = load(self, split, ctx)
        finally:
            _INNER.reset(token)
        if not isinstance(data, ImageSet):
            return data
        data = data.stamped(f"{self.name}/{split}")
        outer = _INNER.get()
        if outer is not None:
            outer.update(data.provenance.sources if data.provenance is not None else ())
        if inner and not inner & set(data.provenance.sources if data.provenance is not None else ()):
            warnings.warn(
                f"dataset {self.name!r} loads {', '.join(sorted(inner))} but its samples do not keep their "
                "provenance: if they are copies, build them with src.derive(images, …) so that tuning never sees "
                "a copy of an evaluated image (docs/plugins.md §4.2)",
                DerivedWithoutProvenance,
                stacklevel=2,
            )
        return data

    stamped_load.stamps = True  # type: ignore[attr-defined]
    return stamped_load


def require_split(ds: Dataset, split: str) -> None:
    if split not in ds.splits:
        raise UsageError(f"dataset {ds.name!r} has no {split!r} split (it has: {', '.join(ds.splits)})")


def missing(name: str, where: Path, hint: str = "") -> DataNotFoundError:
    extra = f"; {hint}" if hint else ""
    return DataNotFoundError(
        f"dataset {name!r} not found under {str(where)!r} "
        f"(set --data-root or ${DATA_ENV}, or pass --download where it can be fetched){extra}"
    )
