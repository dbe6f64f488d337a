"""OpenOOD v1.5's own benchmark lists as suites (issue 30 item 5): docs/oodbench-openood.yaml declares every set of
openood-cifar10/-cifar100/-imagenet200 over OpenOOD's layout (benchmark_imglist/, images_classic/,
images_largescale/); here on small generated files. Nothing here is CIFAR or ImageNet; the numbers mean nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from test_streaming import smooth_images

from oodbench.data.imageset import LoadContext
from oodbench.data.streams import is_streamed

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "docs" / "oodbench-openood.yaml"


def write_list(data: Path, listing: str, top: str, folder: str, n: int, size, seed: int, classes: int = 0) -> None:
    """``benchmark_imglist/<listing>`` naming ``n`` PNGs under ``<top>/<folder>/``, labels spread over 0…classes-1
    (first and last included), or -1."""
    from torchvision.io import encode_png

    (data / top / folder).mkdir(parents=True, exist_ok=True)
    images = smooth_images(n, *size, seed=seed, shift=0.1 * (seed % 7))
    images = images[:, :1] if folder.endswith("mnist") else images  # grey, as MNIST is
    lines = []
    for i, im in enumerate(images):
        (data / top / folder / f"{i:04d}.png").write_bytes(encode_png(im).numpy().tobytes())
        lines.append(f"{folder}/{i:04d}.png {i * (classes - 1) // (n - 1) if classes else -1}")
    path = data / "benchmark_imglist" / listing
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def openood_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("openood")
    write_list(data, "cifar10/train_cifar10.txt", "images_classic", "cifar10/train", 40, (32, 32), 1, classes=10)
    write_list(data, "cifar10/test_cifar10.txt", "images_classic", "cifar10/test", 20, (32, 32), 2, classes=10)
    for k, name in enumerate(("cifar100", "tin", "mnist", "svhn", "texture", "places365")):
        size = (28, 28) if name == "mnist" else (32, 32)
        write_list(data, f"cifar10/test_{name}.txt", "images_classic", f"c10/{name}", 8, size, 10 + k)
    write_list(data, "imagenet200/test_imagenet200.txt", "images_largescale", "imagenet200/test", 6, (40, 48), 30, 200)
    return data


@pytest.fixture
def openood_config(openood_data, monkeypatch):
    from oodbench.plugins.manager import registries, reset

    monkeypatch.setenv("OODBENCH_CONFIG", str(TEMPLATE))
    reset()
    yield registries()
    monkeypatch.setenv("OODBENCH_CONFIG", "none")
    reset()


def test_the_template_declares_every_set_its_suites_name(openood_config):
    from oodbench.suites.bench import load_suites

    suites = load_suites(ROOT / "benchmarks.yaml")
    declared = set(yaml.safe_load(TEMPLATE.read_text())["datasets"])
    for name in ("openood-cifar10", "openood-cifar100", "openood-imagenet200"):
        assert suites[name]["config"] == "docs/oodbench-openood.yaml"
        for entry in suites[name]["runs"]:
            assert {entry["id"], *entry["oods"]} <= declared and set(entry["ood_groups"]) == {"near", "far"}
    assert suites["openood-imagenet1k"] == suites["imagenet"]  # the same suite under OpenOOD's name
    assert {"imagenet200-v2", "imagenet200-c", "imagenet200-r"} <= declared  # csID lists, declared for later


def test_openood_cifar10_runs_on_its_lists_decoded_whole_with_near_far_groups(openood_config, openood_data, tmp_path):
    from oodbench.pipeline.runner import run
    from oodbench.suites.bench import load_suites, suite_requests

    suite = load_suites(ROOT / "benchmarks.yaml")["openood-cifar10"]
    (req, _entry), *rest = suite_requests(suite, tmp_path / "r")
    assert len(rest) == 2 and req.backbone == "resnet18"  # three seeds: three trained checkpoints
    small = dict(detectors=["msp", "knn"], device="cpu", epochs=1, n_tune=2, data_root=str(openood_data))
    req = dataclasses.replace(req, **small)
    records = list(run(req))
    far = {"c10-mnist", "c10-svhn", "c10-texture", "c10-places365"}
    assert {r.ood for r in records} == {"c10-cifar100", "c10-tin", *far}
    assert {r.target["group"] for r in records if r.ood in ("c10-cifar100", "c10-tin")} == {"near"}
    assert {r.target["group"] for r in records if r.ood not in ("c10-cifar100", "c10-tin")} == {"far"}
    notes = " ".join(records[0].data["id_train"])
    assert "decoded whole" in notes and records[0].model["source"] != "pretrained"  # trained on the list's images
    mnist = next(r for r in records if r.ood == "c10-mnist")
    assert any("1×28×28→3×32×32" in n for n in mnist.data["ood"])  # grey 28×28 brought to the ID format


def test_imagenet200_lists_stream_with_200_classes(openood_config, openood_data):
    test = openood_config.datasets.get("openood-imagenet200").load("test", LoadContext(openood_data))
    assert is_streamed(test.images) and test.shape == (3, 224, 224) and len(test) == 6
    assert test.num_classes == 200 and test.labels.tolist() == [0, 39, 79, 119, 159, 199]


def test_bench_without_the_template_is_one_line_naming_it(tmp_path, monkeypatch):
    from oodbench.core.errors import UsageError
    from oodbench.plugins.manager import reset
    from oodbench.suites.bench import bench

    monkeypatch.setenv("OODBENCH_CONFIG", "none")
    monkeypatch.chdir(tmp_path)
    reset()
    with pytest.raises(UsageError, match=r"c10-cifar100, .* not declared: copy docs/oodbench-openood\.yaml") as info:
        bench("openood-cifar10", ROOT / "benchmarks.yaml", str(tmp_path / "results"))
    assert "\n" not in str(info.value) and not (tmp_path / "results").exists()
