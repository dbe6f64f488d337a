"""OpenOOD's near/far groups (issue 30, item 1): ``--near``/``--far`` and a suite's ``oods: {near: [...], far: [...]}``
put each OOD set's group in its record; tables print each set's AUROC and each group's mean, with the group's
interval from the per-set bootstrap."""

from __future__ import annotations

import contextlib
import dataclasses
import io

import numpy as np
import pytest

from oodbench.cli.main import main
from oodbench.core.errors import UsageError
from oodbench.pipeline.request import BadValue, RunRequest
from oodbench.records.intervals import Intervals
from oodbench.records.store import record_files
from oodbench.report.ood_groups import group_means, group_sections, group_table, record_groups
from oodbench.suites.bench import load_suites

SMALL = ["--epochs", "1", "--train-limit", "2000", "--test-limit", "600", "--n-tune", "100"]
GROUPS = {"near": ["mnist"], "far": ["gaussian", "uniform"]}


@pytest.fixture(scope="module")
def grouped_run(tmp_path_factory):
    """One real run: msp and energy, FashionMNIST vs near {MNIST} and far {Gaussian, uniform noise}."""
    out = tmp_path_factory.mktemp("groups")
    args = ["run", "-d", "msp", "-d", "energy", "--in", "fashionmnist", "--near", "mnist"]
    args += ["--far", "gaussian", "--far", "uniform", *SMALL, "--results", str(out)]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = main(args)
    return out, code, [r for _, r in record_files(out)], printed.getvalue()


def test_records_carry_their_group_and_the_group_mean_is_the_mean_of_its_sets(grouped_run):
    out, code, records, _ = grouped_run
    assert code == 0 and len(records) == 6
    assert {r.ood: r.target["group"] for r in records} == {"mnist": "near", "gaussian": "far", "uniform": "far"}
    assert record_groups(records) == GROUPS
    means = group_means(records, GROUPS)
    for det in ("msp", "energy"):
        auroc = {r.ood: r.metrics["auroc"] for r in records if r.detector == det}
        (row,) = [k for k in means if k[1] == det]
        assert means[row]["far"] == pytest.approx((np.mean([auroc["gaussian"], auroc["uniform"]]), 0.0))
        assert means[row]["near"] == pytest.approx((auroc["mnist"], 0.0))
        assert f"{means[row]['far'][0]:.1f}" in group_table(records, GROUPS)


def test_the_run_prints_the_group_table(grouped_run):
    printed = grouped_run[3]
    assert "**OOD groups**" in printed and "near mean AUROC" in printed and "far mean AUROC" in printed


def test_group_interval_comes_from_the_per_set_bootstrap(grouped_run):
    """The group's interval holds its mean and is no wider than the widest of its sets' (the mean of
    independent per-set replicates varies less than the most variable set)."""
    out, _, records, _ = grouped_run
    ci = Intervals(out)
    far = [r for r in records if r.detector == "msp" and r.target["group"] == "far"]
    lo, hi = ci(far)["auroc"]
    mean = np.mean([r.metrics["auroc"] for r in far])
    assert lo <= mean <= hi
    widest = max(r.ci["intervals"]["auroc"][1] - r.ci["intervals"]["auroc"][0] for r in far)
    assert hi - lo <= widest + 1e-9
    assert f"{mean:.1f} [{lo:.1f}, {hi:.1f}]" in group_table(records, GROUPS, ci=ci)


def test_bad_groups_are_one_line():
    with pytest.raises(BadValue, match="'svhn', which is not an OOD set"):
        RunRequest(["msp"], "fashionmnist", oods=["mnist"], ood_groups={"near": ["svhn"]})
    with pytest.raises(BadValue, match="'mnist' is in two groups"):
        RunRequest(["msp"], "fashionmnist", oods=["mnist"], ood_groups={"near": ["mnist"], "far": ["mnist"]})
    assert main(["run", "-d", "msp", "--in", "fashionmnist", "--out", "mnist", "--near", "mnist"]) == 2


def test_a_suite_groups_its_oods(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("suites:\n  s:\n    runs:\n      - {detectors: [msp], id: mnist, oods: {near: [x], far: [y, z]}}\n")
    (run,) = load_suites(good)["s"]["runs"]
    assert run["oods"] == ["x", "y", "z"] and run["ood_groups"] == {"near": ["x"], "far": ["y", "z"]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("suites:\n  s:\n    runs:\n      - detectors: [msp]\n        id: mnist\n        oods: {near: x}\n")
    with pytest.raises(UsageError, match="bad.yaml:6: .*a list of OOD sets per group"):
        load_suites(bad)


def test_each_protocol_gets_its_own_group_table(grouped_run):
    """A full-spectrum row (ID ∪ csID) and an anomaly row (clean ID) of the same detector on the same sets are
    different rows: one group table per protocol, each with its own records' means (they were once merged by row
    key, the later record overwriting the other)."""
    _, _, records, _ = grouped_run
    shifted = [
        dataclasses.replace(r, protocol="full-spectrum", metrics={**r.metrics, "auroc": r.metrics["auroc"] - 10.0})
        for r in records
    ]
    clean_table, shifted_table = group_sections([*records, *shifted], GROUPS)
    assert clean_table.startswith("**OOD groups, anomaly**")
    assert shifted_table.startswith("**OOD groups, full-spectrum**")
    for table, rs in ((clean_table, records), (shifted_table, shifted)):
        msp = [r.metrics["auroc"] for r in rs if r.detector == "msp" and r.ood in GROUPS["far"]]
        (line,) = [ln for ln in table.splitlines() if "| msp " in ln]
        assert f"{np.mean(msp):.1f}" in line
    assert group_sections(records, GROUPS)[0].startswith("**OOD groups** (AUROC")  # one protocol: unnamed
