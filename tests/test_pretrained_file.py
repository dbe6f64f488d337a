"""Pretrained weights from a local file (issue 12 item 4): evaluated as they are when the head matches the ID
classes, refused in one line when it does not (unless --epochs fine-tunes), loaded through timm and torchvision,
declared in oodbench.yaml for --pretrained. Random weights saved to a file stand in for hub weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from oodbench.core.errors import UsageError
from oodbench.pipeline.runner import RunRequest, run
from tests.test_bad_inputs import cli_env, forked, oodbench

SMALL = dict(id="cifar10-jpeg", oods=["svhn"], train_limit=300, test_limit=300, n_tune=50, batch_size=128)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """timm test_resnet state dicts (timm's own layout) with 10- and 3-class heads, and a torchvision one."""
    import timm
    import torchvision

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    out = {}
    for classes in (10, 3):
        out[f"timm{classes}"] = root / f"test_resnet-{classes}.pth"
        torch.save(timm.create_model("test_resnet", num_classes=classes).state_dict(), out[f"timm{classes}"])
    out["tv10"] = root / "squeezenet-10.pth"
    torch.save(torchvision.models.get_model("mobilenet_v3_small", num_classes=10).state_dict(), out["tv10"])
    (root / "broken.pth").write_bytes(b"not a torch file")
    out["broken"] = root / "broken.pth"
    return out


def test_matching_head_is_evaluated_as_it_is_and_equals_the_same_weights_as_a_checkpoint(weights, tmp_path):
    from oodbench.plugins.manager import registries

    req = RunRequest(
        detectors=["msp", "knn"],
        backbone="timm:test_resnet",
        pretrained_file=str(weights["timm10"]),
        results=str(tmp_path / "a"),
        **SMALL,
    )
    records = list(run(req))
    assert all(
        r.model["source"] == "pretrained" and not r.model["train_log"] and not r.model["train_config"] for r in records
    )
    # the same weights in oodbench's checkpoint layout, through --checkpoint: the same scores
    model = registries().backbones.get("timm:test_resnet").build((3, 32, 32), None, pretrained=weights["timm10"])
    ckpt = tmp_path / "as-checkpoint.pt"
    torch.save(model.state_dict(), ckpt)
    again = list(
        run(
            RunRequest(
                detectors=["msp", "knn"],
                backbone="timm:test_resnet",
                checkpoint=ckpt,
                results=str(tmp_path / "b"),
                **SMALL,
            )
        )
    )
    by = {r.detector: r.metrics["auroc"] for r in again}
    assert all(abs(r.metrics["auroc"] - by[r.detector]) < 1e-9 for r in records)


def test_mismatching_head_is_one_line_naming_both_counts(weights, tmp_path):
    done = oodbench(
        [
            "run",
            "-d",
            "msp",
            "--in",
            "cifar10-jpeg",
            "--out",
            "svhn",
            "--backbone",
            "timm:test_resnet",
            "--pretrained-file",
            str(weights["timm3"]),
            "--train-limit",
            "100",
            "--test-limit",
            "100",
        ],
        tmp_path,
        cli_env(OODBENCH_RESULTS=str(tmp_path / "r")),
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "3-class head" in lines[0] and "10 classes" in lines[0] and "--epochs" in lines[0]


def test_epochs_fine_tune_a_new_head_from_the_weights_and_cache_it(weights, tmp_path):
    req = RunRequest(
        detectors=["msp"],
        backbone="timm:test_resnet",
        pretrained_file=str(weights["timm3"]),
        epochs=1,
        results=str(tmp_path / "a"),
        **SMALL,
    )
    (record,) = list(run(req))
    assert record.model["source"] == "trained" and record.model["train_log"]["epoch_loss"]
    assert record.model["weights"] == str(weights["timm3"])
    (again,) = list(run(RunRequest(**{**req.__dict__, "results": str(tmp_path / "b")})))
    assert again.model["source"] == "cache" and again.model["hash"] == record.model["hash"]


def test_missing_corrupt_and_weightless_backbones_are_one_line(weights, tmp_path):
    base = ["run", "-d", "msp", "--in", "cifar10-jpeg", "--out", "svhn", "--test-limit", "50", "--train-limit", "50"]
    cases = [
        (["--backbone", "timm:test_resnet", "--pretrained-file", str(tmp_path / "nope.pth")], "does not exist"),
        (  # found missing before any data is read: a data root without the datasets does not come first
            ["--backbone", "timm:test_resnet", "--pretrained-file", str(tmp_path / "nope.pth"), "--data-root", "."],
            "does not exist",
        ),
        (["--backbone", "timm:test_resnet", "--pretrained-file", str(weights["broken"])], "is damaged"),
        (["--backbone", "resnet18", "--pretrained-file", str(weights["timm10"])], "has no pretrained weights"),
        (
            ["-d", "deep-ensemble", "--backbone", "timm:test_resnet", "--pretrained-file", str(weights["timm10"])],
            "retrains its backbone",
        ),
    ]
    env = cli_env(OODBENCH_RESULTS=str(tmp_path / "r"))
    found = forked({str(i): ([*base, *extra], env, tmp_path) for i, (extra, _) in enumerate(cases)})  # own processes
    answers = [found[str(i)] for i in range(len(cases))]
    for (extra, needle), done in zip(cases, answers):
        errors = [line for line in done.stderr.strip().splitlines() if "warning:" not in line]  # near chance
        assert done.returncode == 2 and len(errors) == 1 and needle in errors[0], (extra, done.stderr)
        assert "Traceback" not in done.stderr


def test_torchvision_weights_file(weights, tmp_path):
    req = RunRequest(
        detectors=["msp"],
        backbone="torchvision:mobilenet_v3_small",
        pretrained_file=str(weights["tv10"]),
        results=str(tmp_path / "a"),
        **{**SMALL, "train_limit": 50, "test_limit": 60, "n_tune": 20},
    )
    (record,) = list(run(req))
    assert record.model["source"] == "pretrained" and 0 <= record.metrics["auroc"] <= 100


def test_oodbench_yaml_declares_the_file_pretrained_loads(weights, tmp_path, monkeypatch, capfd):
    config = tmp_path / "oodbench.yaml"
    config.write_text(f'backbones:\n  "timm:test_resnet": {{pretrained_file: {weights["timm10"]}}}\n')
    monkeypatch.setenv("OODBENCH_CONFIG", str(config))
    req = RunRequest(
        detectors=["msp"], backbone="timm:test_resnet", pretrained=True, results=str(tmp_path / "a"), **SMALL
    )
    (record,) = list(run(req))
    assert record.model["path"] == str(weights["timm10"])
    assert "near chance" in capfd.readouterr().err  # random weights: a warning that the class order may not match
    config.write_text('backbones:\n  "timm:test_resnet": {pretrained_fil: x}\n')
    with pytest.raises(UsageError, match=r"oodbench.yaml:2: .*unknown key 'pretrained_fil'"):
        run(req)
    assert json.loads(json.dumps(record.model))  # the record's model facts stay plain JSON
