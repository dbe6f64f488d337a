"""Image files decoded in batches, never held whole: what an :class:`~oodbench.data.ImageSet` holds for data
that does not fit in memory (ImageNet-size folders and OpenOOD image lists).

:class:`ImageFiles` stands where an ImageSet's uint8 ``N×C×H×W`` tensor would: it has ``dtype``, ``ndim``,
``shape`` and ``len``, takes a tensor index (subsets, class selections, random limits) and ``split(batch)``
yields uint8 batches decoded ahead by CPU threads (torchvision ``decode_image``; it releases the GIL). Each
image is resized and centre-cropped as the backbone's own evaluation preprocessing does: timm's
``resolve_data_config`` + ``create_transform`` for timm models (only their geometric steps: every backbone
normalises internally), the ImageNet convention (resize the shorter side to size / 0.875, centre crop)
otherwise. On the fast path (CUDA), ``split(batch, device)`` of JPEG files has the threads only read the
bytes ahead; each batch is decoded on the device in one ``decode_jpeg(..., device=)`` call (nvJPEG) and
resized there. Peak memory is O(batch × prefetched batches) plus what the caller keeps (features), in one
process.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from oodbench.core import precision
from oodbench.core.errors import UsageError, describe
from oodbench.core.progress import warn

#: the ImageNet evaluation convention (resize to size / 0.875, centre crop) where no backbone says otherwise
DEFAULT_GEOMETRY = {"crop_pct": 0.875, "interpolation": "bilinear", "crop_mode": "center"}


def _geometric_steps(size: tuple[int, int], geometry: dict[str, Any]):
    """The resize and crop of timm's evaluation transform for ``geometry`` (a timm data config), as torchvision
    tensor transforms on uint8 images (timm's ToTensor/Normalize are left out: backbones normalise)."""
    from timm.data import create_transform
    from torchvision import transforms

    cfg = {**DEFAULT_GEOMETRY, **{k: v for k, v in geometry.items() if k in DEFAULT_GEOMETRY}}
    full = create_transform(input_size=(3, *size), is_training=False, **cfg)
    steps = [t for t in full.transforms if isinstance(t, (transforms.Resize, transforms.CenterCrop))]
    return transforms.Compose(steps)


JPEG = (".jpg", ".jpeg")
_FELL_BACK: set[tuple] = set()  # (device, set) whose device decoding failed: warned once, not once per pass


def is_jpeg(path: str | Path) -> bool:
    """Whether the file is a JPEG by its name (what ``decode_jpeg`` takes)."""
    return str(path).lower().endswith(JPEG)


class _Decoded:
    """One image per item, decoded to RGB/grey uint8 and brought to ``shape`` (what a decoder thread runs), or a
    batch of them decoded on a device (:meth:`on_device`)."""

    def __init__(self, paths: Sequence[str], shape: tuple[int, int, int], geometry: dict[str, Any]):
        from torchvision.io import ImageReadMode

        self.paths, self.shape = paths, shape
        self.steps = _geometric_steps(shape[1:], geometry)
        self.mode = ImageReadMode.RGB if shape[0] == 3 else ImageReadMode.GRAY

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> torch.Tensor:
        """The file's bytes (what a reader thread runs ahead of :meth:`on_device`)."""
        from torchvision.io import read_file

        return read_file(self.paths[i])

    def decode(self, i: int, encoded: torch.Tensor | None = None) -> torch.Tensor:
        """Item ``i`` decoded on the CPU (from ``encoded`` when its bytes were read already)."""
        from torchvision.io import decode_image

        try:
            im = decode_image(self.read(i) if encoded is None else encoded, mode=self.mode)
        except Exception as exc:  # noqa: BLE001 - every decoder error means: unreadable file
            raise UsageError(f"cannot decode image {self.paths[i]!r} ({type(exc).__name__}); remove it") from None
        return im

    def __getitem__(self, i: int) -> torch.Tensor:
        """Item ``i`` decoded on the CPU, resized and cropped (what a CPU decoder thread runs)."""
        return self.steps(self.decode(i))

    def on_device(self, start: int, encoded: list[torch.Tensor], device: torch.device, pool_map=map) -> torch.Tensor:
        """Items ``start…`` decoded from their bytes on ``device`` in one ``decode_jpeg`` call, then resized and
        cropped there (:meth:`resized`). A batch the device decoder refuses (a PNG named .JPEG, a CMYK JPEG) is
        decoded on the CPU (``pool_map``: the reader threads' map) and moved, warned once per set."""
        from torchvision.io import decode_jpeg

        try:
            images = decode_jpeg(encoded, mode=self.mode, device=device)
        except Exception as exc:  # noqa: BLE001 - any device-decoder failure: the CPU decoder reads the batch
            seen = (str(device), len(self.paths), self.paths[0], self.paths[-1])  # this set, on every pass
            if seen not in _FELL_BACK:
                warn(f"decoding JPEGs on {device} failed ({describe(exc)}); such batches are decoded on the CPU")
                _FELL_BACK.add(seen)
            cpu = pool_map(self.decode, range(start, start + len(encoded)), encoded)
            images = [im.to(device) for im in cpu]
        return self.resized(images)

    def resized(self, images: list[torch.Tensor]) -> torch.Tensor:
        """The images resized and cropped to ``shape``, one call per distinct input size (many of ImageNet's
        JPEGs share a size, 500×375 the commonest), not one per image: the same pixels, fewer launches."""
        out = torch.empty((len(images), *self.shape), dtype=torch.uint8, device=images[0].device)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(tuple(im.shape), []).append(i)
        for index in groups.values():
            out[torch.tensor(index, device=out.device)] = self.steps(torch.stack([images[i] for i in index]))
        return out


def decodes_on(device: torch.device | None, paths: Sequence[str]) -> bool:
    """Whether batches of ``paths`` are decoded on ``device``: JPEG files on the fast path (CUDA)."""
    return device is not None and precision.accelerated(device) and all(map(is_jpeg, paths))


def decode_threads() -> int:
    """Decoder threads: ``$OODBENCH_DECODE_WORKERS``, else min(4, CPUs). torchvision's decoders and resizes
    release the GIL, so threads decode in parallel without starting processes that would each hold torch."""
    return max(1, int(os.environ.get("OODBENCH_DECODE_WORKERS") or min(4, os.cpu_count() or 1)))


class _Batches:
    """``ImageFiles.split(n)``: a sized iterable of uint8 batches (sized so progress bars know the total), decoded
    by a thread pool that keeps :data:`PREFETCH` batches queued ahead of the one being consumed."""

    PREFETCH = 2

    def __init__(self, files: ImageFiles, batch_size: int, device: torch.device | None = None):
        self.files, self.batch_size, self.device = files, batch_size, device

    def __len__(self) -> int:
        return math.ceil(len(self.files) / self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        f, n, size = self.files, len(self.files), self.batch_size
        decode = _Decoded(f.paths, f.image_shape, dict(f.geometry))
        on_device = decodes_on(self.device, f.paths)
        work = decode.read if on_device else decode.__getitem__  # threads read the bytes, or decode on the CPU
        starts = iter(range(0, n, size))
        pool = ThreadPoolExecutor(max_workers=decode_threads())

        def submit(start: int) -> tuple[int, list[Future]]:
            return start, [pool.submit(work, i) for i in range(start, min(start + size, n))]

        try:
            queued = deque(submit(s) for s in islice(starts, self.PREFETCH))
            while queued:
                start, batch = queued.popleft()
                queued.extend(submit(s) for s in islice(starts, 1))
                done = [job.result() for job in batch]
                yield decode.on_device(start, done, self.device, pool.map) if on_device else torch.stack(done)
        finally:  # an error or Ctrl-C cancels what has not started instead of waiting for it
            pool.shutdown(wait=True, cancel_futures=True)


class Streamed:
    """Images produced batch by batch, never held whole, standing where an ImageSet's uint8 ``N×C×H×W`` tensor
    would: ``len``, ``shape``, ``dtype``, a tensor index (a subset of the same kind), ``split(batch, device)``
    (uint8 batches), ``to_shape``, ``with_geometry``, ``describe``, ``fingerprint`` and ``content_keys``.
    :class:`ImageFiles` decodes files; :class:`oodbench.data.generated.GeneratedImages` draws noise per sample."""

    dtype = torch.uint8
    ndim = 4

    def decodes_on(self, device: torch.device | None) -> bool:
        """Whether :meth:`split` yields batches already on ``device`` (JPEGs decoded there); else on the CPU."""
        return False


@dataclass(frozen=True, eq=False)
class ImageFiles(Streamed):
    """Image files seen as a uint8 ``N×C×H×W`` tensor that is decoded batch by batch (see the module doc)."""

    paths: tuple[str, ...]
    image_shape: tuple[int, int, int]
    geometry: tuple[tuple[str, Any], ...] = tuple(sorted(DEFAULT_GEOMETRY.items()))

    def __post_init__(self) -> None:
        object.__setattr__(self, "geometry", tuple(sorted(dict(self.geometry).items())))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), *self.image_shape))

    def __getitem__(self, index: torch.Tensor | Sequence[int]) -> ImageFiles:
        picked = torch.as_tensor(index, dtype=torch.long).tolist()
        return replace(self, paths=tuple(self.paths[i] for i in picked))

    def decodes_on(self, device: torch.device | None) -> bool:
        return decodes_on(device, self.paths)

    def split(self, batch_size: int, device: torch.device | None = None) -> _Batches:
        """uint8 batches on the CPU, or on ``device`` when it decodes them (:func:`decodes_on`)."""
        return _Batches(self, batch_size, device)

    def to_shape(self, shape: tuple[int, int, int]) -> ImageFiles:
        """The same files decoded to another C×H×W (RGB or grey decode; resize and crop to H×W)."""
        return replace(self, image_shape=tuple(shape))

    def with_geometry(self, data_config: dict[str, Any]) -> ImageFiles:
        """The same files resized and cropped as a backbone's data config says (timm ``resolve_data_config``)."""
        return replace(self, geometry=tuple(sorted({**dict(self.geometry), **data_config}.items())))

    def describe(self) -> str:
        g = dict(self.geometry)
        h, w = self.image_shape[1:]
        return (
            f"streamed: resize shorter side to {math.floor(h / g['crop_pct'])} ({g['interpolation']}), "
            f"centre crop {h}×{w}, {self.image_shape[0]} channel(s)"
        )

    def fingerprint(self) -> str:
        """Keys the feature cache: every path with its size and modification time, the shape and geometry."""
        h = hashlib.sha256(repr((self.image_shape, self.geometry)).encode())
        for p in self.paths:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]

    def content_keys(self) -> torch.Tensor:
        """A 64-bit hash of each file's bytes (equal files, equal keys), for the leakage check's duplicate count."""
        keys = [
            int.from_bytes(hashlib.blake2b(Path(p).read_bytes(), digest_size=8).digest(), "little", signed=True)
            for p in self.paths
        ]
        return torch.tensor(keys, dtype=torch.long)


def is_streamed(images: object) -> bool:
    """Whether ``images`` are produced batch by batch (:class:`Streamed`), not a tensor in memory."""
    return isinstance(images, Streamed)


def refuse_streamed(images: object, what: str) -> None:
    """One line when ``what`` (training, contamination, …) needs images in memory but gets a streamed set."""
    if is_streamed(images):
        raise UsageError(
            f"{what} needs its images in memory, but this set is streamed (too large to hold); "
            "use a backbone that needs no training (--checkpoint, --pretrained-file) or a smaller folder"
        )
