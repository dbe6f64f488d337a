"""Streamed image sets (issue 12 item 3): ImageNet-style folders and OpenOOD image lists decode in batches,
resized and cropped by the backbone's own data config, and run end to end without being held in memory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from oodbench.core.errors import UsageError
from oodbench.data.imageset import ImageSet, LoadContext
from oodbench.data.streams import is_streamed


def smooth_images(n: int, h: int, w: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """Low-frequency random RGB images (JPEG keeps them nearly intact), optionally brightened."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, 4, 4, generator=g) * (1 - shift) + shift
    return (torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear") * 255).round().to(torch.uint8)


def write_tree(root: Path, counts: dict[str, int], size: tuple[int, int], seed: int, shift: float = 0.0) -> None:
    from torchvision.io import encode_jpeg

    for k, (cls, n) in enumerate(counts.items()):
        (root / cls).mkdir(parents=True)
        for i, im in enumerate(smooth_images(n, *size, seed=seed + k, shift=shift)):
            (root / cls / f"img_{i:03d}.JPEG").write_bytes(encode_jpeg(im, quality=90).numpy().tobytes())


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory) -> Path:
    """``ood-imnet/{train,test}/<class>/*.JPEG`` (two classes, 48×64), an OOD folder of 40×40 images
    and an OpenOOD-style image list over the test folder."""
    root = tmp_path_factory.mktemp("streamed")
    write_tree(root / "imnet" / "train", {"n01": 24, "n02": 24}, (48, 64), seed=0)
    write_tree(root / "imnet" / "test", {"n01": 12, "n02": 12}, (48, 64), seed=10)
    write_tree(root / "far", {"x": 20}, (40, 40), seed=20, shift=0.6)
    lines = [f"test/{p.parent.name}/{p.name} {int(p.parent.name == 'n02')}" for p in (root / "imnet").glob("test/*/*")]
    (root / "test_imnet.txt").write_text("\n".join(sorted(lines)) + "\n")
    (root / "oodbench.yaml").write_text(
        "datasets:\n"
        f"  imnet: {{folder: {root / 'imnet'}, size: 32}}\n"
        f"  far: {{folder: {root / 'far'}, stream: true, size: 32}}\n"
        f"  imnet-list: {{lists: {{test: {root / 'test_imnet.txt'}}}, root: {root / 'imnet'}, size: 32}}\n"
    )
    return root


@pytest.fixture
def declared(imagenet_like, monkeypatch):
    from oodbench.plugins.manager import registries, reset

    monkeypatch.setenv("OODBENCH_CONFIG", str(imagenet_like / "oodbench.yaml"))
    reset()
    yield lambda name, split="test": registries().datasets.get(name).load(split, LoadContext(imagenet_like))
    monkeypatch.setenv("OODBENCH_CONFIG", "none")  # never the working directory's
    reset()


def test_imagenet_style_folder_streams_and_decodes_like_torchvision(declared):
    from torchvision import transforms
    from torchvision.io import decode_image

    data = declared("imnet", "train")
    assert is_streamed(data.images) and data.shape == (3, 32, 32) and len(data) == 48
    assert data.classes == ("n01", "n02") and data.labels.tolist() == [0] * 24 + [1] * 24
    batches = list(data.images.split(20))
    assert [len(b) for b in batches] == [20, 20, 8] and all(b.dtype == torch.uint8 for b in batches)
    # the ImageNet convention where no backbone says otherwise: shorter side to 32 / 0.875 = 36, centre crop 32
    steps = transforms.Compose([transforms.Resize(36), transforms.CenterCrop(32)])
    expected = torch.stack([steps(decode_image(p)) for p in data.images.paths])
    assert torch.equal(torch.cat(batches), expected)
    sub = data.subset(torch.tensor([3, 30]))
    assert torch.equal(torch.cat(list(sub.images.split(8))), expected[[3, 30]])
    assert sub.provenance.index.tolist() == [3, 30]


def test_geometry_and_files_key_the_fingerprint(declared):
    data = declared("imnet")
    bicubic = data.images.with_geometry({"interpolation": "bicubic", "crop_pct": 0.95})
    assert "resize shorter side to 33 (bicubic)" in bicubic.describe()
    assert data.fingerprint() == declared("imnet").fingerprint()
    assert ImageSet(bicubic, data.labels, data.name).fingerprint() != data.fingerprint()
    assert data.subset(torch.arange(5)).fingerprint() != data.fingerprint()


def test_image_list_reads_openood_format(declared, imagenet_like):
    listed, folder = declared("imnet-list"), declared("imnet")
    assert is_streamed(listed.images) and len(listed) == 24
    assert sorted(listed.labels.tolist()) == sorted(folder.labels.tolist())
    assert listed.provenance.sources[0].startswith("list:")
    (imagenet_like / "bad.txt").write_text("test/n01/img_000.JPEG 0 extra\n")
    from oodbench_builtins.datasets.streamed import read_image_list

    with pytest.raises(UsageError, match=r"bad.txt:1: expected 'relative/path label'"):
        read_image_list(imagenet_like / "bad.txt", imagenet_like / "imnet")


