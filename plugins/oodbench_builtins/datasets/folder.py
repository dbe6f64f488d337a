"""Image folders: ``<folder>/[train|test/]<class>/*.{png,jpg,…}``.

With ``train/`` and ``test/`` sub-folders the folder is a full ID dataset; without them it
has one ``test`` split holding every image (an OOD set). All images are decoded once
(parallel threads) into one uint8 tensor and cached under ``<cache>/folders`` keyed by the
folder's path, file count and newest modification time. Images whose size differs from the
most common size are resized to it (recorded in the notes); an alpha channel is dropped.
Files that cannot be decoded are skipped with a one-line warning (count and first names).
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
from oodbench.core.errors import UsageError
from oodbench.data.imageset import LoadContext, cache_dir, missing, require_split

from .quiet import c_stderr_silenced

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _class_files(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    items = []
    for label, cls in enumerate(classes):
        for p in sorted((folder / cls).rglob("*")):
            if p.suffix.lower() in EXTENSIONS:
                items.append((p, label))
    return classes, items


def _decode(path: Path) -> torch.Tensor | None:
    """One image as uint8 C×H×W (16-bit scaled down), the alpha channel dropped (grey+alpha → grey, RGBA → RGB);
    None if the file cannot be decoded (corrupt, truncated, not an image)."""
    from torchvision.io import decode_image, read_file
    from torchvision.transforms.v2.functional import to_dtype

    try:
        im = decode_image(read_file(str(path)))
        im = im if im.dtype == torch.uint8 else to_dtype(im, torch.uint8, scale=True)  # 16-bit PNG
    except Exception:  # noqa: BLE001 - every decoder error means: unreadable file
        return None
    return im[:-1] if im.shape[0] in (2, 4) else im


def _decode_all(paths: list[Path]) -> list[torch.Tensor | None]:
    """Decode in parallel threads; Ctrl-C cancels what has not started instead of waiting for it."""
    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    try:
        with c_stderr_silenced():
            return list(pool.map(_decode, paths))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _skipped_note(folder: Path, skipped: list[str]) -> str:
    first = ", ".join(skipped[:3]) + (", …" if len(skipped) > 3 else "")
    return f"{len(skipped)} unreadable image(s) skipped in {folder}: {first}"


def _uniform(images: list[torch.Tensor], notes: list[str]) -> torch.Tensor:
    """Stack images in the most common channel count and size (others converted/resized, noted)."""
    channels = Counter(im.shape[0] for im in images).most_common(1)[0][0]
    size = Counter(tuple(im.shape[1:]) for im in images).most_common(1)[0][0]
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
    return torch.stack(images)


def _folder_cache(folder: Path, items: list, decoder: str, source: str = "") -> Path:
    newest = max(os.stat(p).st_mtime_ns for p, _ in items)
    tag = f"|{decoder}" if decoder != "cpu" else ""  # CPU-decoded folders keep their earlier keys
    tag += f"|{source}" if source else ""  # an image list: two lists over one root are two sets
    key = hashlib.sha256(f"{folder.resolve()}|{len(items)}|{newest}{tag}".encode()).hexdigest()[:16]
    return cache_dir() / "folders" / f"{folder.name}-{key}.pt"


def _decoded_blob(folder: Path, classes: list[str], items: list, decoded: list, decoder: str) -> dict:
    skipped = [str(p.relative_to(folder)) for (p, _), im in zip(items, decoded) if im is None]
    kept = [(im, label) for (_, label), im in zip(items, decoded) if im is not None]
    if not kept:
        raise UsageError(f"image folder {str(folder)!r}: none of its {len(items)} image files can be decoded")
    notes = [f"image folder {folder} ({len(kept)} images, {len(classes)} classes)"]
    notes += [f"decoded on {decoder} (torchvision decode_jpeg)"] if decoder != "cpu" else []
    notes += [_skipped_note(folder, skipped)] if skipped else []
    stacked = _uniform([im for im, _ in kept], notes)
    labels = torch.tensor([label for _, label in kept], dtype=torch.long)
    return {"images": stacked, "labels": labels, "notes": notes, "skipped": skipped}


def decode_folder(
    folder: Path, device: str = "cpu", listing: tuple[list[str], list] | None = None, source: str = ""
) -> ImageSet:
    """Decode every image of ``folder`` (cached), JPEGs on ``device`` when it is CUDA (:mod:`.device_decode`).
    Unreadable images are skipped with a one-line warning that counts them and names the first three (also kept
    in the notes); a folder with no readable image is refused. ``listing``: ``_class_files(folder)`` if the
    caller has it already (listing 50,000 files takes most of a second); ``source``: the image list that named the
    files (part of the cache key), when they are not the folder's own class sub-folders."""
    from oodbench.core.atomic import atomic_torch_save, load_checked
    from oodbench.core.progress import warn

    from .device_decode import decode_on_device

    classes, items = listing or _class_files(folder)
    if not items:
        raise UsageError(f"image folder {str(folder)!r} holds no images in class sub-folders (<class>/*.png|jpg)")
    on_device = device.startswith("cuda")
    cached = lambda decoder: _folder_cache(folder, items, decoder, source)  # noqa: E731
    blob = load_checked(cached(device), "decoded image folder") if on_device else None
    blob = blob or load_checked(cached("cpu"), "decoded image folder")
    if blob is None:
        with c_stderr_silenced():  # CUDA libraries print their own complaints to fd 2; the warning says it
            decoded, failure = decode_on_device([p for p, _ in items], device) if on_device else (None, "")
        if failure:
            warn(failure)
        decoder = device if decoded is not None else "cpu"
        decoded = decoded if decoded is not None else _decode_all([p for p, _ in items])
        blob = _decoded_blob(folder, classes, items, decoded, decoder)
        atomic_torch_save(blob, cached(decoder))
    if blob.get("skipped"):
        warn(_skipped_note(folder, blob["skipped"]) + " (remove or replace them to use them)")
    return ImageSet(blob["images"], blob["labels"], folder.name, tuple(classes), tuple(blob["notes"]))


