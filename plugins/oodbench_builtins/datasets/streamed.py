"""Datasets too large to decode into memory: streamed image folders and OpenOOD image lists.

An image folder streams (:class:`oodbench.data.streams.ImageFiles`: decoded in batches by DataLoader workers,
never held whole) when it is declared ``stream: true``, when its images decoded whole would take more than
``$OODBENCH_STREAM_ABOVE`` bytes (default 1 GiB, estimated from a few decoded files), or when it is an
ImageNet-style tree (``train/<class>/*.JPEG``). An image list is OpenOOD v1.5's format
(``benchmark_imglist/…/test_imagenet.txt``): one ``relative/path label`` per line over an image root; lists
always stream. A streamed set's size is its declared ``size``, else its most common size when both sides are
at most 224, else 224×224; each image is resized and centre-cropped to it (the backbone's data config decides
how: :meth:`ImageFiles.with_geometry`).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import torch

from oodbench import Dataset, ImageSet
from oodbench.core.errors import UsageError
from oodbench.data.imageset import LoadContext, missing, require_split
from oodbench.data.streams import ImageFiles

from .quiet import c_stderr_silenced

STREAM_ENV = "OODBENCH_STREAM_ABOVE"
DEFAULT_STREAM_ABOVE = 1 << 30


def _sample_shapes(paths: list[Path], n: int = 8) -> list[tuple[int, int, int]]:
    """C×H×W of up to ``n`` evenly spaced files (decoded: torchvision reads no header alone)."""
    from torchvision.io import decode_image, read_file

    step = max(1, len(paths) // n)
    shapes = []
    with c_stderr_silenced():  # libpng/libjpeg complain on fd 2 about broken files
        for p in paths[::step][:n]:
            try:
                shapes.append(tuple(decode_image(read_file(str(p))).shape))
            except Exception:  # noqa: BLE001 - an unreadable file says nothing about the others' size
                continue
    return shapes


def stream_above() -> int:
    """Bytes above which a set decoded or drawn whole streams instead: ``$OODBENCH_STREAM_ABOVE``, default 1 GiB."""
    return int(os.environ.get(STREAM_ENV) or DEFAULT_STREAM_ABOVE)


def should_stream(paths: list[Path], declared: bool | None) -> bool:
    """``declared`` when given (ImageNet-style trees are declared by the folder dataset), else whether the
    images decoded whole would take more than ``$OODBENCH_STREAM_ABOVE`` bytes."""
    if declared is not None:
        return declared
    shapes = _sample_shapes(paths)
    if not shapes:
        return False
    mean_bytes = sum(c * h * w for c, h, w in shapes) / len(shapes)
    return mean_bytes * len(paths) > stream_above()


def stream_shape(paths: list[Path], size: int | None) -> tuple[int, int, int]:
    shapes = _sample_shapes(paths) or [(3, 224, 224)]
    channels = 1 if all(c == 1 for c, _, _ in shapes) else 3
    if size is not None:
        return (channels, size, size)
    h, w = Counter((h, w) for _, h, w in shapes).most_common(1)[0][0]
    return (channels, h, w) if max(h, w) <= 224 else (channels, 224, 224)


def streamed_set(name: str, paths: list[Path], labels: list[int], classes, size: int | None, where: str) -> ImageSet:
    """An :class:`ImageSet` over ``paths`` that decodes in batches (see the module doc)."""
    files = ImageFiles(tuple(str(p) for p in paths), stream_shape(paths, size))
    note = f"{where} ({len(paths)} images, {len(classes)} classes), {files.describe()}"
    return ImageSet(files, torch.tensor(labels, dtype=torch.long), name, tuple(classes), (note,))


def read_image_list(listing: Path, root: Path) -> tuple[list[Path], list[int]]:
    """OpenOOD's image list: ``relative/path label`` per line (label optional, -1 then) over ``root``."""
    paths, labels = [], []
    for number, line in enumerate(listing.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 2 or (len(parts) == 2 and not parts[1].lstrip("-").isdigit()):
            raise UsageError(f"{listing}:{number}: expected 'relative/path label', got {line.strip()!r}")
        paths.append(root / parts[0])
        labels.append(int(parts[1]) if len(parts) == 2 else -1)
    if not paths:
        raise UsageError(f"image list {str(listing)!r} names no images")
    absent = [p for p in paths[:: max(1, len(paths) // 16)] if not p.is_file()]
    if absent:
        raise UsageError(f"image list {str(listing)!r}: {str(absent[0])!r} does not exist (is 'root' right?)")
    return paths, labels


class ImageListDataset(Dataset):
    """Splits read from OpenOOD-style image lists (``lists: {train: FILE, test: FILE}``) over an image ``root``;
    relative paths are looked up under the data root. With only a ``test`` list it is an OOD set. Lists stream
    unless declared ``stream: false`` (OpenOOD's CIFAR lists: 50,000 32×32 images, 150 MB whole), which decodes
    them once into memory like a small image folder (cached), so a backbone can be trained on them."""

    def __init__(
        self,
        name: str,
        lists: dict[str, str],
        root: str,
        size: int | None = None,
        description: str = "",
        stream: bool = True,
    ):
        self.name, self.lists, self.root, self.size, self.stream = name, dict(lists), Path(root), size, stream
        self.splits = tuple(s for s in ("train", "test") if s in self.lists)
        self.description = description or f"image lists over {root}"

    def _path(self, value: str | Path, ctx: LoadContext) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else ctx.root / p

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        require_split(self, split)
        listing, root = self._path(self.lists[split], ctx), self._path(self.root, ctx)
        if not listing.is_file():
            raise missing(self.name, listing)
        paths, labels = read_image_list(listing, root)
        top = max(labels)
        classes = [str(k) for k in range(top + 1)] if split == "train" or top > 0 else []
        if self.stream:
            data = streamed_set(self.name, paths, labels, classes, self.size, f"image list {listing}")
        else:
            data = decoded_list(listing, root, paths, labels, classes)
        return data.stamped(f"list:{listing.resolve()}")


def decoded_list(listing: Path, root: Path, paths: list[Path], labels: list[int], classes: list[str]) -> ImageSet:
    """The listed images decoded whole (``stream: false``), cached as a folder is (:func:`.folder.decode_folder`)."""
    from .folder import decode_folder

    data = decode_folder(root, "cpu", (classes, list(zip(paths, labels))), source=str(listing.resolve()))
    note = f"image list {listing} ({len(data)} images, {len(classes)} classes), decoded whole"
    return ImageSet(data.images, data.labels, data.name, tuple(classes), (note, *data.notes[1:]))
