"""Dataset loaders on the real shared copies, and on small files written in the official formats."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from oodbench.core.errors import DataNotFoundError, UsageError
from oodbench.data.imageset import ImageSet, LoadContext
from oodbench.plugins.manager import registries


def load(name, split="test", root=None, **kw):
    from tests.conftest import DATA

    return registries().datasets.get(name).load(split, LoadContext(root or DATA, **kw))


@pytest.mark.parametrize(
    "name, n, shape",
    [
        ("mnist", 10000, (1, 28, 28)),
        ("fashionmnist", 10000, (1, 28, 28)),
        ("notmnist", 10000, (1, 28, 28)),
        ("svhn", 10000, (3, 32, 32)),
        ("omniglot", 4840, (1, 105, 105)),
        ("dtd-subset32", 1200, (3, 32, 32)),
    ],
)
def test_real_shared_sets(data_root, name, n, shape):
    data = load(name)
    assert len(data) == n and data.shape == shape and data.images.dtype == torch.uint8


def test_known_facts_of_the_real_files(data_root):
    assert load("fashionmnist").labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert torch.bincount(load("mnist", "train").labels).tolist()[:3] == [5923, 6742, 5958]
    svhn = load("svhn")
    assert svhn.labels[0].item() == 5 and int(svhn.labels.max()) == 9  # label 10 mapped to digit 0
    assert abs(svhn.images.float().mean().item() / 255 - 0.459) < 0.01


def test_synthetic_sets_follow_spec():
    from pathlib import Path

    ctx = LoadContext(Path("."), seed=3, shape=(1, 28, 28), size=500)
    reg = registries().datasets
    gauss = reg.get("gaussian").load("test", ctx)
    assert gauss.shape == (1, 28, 28) and len(gauss) == 500
    assert (gauss.images == 0).float().mean() > 0.2 and (gauss.images == 255).float().mean() > 0.2  # N(.5,1) clipped
    const = reg.get("constant").load("test", ctx)
    flat = const.images.flatten(1)
    assert (flat == flat[:, :1]).all() and len(flat[:, 0].unique()) > 100
    uni = reg.get("uniform").load("test", ctx)
    assert abs(uni.images.float().mean().item() - 127.5) < 2
    assert torch.equal(reg.get("uniform").load("test", ctx).images, uni.images)  # seeded
    with pytest.raises(UsageError):
        reg.get("uniform").load("test", LoadContext(Path(".")))


def _write_idx(path, array: np.ndarray):
    magic = {3: 0x0803, 1: 0x0801}[array.ndim]
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_kmnist_from_official_idx_gz(tmp_path):
    raw = tmp_path / "KMNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.random.default_rng(0).integers(0, 255, (7, 28, 28))
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", imgs)
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(7) % 10)
    data = load("kmnist", root=tmp_path)
    assert data.images.shape == (7, 1, 28, 28) and torch.equal(
        data.images[:, 0], torch.from_numpy(imgs.astype(np.uint8))
    )
    assert data.labels.tolist() == list(range(7))
    with pytest.raises(DataNotFoundError, match="kmnist"):
        load("kmnist", "train", root=tmp_path)


@pytest.mark.parametrize(
    "name, folder, files, key",
    [
        ("cifar10", "cifar-10-batches-py", ["test_batch"], b"labels"),
        ("cifar100", "cifar-100-python", ["test"], b"fine_labels"),
    ],
)
def test_cifar_from_official_pickles(tmp_path, name, folder, files, key):
    d = tmp_path / folder
    d.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (5, 3072), dtype=np.uint8)
    with open(d / files[0], "wb") as f:
        pickle.dump({b"data": data, key: [1, 2, 3, 4, 0]}, f)
    out = load(name, root=tmp_path)
    assert out.images.shape == (5, 3, 32, 32)
    assert torch.equal(out.images[1, 2].flatten(), torch.from_numpy(data[1, 2048:]))  # channel-major rows
    assert out.labels.tolist() == [1, 2, 3, 4, 0]


def test_svhn_from_official_mat(tmp_path):
    from scipy.io import savemat

    (tmp_path / "SVHN").mkdir()
    x = np.random.default_rng(0).integers(0, 255, (32, 32, 3, 4), dtype=np.uint8)
    savemat(tmp_path / "SVHN" / "train_32x32.mat", {"X": x, "y": np.array([[10], [1], [2], [10]], dtype=np.uint8)})
    out = load("svhn", "train", root=tmp_path)
    assert out.labels.tolist() == [0, 1, 2, 0]
    assert torch.equal(out.images[2].permute(1, 2, 0), torch.from_numpy(x[..., 2]))


def test_format_conversion_records_what_it_did():
    grey = ImageSet(torch.full((2, 1, 28, 28), 100, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), "g")
    rgb = grey.to_format((3, 32, 32))
    assert rgb.shape == (3, 32, 32) and (rgb.images == 100).all()
    assert "converted 1×28×28→3×32×32" in rgb.notes[-1]
    back = rgb.to_format((1, 28, 28))
    assert back.shape == (1, 28, 28) and (back.images == 100).all() and "RGB→grey" in back.notes[-1]


def test_with_classes_relabels():
    data = ImageSet(torch.zeros(6, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 2, 3, 2, 7]), "x")
    sub = data.with_classes([7, 2])
    assert sub.labels.tolist() == [1, 1, 0]


def test_config_declared_folder(tmp_path, monkeypatch):
    from torchvision.io import write_png

    from oodbench.plugins.manager import reset

    for cls in ("a", "b"):
        (tmp_path / "pics" / cls).mkdir(parents=True)
        for i in range(3):
            write_png(torch.full((3, 8, 8), 40 * i, dtype=torch.uint8), str(tmp_path / "pics" / cls / f"{i}.png"))
    cfg = tmp_path / "oodbench.yaml"
    cfg.write_text(f"datasets:\n  my-pics:\n    folder: {tmp_path / 'pics'}\n    description: six squares\n")
    monkeypatch.setenv("OODBENCH_CONFIG", str(cfg))
    reset()
    try:
        entry = registries().datasets.entry("my-pics")
        assert entry.description == "six squares"
        data = entry.obj.load("test", LoadContext(tmp_path))
        assert len(data) == 6 and data.classes == ("a", "b")
        with pytest.raises(UsageError, match="only be an OOD set"):
            entry.obj.load("train", LoadContext(tmp_path))
    finally:
        monkeypatch.setenv("OODBENCH_CONFIG", "none")
        reset()


def test_perturbed_id_is_derived_from_id_train(data_root):
    from pathlib import Path

    ds = registries().datasets.get("perturbed-id")
    out = ds.load("test", LoadContext(data_root, seed=0, shape=(1, 28, 28), size=50, id_name="mnist"))
    assert out.shape == (1, 28, 28) and len(out) == 50 and "patch shuffle" in out.notes[-1]
    src = registries().datasets.get("mnist").load("train", LoadContext(data_root)).head(50, 17)
    # same pixel mass up to noise and clipping, different arrangement
    assert abs(out.images.float().mean() - src.images.float().mean()) < 12
    assert not torch.equal(out.images, src.images)
    with pytest.raises(UsageError):
        ds.load("test", LoadContext(Path("."), shape=(1, 28, 28)))
