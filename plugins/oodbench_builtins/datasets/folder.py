"""Image folders: ``<folder>/[train|test/]<class>/*.{png,jpg,…}``.

With ``train/`` and ``test/`` sub-folders the folder is a full ID dataset; without them it
has one ``test`` split holding every image (an OOD set). All images are decoded once
(parallel threads) into one uint8 tensor and cached under ``<cache>/folders`` keyed by the
folder's path, file count and newest modification time. Images whose size differs from the
most common size are resized to it (recorded in the notes).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F

from oodbench import Dataset, ImageSet
from oodbench.data import LoadContext, cache_dir, missing, require_split
from oodbench.errors import UsageError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _class_files(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    items = []
    for label, cls in enumerate(classes):
        for p in sorted((folder / cls).rglob("*")):
            if p.suffix.lower() in EXTENSIONS:
                items.append((p, label))
    return classes, items


def _decode(path: Path) -> torch.Tensor:
    from torchvision.io import decode_image, read_file

    return decode_image(read_file(str(path)))


def decode_folder(folder: Path) -> ImageSet:
    classes, items = _class_files(folder)
    if not items:
        raise UsageError(f"image folder {str(folder)!r} holds no images in class sub-folders (<class>/*.png|jpg)")
    newest = max(os.stat(p).st_mtime_ns for p, _ in items)
    key = hashlib.sha256(f"{folder.resolve()}|{len(items)}|{newest}".encode()).hexdigest()[:16]
    cached = cache_dir() / "folders" / f"{folder.name}-{key}.pt"
    if cached.is_file():
        blob = torch.load(cached, weights_only=True)
        return ImageSet(blob["images"], blob["labels"], folder.name, tuple(classes), tuple(blob["notes"]))
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        images = list(pool.map(_decode, [p for p, _ in items], chunksize=256))
    channels = Counter(im.shape[0] for im in images).most_common(1)[0][0]
    size = Counter(tuple(im.shape[1:]) for im in images).most_common(1)[0][0]
    notes = [f"image folder {folder} ({len(items)} images, {len(classes)} classes)"]
    resized = 0
    for i, im in enumerate(images):
        if im.shape[0] != channels:
            im = (
                im[:1].expand(channels, -1, -1)
                if channels == 3
                else im[:3].float().mean(0, keepdim=True).round().to(torch.uint8)
            )
        if tuple(im.shape[1:]) != size:
            im = (
                F.interpolate(im[None].float(), size=size, mode="bilinear", antialias=True)[0]
                .round()
                .clamp(0, 255)
                .to(torch.uint8)
            )
            resized += 1
        images[i] = im
    if resized:
        notes.append(f"{resized} images resized to {size[0]}×{size[1]}")
    stacked = torch.stack(images)
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    from oodbench.checkpoints import atomic_torch_save

    atomic_torch_save({"images": stacked, "labels": labels, "notes": notes}, cached)
    return ImageSet(stacked, labels, folder.name, tuple(classes), tuple(notes))


class FolderDataset(Dataset):
    """A named image folder; a relative ``path`` is looked up under the data root."""

    splits = ("train", "test")  # "train" exists only when the folder has train/ and test/ sub-folders

    def __init__(self, name: str, path: str | os.PathLike, description: str = ""):
        self.name = name
        self.path = Path(path)
        self.description = description or f"image folder {path}"

    def _folder(self, ctx: LoadContext) -> Path:
        folder = self.path if self.path.is_absolute() else ctx.root / self.path
        if not folder.is_dir():
            raise missing(self.name, folder)
        return folder

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        require_split(self, split)
        folder = self._folder(ctx)
        has_splits = (folder / "train").is_dir() and (folder / "test").is_dir()
        if has_splits:
            data = decode_folder(folder / split)
        elif split == "test":
            data = decode_folder(folder)
        else:
            raise UsageError(
                f"dataset {self.name!r} ({folder}) has no train/ and test/ sub-folders, so it can only be an OOD set"
            )
        source = folder.resolve() / split if has_splits else folder.resolve()
        return ImageSet(data.images, data.labels, self.name, data.classes, data.notes).stamped(f"folder:{source}")


class FolderPrefix(Dataset):
    """``folder:PATH`` on the command line: any image folder, by path."""

    name = "folder:"
    description = "any image folder: folder:PATH (class sub-folders; optional train/ and test/)"
    splits = ("train", "test")

    def resolve(self, path: str) -> FolderDataset:
        p = Path(path).expanduser()
        if not path:
            raise UsageError("folder: needs a path, e.g. folder:/data/my-images")
        if not p.is_absolute() and p.is_dir():
            p = p.resolve()
        return FolderDataset(f"folder:{path}", p, f"image folder {path}")

    def load(self, split, ctx):  # pragma: no cover - prefix only
        raise UsageError("name a folder: folder:PATH")
