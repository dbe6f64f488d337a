"""Protocols (novelty, corruption, misclassification, repeats) on real MNIST-family data."""

from __future__ import annotations

import pytest
import torch

from oodbench.core.errors import UsageError
from oodbench.data import corruptions
from oodbench.data.imageset import ImageSet
from oodbench.pipeline.protocols import parse_holdout
from oodbench.pipeline.runner import RunRequest, run, run_many
from oodbench.report.render import render

SMALL = dict(epochs=3, train_limit=5000, test_limit=1000, n_tune=100)


def test_parse_holdout():
    assert parse_holdout("0,1", 10) == {"in": [2, 3, 4, 5, 6, 7, 8, 9], "unseen": [0, 1]}
    g = parse_holdout("in:2,6,7/seen:0,3,4,8/unseen:5,9,1", 10)
    assert g == {"in": [2, 6, 7], "seen": [0, 3, 4, 8], "unseen": [5, 9, 1]}
    for bad in ("0,x", "0,10", "in:1/unseen:1", "0,1,2,3,4,5,6,7,8,9"):
        with pytest.raises(UsageError):
            parse_holdout(bad, 10)


def test_novelty_trains_on_in_classes_and_scores_held_out(tmp_path):
    (rec,) = run(RunRequest(["msp"], "mnist", protocol="novelty", holdout="0,1", results=str(tmp_path), **SMALL))
    assert rec.id == "mnist-{0,1}" and rec.ood == "mnist{0,1}"
    assert rec.config["holdout"] == {"in": [2, 3, 4, 5, 6, 7, 8, 9], "unseen": [0, 1]}
    assert any("classes [0, 1]" in n for n in rec.data["ood"])
    assert rec.model["train_config"]["epochs"] == 3 and rec.metrics["auroc"] > 80
    # what decides a CPU training's bits, so that a retrain with other weights can be traced to its host
    assert rec.host["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert rec.host["threads"] == torch.get_num_threads()


def test_leave_one_class_out_gives_ten_rows_and_a_mean(tmp_path):
    recs = run_many(
        RunRequest(
            ["msp"],
            "mnist",
            protocol="novelty",
            holdout="each",
            results=str(tmp_path),
            epochs=1,
            train_limit=1500,
            test_limit=600,
            n_tune=50,
        )
    )
    assert sorted(r.ood for r in recs) == [f"mnist{{{c}}}" for c in range(10)]
    assert len({r.checkpoint for r in recs}) == 10  # one backbone per in-class set
    table = render(recs)
    assert table.count("| msp") == 11 and "| mean" in table and "10 sets" in table


def test_corruptions_are_deterministic_and_shape_preserving():
    x = ImageSet((torch.rand(6, 3, 32, 32) * 255).to(torch.uint8), torch.zeros(6, dtype=torch.long), "x")
    for kind in corruptions.names():
        a, b = corruptions.corrupt(x, kind, 3, seed=1), corruptions.corrupt(x, kind, 3, seed=1)
        assert torch.equal(a.images, b.images) and a.images.shape == x.images.shape, kind
        if kind != "jpeg_compression":
            assert not torch.equal(a.images, x.images), kind
    strong = corruptions.corrupt(x, "gaussian_noise", 5).images.float()
    weak = corruptions.corrupt(x, "gaussian_noise", 1).images.float()
    assert (strong - x.images.float()).abs().mean() > (weak - x.images.float()).abs().mean()


def test_corruption_auroc_rises_with_severity_for_noise(tmp_path):
    recs = run(
        RunRequest(
            ["fssd"],
            "fashionmnist",
            protocol="corruption",
            corruptions=["gaussian_noise", "impulse_noise"],
            severities=[1, 5],
            epochs=5,
            train_limit=30000,
            test_limit=2000,
            n_tune=200,
            results=str(tmp_path),
        )
    )
    auroc = {r.ood: r.metrics["auroc"] for r in recs}
    assert auroc["gaussian_noise@5"] > auroc["gaussian_noise@1"]
    assert auroc["impulse_noise@5"] > auroc["impulse_noise@1"]
    table = render(recs)
    assert "| fssd       | mean" in table and "AUROC s5" in table
    # paired split: corrupted twins of the tuning samples are never evaluated
    assert all(r.n_eval == {"id": 1800, "ood": 1800} for r in recs)


def test_corrupt_both_scores_corrupted_data_but_tunes_clean(tmp_path):
    (rec,) = run(
        RunRequest(
            ["msp"],
            "fashionmnist",
            oods=["mnist"],
            protocol="corruption",
            corrupt_both="impulse_noise:5",
            tune="oracle",
            results=str(tmp_path),
            **SMALL,
        )
    )
    assert rec.config["corrupt_both"] == "impulse_noise:5" and rec.config["tuning"] == "clean data"
    assert rec.id == "fashionmnist[impulse_noise:5]" and rec.ood == "mnist[impulse_noise:5]"
    assert any("impulse_noise severity 5" in n for n in rec.data["ood"])


def test_oracle_on_the_sweep_tunes_the_corrupted_copies_against_the_clean_ones(tmp_path):
    """Issue 28: a paired target's oracle tuning set is the corrupted images of the ID tuning indices (not the clean
    ID images, which tied every grid point at chance, TNR 5 %), and oracle is no worse than untuned on it."""
    req = dict(SMALL, protocol="corruption", corruptions=["contrast"], severities=[5], n_tune=300)
    (oracle,) = run(RunRequest(["knn"], "fashionmnist", tune="oracle", results=str(tmp_path), **req))
    (untuned,) = run(RunRequest(["knn"], "fashionmnist", tune="none", results=str(tmp_path), **req))
    assert oracle.tuning["ood_source"] == "contrast@5" and oracle.tuning["grid_size"] > 1
    chance = {"auroc": 50.0, "tnr95": 5.0}[oracle.tuning["criterion"]]
    assert oracle.tuning["value"] > chance + 20, oracle.tuning  # identical ID and "OOD" tuning sets sit at chance
    assert oracle.metrics["auroc"] >= untuned.metrics["auroc"] - 1.0
    assert oracle.n_eval == {"id": 700, "ood": 700}  # both sides of the tuning pairs stay out of the evaluation


def test_misclassification(tmp_path):
    recs = run(
        RunRequest(["msp", "energy"], "fashionmnist", protocol="misclassification", results=str(tmp_path), **SMALL)
    )
    for r in recs:
        m = r.metrics
        assert r.ood == "errors" and {"auroc_err", "aupr_succ", "aupr_err"} <= set(m)
        assert m["mean_msp_wrong"] < m["mean_msp_right"]
    assert recs[0].metrics["auroc_err"] > 60  # MSP ranks errors below successes (paper 004)
    with pytest.raises(UsageError):
        run(RunRequest(["msp"], "fashionmnist", oods=["mnist"], protocol="misclassification"))


def test_repeats_report_mean_and_std(tmp_path):
    recs = run_many(RunRequest(["msp"], "fashionmnist", oods=["mnist"], results=str(tmp_path), **SMALL), seeds=[0, 1])
    assert [r.seed for r in recs] == [0, 1] and recs[0].checkpoint != recs[1].checkpoint
    table = render(recs)
    assert "±" in table and "0,1" in table
