"""The `imagenet` suite's loading path (issue 12 item 5) on a generated OpenOOD v1.5 layout: image lists over
``images_largescale/``, declared by docs/oodbench-imagenet.yaml itself, and timm:resnet50 with random weights
saved to a file standing in for `--pretrained` hub weights. Nothing here is ImageNet; the numbers mean nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from tests.test_streaming import smooth_images

ROOT = Path(__file__).resolve().parents[1]
LISTS = {  # oodbench name → (OpenOOD list file, images, brightness shift)
    "imagenet-1k/train": ("train_imagenet.txt", 24, 0.0),
    "imagenet-1k/test": ("test_imagenet.txt", 16, 0.0),
    "ssb-hard": ("test_ssb_hard.txt", 6, 0.2),
    "ninco": ("test_ninco.txt", 6, 0.3),
    "inaturalist": ("test_inaturalist.txt", 6, 0.5),
    "textures": ("test_textures.txt", 6, 0.6),
    "openimage-o": ("test_openimage_o.txt", 6, 0.7),
    "openimage-o-val": ("val_openimage_o.txt", 6, 0.7),
}


def openood_layout(data: Path) -> None:
    """``benchmark_imglist/imagenet/*.txt`` and ``images_largescale/<set>/*.JPEG`` as OpenOOD ships them; ID
    labels include 999 (the class count comes from the labels: 1,000, as the weights' head)."""
    from torchvision.io import encode_jpeg

    (data / "benchmark_imglist" / "imagenet").mkdir(parents=True)
    for k, (name, (listing, n, shift)) in enumerate(LISTS.items()):
        top = "images_classic" if name == "textures" else "images_largescale"  # as OpenOOD v1.5 lays them out
        folder = data / top / name.replace("/", "_")
        folder.mkdir(parents=True)
        lines = []
        for i, im in enumerate(smooth_images(n, 40, 48, seed=k, shift=shift)):
            (folder / f"{i:04d}.JPEG").write_bytes(encode_jpeg(im, quality=90).numpy().tobytes())
            label = (0, 1, 999)[i % 3] if name.startswith("imagenet") else -1
            lines.append(f"{folder.name}/{i:04d}.JPEG {label}")
        (data / "benchmark_imglist" / "imagenet" / listing).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def declared(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, oodbench.yaml): the documented template at 32×32, plus the weights file for timm:resnet50."""
    import timm

    work = tmp_path_factory.mktemp("imagenet")
    openood_layout(work / "data")
    torch.manual_seed(0)
    weights = work / "resnet50-random.pth"
    torch.save(timm.create_model("resnet50").state_dict(), weights)
    config = yaml.safe_load((ROOT / "docs" / "oodbench-imagenet.yaml").read_text())
    for spec in config["datasets"].values():
        spec["size"] = 32
    config["backbones"] = {"timm:resnet50": {"pretrained_file": str(weights)}}
    (work / "oodbench.yaml").write_text(yaml.safe_dump(config))
    return work / "data", work / "oodbench.yaml"


def test_first_imagenet_entry_runs_on_the_declared_lists_and_renders_near_far_groups(declared, tmp_path, monkeypatch):
    from oodbench.pipeline.runner import run
    from oodbench.plugins.manager import reset
    from oodbench.suites.bench import load_suites, suite_requests
    from oodbench.suites.leaderboard import leaderboard

    data, config = declared
    monkeypatch.setenv("OODBENCH_CONFIG", str(config))
    reset()
    try:
        suite = load_suites(ROOT / "benchmarks.yaml")["imagenet"]
        (req, _entry), *_ = suite_requests(suite, tmp_path / "imagenet")
        req = dataclasses.replace(req, device="cpu", batch_size=16, data_root=str(data))
        records = list(run(req))
        assert len(records) == len(req.detectors) * 5
        assert {r.ood for r in records} == {"ssb-hard", "ninco", "inaturalist", "textures", "openimage-o"}
        assert all(r.model["source"] == "pretrained" for r in records)  # 1,000-class head = 1,000 ID classes
        assert {r.n_eval["id"] for r in records} == {8}  # 16 listed; --n-tune capped at half, held out (SPEC)
        text = leaderboard("imagenet", ROOT / "benchmarks.yaml", str(tmp_path))
    finally:
        monkeypatch.setenv("OODBENCH_CONFIG", "none")
        reset()
    assert {r.target["group"] for r in records if r.ood in ("ssb-hard", "ninco")} == {"near"}
    assert {r.target["group"] for r in records if r.ood not in ("ssb-hard", "ninco")} == {"far"}
    assert "near mean AUROC" in text and "far mean AUROC" in text  # OpenOOD's near/far summary


def test_bench_without_the_declared_sets_is_one_line_naming_the_template(tmp_path, monkeypatch):
    from oodbench.core.errors import UsageError
    from oodbench.plugins.manager import reset
    from oodbench.suites.bench import bench

    monkeypatch.setenv("OODBENCH_CONFIG", "none")
    monkeypatch.chdir(tmp_path)  # no ./oodbench.yaml here
    reset()
    with pytest.raises(UsageError, match=r"imagenet-1k, inaturalist, .* are not declared: copy docs/oodbench-imagenet"):
        bench("imagenet", ROOT / "benchmarks.yaml", str(tmp_path / "results"))
    assert not (tmp_path / "results").exists()  # refused before any run


def test_an_undeclared_imagenet_set_is_one_line_naming_the_template_that_declares_it(monkeypatch, tmp_path):
    """`oodbench run --out ninco` before oodbench.yaml declares it: the one line says which suite's template
    declares the set and how to use it; a name close to one (`imagenet`) gets the same way out, and where no
    benchmarks.yaml is at hand the plain unknown-name line stands."""
    from oodbench.core.errors import UsageError
    from oodbench.pipeline.planning import resolve
    from oodbench.pipeline.request import RunRequest
    from oodbench.plugins.manager import reset

    monkeypatch.setenv("OODBENCH_CONFIG", "none")
    monkeypatch.chdir(ROOT)
    reset()  # registries an earlier test on this worker built with another config are not these
    with pytest.raises(UsageError) as info:
        resolve(RunRequest(detectors=["msp"], id="fashionmnist", oods=["ninco"]))
    assert str(info.value) == (
        "unknown dataset 'ninco': the 'imagenet' suite's template docs/oodbench-imagenet.yaml declares it; copy it"
        " to ./oodbench.yaml (or point $OODBENCH_CONFIG at it) and set OODBENCH_DATA to the data it names"
    )
    with pytest.raises(UsageError, match=r"or 'imagenet-1k', which the 'imagenet' suite's template") as info:
        resolve(RunRequest(detectors=["msp"], id="imagenet", oods=["mnist"]))
    assert "did you mean: tinyimagenet-r32" in str(info.value) and "\n" not in str(info.value)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as info:
        resolve(RunRequest(detectors=["msp"], id="fashionmnist", oods=["ninco"]))
    assert "template" not in str(info.value) and str(info.value).startswith("unknown dataset 'ninco'; did you mean")
