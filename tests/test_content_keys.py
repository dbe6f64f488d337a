"""Content keys (issue 28, item 2): features and records are keyed by what was computed — the weights' hash, the
images, the precision, the device class and oodbench's version — not by the model's name or training configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from oodbench.core import precision
from oodbench.core.atomic import hash_path
from oodbench.pipeline.runner import RunRequest, run
from oodbench.plugins.manager import registries

SMALL = dict(oods=["mnist"], epochs=1, train_limit=2000, test_limit=600, n_tune=100)


def test_replaced_checkpoint_weights_are_seen_by_features_and_records(tmp_path, monkeypatch, capsys):
    """A cached checkpoint whose weights change under the same configuration (a retrain; here replaced and written
    without its hash file) is loaded, its features are extracted again with one line saying why, and the record
    carries the new weights' numbers and hash — the same as a run without any feature cache."""
    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OODBENCH_QUIET")

    def once(**extra):
        req = RunRequest(["msp", "knn"], "fashionmnist", results=str(tmp_path / "results"), **SMALL, **extra)
        return {r.detector: r for r in run(req)}

    first = once()
    path = Path(first["msp"].model["path"])
    blob = torch.load(path, weights_only=True)
    torch.manual_seed(123)  # other initial weights: what a retrain elsewhere gives
    other = registries().backbones.get("lenet").build((1, 28, 28), 10)
    blob["state_dict"] = other.state_dict()
    torch.save(blob, path)
    hash_path(path).unlink()
    capsys.readouterr()
    second = once()
    err = capsys.readouterr().err
    assert "reusing cached checkpoint" in err and "the model's weights changed" in err
    uncached = once(feature_cache=False)
    for name in ("msp", "knn"):
        assert second[name].checkpoint != first[name].checkpoint
        assert second[name].record_id != first[name].record_id
        assert second[name].metrics["auroc"] == uncached[name].metrics["auroc"]
        assert abs(second[name].metrics["auroc"] - first[name].metrics["auroc"]) > 1.0  # random weights: another number


def test_records_differing_only_in_precision_do_not_share_an_identity(tmp_path, monkeypatch):
    """The fast path simulated on the CPU (as tests/test_fast_path.py does): bf16 and fp32 runs of one request
    are two records, two identities, two table rows (the bf16 one labelled)."""
    from oodbench.report.tables import label

    monkeypatch.setattr(precision, "accelerated", lambda device: True)
    found = {}
    for p in ("fp32", "bf16"):
        (rec,) = run(RunRequest(["energy"], "fashionmnist", precision=p, results=str(tmp_path), **SMALL))
        found[p] = rec
    assert found["fp32"].config["precision"] == "fp32" and found["bf16"].config["precision"] == "bf16"
    assert found["fp32"].checkpoint == found["bf16"].checkpoint
    assert found["fp32"].record_id != found["bf16"].record_id
    same = dataclasses.replace(found["bf16"], config={**found["bf16"].config, "precision": "fp32"})
    assert same.record_id == found["fp32"].record_id  # precision is the only difference
    assert label(found["bf16"]) == "energy [bf16]" and label(found["fp32"]) == "energy"
    assert {r.config["device"] for r in found.values()} == {"cpu"} and found["fp32"].config["oodbench"]


def test_bf16_on_the_cpu_is_refused_in_one_line():
    import pytest

    from oodbench.core.errors import UsageError

    with pytest.raises(UsageError, match="--precision bf16 runs on a CUDA device; this run is on cpu"):
        run(RunRequest(["msp"], "fashionmnist", precision="bf16", device="cpu", **SMALL))
    with pytest.raises(UsageError, match="precision"):
        RunRequest(["msp"], "fashionmnist", precision="fp16")