def test_small_folders_still_decode_into_memory(imagenet_like):
    from oodbench_builtins.datasets.folder import FolderDataset

    plain = FolderDataset("far-plain", imagenet_like / "far").load("test", LoadContext(imagenet_like))
    assert isinstance(plain.images, torch.Tensor) and plain.shape == (3, 40, 40)
    forced = FolderDataset("far-forced", imagenet_like / "far", stream=True).load("test", LoadContext(imagenet_like))
    assert is_streamed(forced.images) and forced.shape == (3, 40, 40)  # its own size (≤ 224) when none is declared


def test_run_end_to_end_on_streamed_sets_with_a_timm_backbone(declared, imagenet_like, tmp_path):
    from oodbench.pipeline.runner import RunRequest, run
    from oodbench.plugins.manager import registries

    torch.manual_seed(0)
    net = registries().backbones.get("timm:test_resnet").build((3, 32, 32), 2)  # random weights, in a file
    weights = tmp_path / "test_resnet.pth"
    torch.save(net.state_dict(), weights)
    req = RunRequest(
        detectors=["msp", "knn"],
        id="imnet",
        oods=["far"],
        backbone="timm:test_resnet",
        checkpoint=weights,
        results=str(tmp_path / "results"),
        batch_size=16,
    )
    records = list(run(req))
    assert {r.detector for r in records} == {"msp", "knn"}
    assert all(0.0 <= r.metrics["auroc"] <= 100.0 for r in records)
    knn = next(r for r in records if r.detector == "knn")
    assert knn.metrics["auroc"] > 90  # far's images are much brighter: any feature space separates them
    notes = " ".join(map(str, knn.data.values()))
    assert "streamed" in notes and "bilinear" in notes  # test_resnet's own data config: bilinear, crop_pct 0.95
    # the record says the geometry the backbone's data config gave (32 / 0.95 → 33), not the default (→ 36)
    assert notes.count("backbone geometry: streamed: resize shorter side to 33 (bilinear)") == 3, notes
    assert "JPEGs decoded" not in notes  # the CPU decoder threads, off the fast path


def test_training_on_a_streamed_set_is_refused_in_one_line(declared, tmp_path):
    from oodbench.pipeline.runner import RunRequest, run

    req = RunRequest(
        detectors=["msp"], id="imnet", oods=["far"], backbone="timm:test_resnet", epochs=1, results=str(tmp_path / "r")
    )
    with pytest.raises(UsageError, match="training on imnet needs its images in memory") as info:
        run(req)
    assert "\n" not in str(info.value)


def test_batched_jpeg_decode_matches_the_cpu_decoder_and_cuda_falls_back(imagenet_like, tmp_path, monkeypatch, capfd):
    """decode_jpeg over a list (what runs on CUDA) gives the CPU decoder's pixels here; asking for CUDA on a
    machine without it warns in one line and decodes on the CPU (issue 12 item 1's fallback)."""
    from oodbench_builtins.datasets.device_decode import decode_batched
    from oodbench_builtins.datasets.folder import _decode, decode_folder

    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / "cache"))
    paths = sorted((imagenet_like / "far" / "x").glob("*.JPEG"))
    assert all(torch.equal(a, _decode(p)) for a, p in zip(decode_batched(paths, "cpu"), paths))
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the fallback is not exercised")
    data = decode_folder(imagenet_like / "far", device="cuda")
    err = capfd.readouterr().err
    assert "decoding JPEGs on cuda failed" in err and "decoding them on the CPU instead" in err
    assert len(err.strip().splitlines()) == 1 and len(data) == 20
    assert not any("decoded on cuda" in n for n in data.notes)
    again = decode_folder(imagenet_like / "far", device="cuda")  # the CPU-decoded cache is reused, no new warning
    assert torch.equal(again.images, data.images) and capfd.readouterr().err == ""


def test_an_unreadable_streamed_file_is_one_line_naming_it(imagenet_like, tmp_path):
    import shutil

    from oodbench.data.streams import ImageFiles

    good = sorted((imagenet_like / "far" / "x").glob("*.JPEG"))[:5]
    bad = tmp_path / "broken.JPEG"
    bad.write_bytes(good[0].read_bytes()[:100])  # a truncated JPEG
    copies = [shutil.copy(p, tmp_path / p.name) for p in good]
    files = ImageFiles((*map(str, copies), str(bad)), (3, 32, 32))
    with pytest.raises(UsageError, match=r"cannot decode image '.*broken\.JPEG'") as info:
        list(files.split(2))
    assert "\n" not in str(info.value)