class FolderDataset(Dataset):
    """A named image folder; a relative ``path`` is looked up under the data root."""

    splits = ("train", "test")  # "train" exists only when the folder has train/ and test/ sub-folders

    def __init__(
        self,
        name: str,
        path: str | os.PathLike,
        description: str = "",
        stream: bool | None = None,
        size: int | None = None,
    ):
        self.name = name
        self.path = Path(path)
        self.description = description or f"image folder {path}"
        self.stream, self.size = stream, size  # streamed.should_stream decides when stream is None

    def _folder(self, ctx: LoadContext) -> Path:
        folder = self.path if self.path.is_absolute() else ctx.root / self.path
        if not folder.is_dir():
            raise missing(self.name, folder)
        return folder

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        require_split(self, split)
        folder = self._folder(ctx)
        has_splits = (folder / "train").is_dir() and (folder / "test").is_dir()
        if not has_splits and split != "test":
            raise UsageError(
                f"dataset {self.name!r} ({folder}) has no train/ and test/ sub-folders, so it can only be an OOD set"
            )
        where = folder / split if has_splits else folder
        imagenet_style = has_splits and next((folder / "train").glob("*/*.JPEG"), None) is not None
        listing = _class_files(where)
        data = self._streamed(listing, where, self._streams(folder, has_splits, imagenet_style))
        data = data or decode_folder(where, ctx.device, listing)
        source = folder.resolve() / split if has_splits else folder.resolve()
        return ImageSet(data.images, data.labels, self.name, data.classes, data.notes).stamped(f"folder:{source}")

    def _streams(self, folder: Path, has_splits: bool, imagenet_style: bool) -> bool | None:
        """Declared ``stream``, else True for an ImageNet-style tree; else, for a folder with train/ and test/, whether
        both together are over the threshold, so the two splits stream or decode alike (one shape, one geometry)."""
        from .streamed import should_stream

        if self.stream is not None or not has_splits:
            return self.stream
        if imagenet_style:
            return True
        paths = [p for split in ("train", "test") for p, _ in _class_files(folder / split)[1]]
        return bool(paths) and should_stream(paths, None)

    def _streamed(self, listing: tuple[list[str], list], where: Path, stream: bool | None) -> ImageSet | None:
        """The folder as a streamed set when it should stream (:func:`.streamed.should_stream`), else None."""
        from .streamed import should_stream, streamed_set

        if stream is False:
            return None
        classes, items = listing
        paths = [p for p, _ in items]
        if not items or not should_stream(paths, stream):
            return None
        labels = [label for _, label in items]
        return streamed_set(self.name, paths, labels, classes, self.size, f"image folder {where}")


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
