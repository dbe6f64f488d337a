"""Datasets read from their official file formats (the files torchvision downloads).

Loaders read the files themselves (idx, CIFAR pickles, SVHN ``.mat``) instead of going
through torchvision's classes, whose md5 checks reject partial or re-packed copies; with
``--download`` they call torchvision's class once to fetch the files.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from oodbench import Dataset, ImageSet
from oodbench.core.errors import CorruptFileError, OodbenchError
from oodbench.data.imageset import LoadContext, missing, require_split

FIX = "restore it from the official source (or delete it and pass --download)"


@contextmanager
def reading(name: str, path: Path) -> Iterator[None]:
    """Any error while decoding an official file (cut short, wrong format) → one line naming the file."""
    try:
        yield
    except OodbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on damaged input
        raise CorruptFileError(f"dataset {name!r}: file", path, exc, FIX) from None


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _download(cls_name: str, root: Path, split: str, **kw) -> None:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    try:
        if cls_name in ("SVHN",):
            cls(str(root), split=split, download=True, **kw)
        else:
            cls(str(root), train=(split == "train"), download=True, **kw)
    except Exception as exc:  # noqa: BLE001 - network errors vary; report one line
        raise missing(cls_name, root, f"download failed: {type(exc).__name__}: {str(exc)[:120]}") from None


class IdxDataset(Dataset):
    """MNIST-format idx files under ``<root>/<folder>/raw/`` (gz or plain)."""

    folder = ""
    torchvision_class = ""
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))

    def _find(self, root: Path, fname: str) -> Path | None:
        for p in (root / self.folder / "raw" / fname, root / self.folder / "raw" / (fname + ".gz")):
            if p.is_file():
                return p
        return None

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        from torchvision.datasets.mnist import read_image_file, read_label_file

        require_split(self, split)
        img_name, lbl_name = MNIST_FILES[split]
        paths = [self._find(ctx.root, img_name), self._find(ctx.root, lbl_name)]
        if None in paths and ctx.download and self.torchvision_class:
            _download(self.torchvision_class, ctx.root, split)
            paths = [self._find(ctx.root, img_name), self._find(ctx.root, lbl_name)]
        if None in paths:
            raise missing(self.name, ctx.root / self.folder / "raw")
        with reading(self.name, paths[0]):
            images = _read_idx(paths[0], read_image_file).unsqueeze(1)
        with reading(self.name, paths[1]):
            labels = _read_idx(paths[1], read_label_file).long()
        if len(images) != len(labels):
            what = f"{len(images)} images but {len(labels)} labels in {paths[1].name}"
            raise CorruptFileError(f"dataset {self.name!r}: file", paths[0], what, FIX)
        return ImageSet(images.contiguous(), labels, self.name, self.classes, (f"{self.name} {split}: {paths[0]}",))


def _read_idx(path: Path, reader) -> torch.Tensor:
    if path.suffix == ".gz":
        import gzip
        import tempfile

        with gzip.open(path, "rb") as src, tempfile.NamedTemporaryFile(suffix=".idx") as tmp:
            tmp.write(src.read())
            tmp.flush()
            return reader(tmp.name)
    return reader(str(path))


class MNIST(IdxDataset):
    name, folder, torchvision_class = "mnist", "MNIST", "MNIST"
    description = "MNIST handwritten digits, 60k/10k, 28×28 grey"


class FashionMNIST(IdxDataset):
    name, folder, torchvision_class = "fashionmnist", "FashionMNIST", "FashionMNIST"
    description = "Fashion-MNIST, 60k/10k, 28×28 grey"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class KMNIST(IdxDataset):
    name, folder, torchvision_class = "kmnist", "KMNIST", "KMNIST"
    description = "Kuzushiji-MNIST, 60k/10k, 28×28 grey (paper 003's Outlier Exposure set)"


class NotMNIST(IdxDataset):
    name, folder = "notmnist", "notMNIST"
    description = "notMNIST letters A–J (test sample, 10k), 28×28 grey; OOD only"
    splits = ("test",)
    classes = tuple("ABCDEFGHIJ")


class CIFAR10(Dataset):
    """CIFAR-10 from the official python pickles in ``<root>/cifar-10-batches-py``."""

    name = "cifar10"
    description = "CIFAR-10 (official files), 50k/10k, 32×32 RGB"
    base, tv_class, label_key = "cifar-10-batches-py", "CIFAR10", b"labels"
    files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    meta, meta_key = "batches.meta", b"label_names"

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        require_split(self, split)
        folder = ctx.root / self.base
        paths = [folder / f for f in self.files[split]]
        if not all(p.is_file() for p in paths) and ctx.download:
            _download(self.tv_class, ctx.root, split)
        if not all(p.is_file() for p in paths):
            raise missing(self.name, folder)
        images, labels = [], []
        for p in paths:
            with reading(self.name, p), open(p, "rb") as f:
                entry = pickle.load(f, encoding="bytes")
                images.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels.extend(entry[self.label_key])
                if len(labels) != sum(map(len, images)):
                    raise ValueError(f"{len(images[-1])} images but {len(entry[self.label_key])} labels")
        classes: tuple[str, ...] = ()
        if (folder / self.meta).is_file():
            with reading(self.name, folder / self.meta), open(folder / self.meta, "rb") as f:
                classes = tuple(c.decode() for c in pickle.load(f, encoding="bytes")[self.meta_key])
        return ImageSet(
            torch.from_numpy(np.concatenate(images)),
            torch.tensor(labels, dtype=torch.long),
            self.name,
            classes,
            (f"{self.name} {split}: {folder}",),
        )


class CIFAR100(CIFAR10):
    name = "cifar100"
    description = "CIFAR-100 (official files, fine labels), 50k/10k, 32×32 RGB"
    base, tv_class, label_key = "cifar-100-python", "CIFAR100", b"fine_labels"
    files = {"train": ["train"], "test": ["test"]}
    meta, meta_key = "meta", b"fine_label_names"


class SVHN(Dataset):
    """SVHN from the official ``{train,test,extra}_32x32.mat`` in ``<root>/SVHN`` (read with
    ``scipy.io.loadmat``, no md5 check, so partial copies load; the count is recorded)."""

    name = "svhn"
    description = "SVHN house numbers (official .mat), 32×32 RGB; label 10 → digit 0"
    splits = ("train", "test", "extra")

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        from scipy.io import loadmat

        require_split(self, split)
        path = ctx.root / "SVHN" / f"{split}_32x32.mat"
        if not path.is_file() and ctx.download:
            _download("SVHN", ctx.root / "SVHN", split)
        if not path.is_file():
            raise missing(self.name, path.parent)
        with reading(self.name, path):
            mat = loadmat(str(path))
            images = torch.from_numpy(np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1))))
            labels = torch.from_numpy(mat["y"].astype(np.int64).ravel() % 10)
            if len(images) != len(labels) or images.dtype != torch.uint8:
                raise ValueError(f"X holds {tuple(images.shape)} {images.dtype}, y holds {len(labels)} labels")
        return ImageSet(
            images, labels, self.name, tuple(str(i) for i in range(10)), (f"svhn {split}: {path} (n={len(labels)})",)
        )


class Omniglot(Dataset):
    """Omniglot characters (``<root>/omniglot-py/images_background*/<alphabet>/<character>/*.png``),
    105×105 binary images; all background subsets found are merged, duplicates dropped.
    Label = alphabet index."""

    name = "omniglot"
    description = "Omniglot handwritten characters (background sets), 105×105 grey; OOD only"
    splits = ("test",)

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        from torchvision.io import ImageReadMode, decode_image, read_file

        require_split(self, split)
        base = ctx.root / "omniglot-py"
        subsets = sorted(base.glob("images_background*")) if base.is_dir() else []
        if not subsets and ctx.download:
            import torchvision

            try:
                torchvision.datasets.Omniglot(str(ctx.root), background=True, download=True)
            except Exception as exc:  # noqa: BLE001
                raise missing(self.name, base, f"download failed: {exc}") from None
            subsets = sorted(base.glob("images_background*"))
        files: dict[str, Path] = {}
        for sub in subsets:
            for p in sorted(sub.glob("*/*/*.png")):
                files.setdefault("/".join(p.parts[-3:]), p)
        if not files:
            raise missing(self.name, base)
        keys = sorted(files)
        alphabets = sorted({k.split("/")[0] for k in keys})
        decoded = []
        for k in keys:
            with reading(self.name, files[k]):
                decoded.append(decode_image(read_file(str(files[k])), mode=ImageReadMode.GRAY))
        with reading(self.name, base):
            images = torch.stack(decoded)
        labels = torch.tensor([alphabets.index(k.split("/")[0]) for k in keys], dtype=torch.long)
        return ImageSet(
            images,
            labels,
            self.name,
            tuple(alphabets),
            (f"omniglot: {len(keys)} unique images from {[s.name for s in subsets]}",),
        )