def test_streamed_jpegs_decode_on_the_fast_paths_device_as_the_cpu_threads_do(
    imagenet_like, tmp_path, monkeypatch, capfd
):
    """On the fast path (CUDA; switched on here for the CPU) threads only read a streamed set's JPEG bytes and
    ``decode_jpeg`` decodes each batch on the view's device: the CPU decoder threads' pixels. A batch the device
    decoder refuses (a PNG named .JPEG) is decoded on the CPU, with one warning for the set."""
    from torchvision.io import decode_image, encode_png

    from oodbench.core import precision
    from oodbench.data import streams
    from oodbench.models.features import FeatureView

    paths = sorted(map(str, (imagenet_like / "imnet" / "train").glob("*/*.JPEG")))
    files = streams.ImageFiles(tuple(paths), (3, 32, 32))
    expected = torch.cat(list(files.split(10)))  # CPU decoder threads
    monkeypatch.setattr(precision, "accelerated", lambda device: True)
    starts, real = [], streams._Decoded.on_device
    monkeypatch.setattr(streams._Decoded, "on_device", lambda self, *a: starts.append(a[0]) or real(self, *a))
    cpu = torch.device("cpu")
    assert torch.equal(torch.cat(list(files.split(10, cpu))), expected) and starts == [0, 10, 20, 30, 40]

    # batches of two image sizes (48×64 and 40×40, interleaved): resized one call per size, the same pixels
    far = sorted(map(str, (imagenet_like / "far").glob("*/*.JPEG")))
    two_sizes = streams.ImageFiles(tuple(p for pair in zip(paths, far) for p in pair), (3, 32, 32))
    per_image = torch.cat(list(two_sizes.split(10)))  # CPU decoder threads, one image at a time
    assert torch.equal(torch.cat(list(two_sizes.split(10, cpu))), per_image) and len(per_image) == 40

    starts.clear()  # a view hands its device to the stream
    view = FeatureView(ImageSet(files, torch.zeros(len(files), dtype=torch.long), "imnet"), None, cpu, batch_size=16)
    assert torch.equal(torch.cat(list(view.batches())), expected.float() / 255) and starts == [0, 16, 32]

    disguised = tmp_path / "png.JPEG"
    disguised.write_bytes(encode_png(decode_image(paths[25])).numpy().tobytes())
    mixed = streams.ImageFiles((*paths[:25], str(disguised), *paths[26:]), (3, 32, 32))
    capfd.readouterr()
    assert torch.equal(torch.cat(list(mixed.split(10, cpu))), expected)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "such batches are decoded on the CPU" in err[0], err
    assert torch.equal(torch.cat(list(mixed.split(10, cpu))), expected)  # another pass (a tuning grid's next)
    assert capfd.readouterr().err == ""  # the set was warned about once


def test_a_run_on_the_fast_path_records_where_its_streamed_jpegs_were_decoded(declared, tmp_path, monkeypatch):
    from oodbench.core import precision
    from oodbench.pipeline.runner import RunRequest, run
    from oodbench.plugins.manager import registries

    torch.manual_seed(0)
    weights = tmp_path / "test_resnet.pth"
    torch.save(registries().backbones.get("timm:test_resnet").build((3, 32, 32), 2).state_dict(), weights)
    monkeypatch.setattr(precision, "accelerated", lambda device: True)  # what CUDA takes, on the CPU
    req = RunRequest(
        detectors=["knn"], id="imnet", oods=["far"], backbone="timm:test_resnet", checkpoint=weights, batch_size=16
    )
    (record,) = list(run(dataclasses.replace(req, results=str(tmp_path / "r"))))
    notes = [str(n) for side in record.data.values() for n in side]
    assert sum("JPEGs decoded on cpu (decode_jpeg)" in n for n in notes) == 3, notes  # ID train, ID test, OOD
    assert record.metrics["auroc"] > 90


def test_a_folders_two_splits_stream_alike_when_together_over_the_threshold(tmp_path, monkeypatch):
    """Issue 31: a folder whose train split alone is over the threshold used to stream it at 224×224 while its
    smaller test split was decoded whole at the files' own size."""
    from torchvision.io import encode_png

    from oodbench.plugins.manager import registries

    for split, n in (("train", 12), ("test", 4)):
        (tmp_path / "f" / split / "a").mkdir(parents=True)
        for i, im in enumerate(smooth_images(n, 40, 40, seed=n)):
            (tmp_path / "f" / split / "a" / f"{i}.png").write_bytes(encode_png(im).numpy().tobytes())
    monkeypatch.setenv("OODBENCH_STREAM_ABOVE", str(10 * 3 * 40 * 40))  # train (12) over it, test (4) under
    folder = registries().datasets.get(f"folder:{tmp_path / 'f'}")
    loaded = [folder.load(split, LoadContext(tmp_path)) for split in ("train", "test")]
    assert all(is_streamed(s.images) for s in loaded) and loaded[0].shape == loaded[1].shape == (3, 40, 40)
    monkeypatch.setenv("OODBENCH_STREAM_ABOVE", str(20 * 3 * 40 * 40))  # both under it together: both decoded
    assert not any(is_streamed(folder.load(split, LoadContext(tmp_path)).images) for split in ("train", "test"))
