"""benchmarks.yaml: every suite entry names registered plugins and maps onto RunRequest fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from oodbench.pipeline.runner import TUNE_MODES, RunRequest
from oodbench.plugins.manager import registries
from oodbench.suites.bench import load_suites

ROOT = Path(__file__).resolve().parents[1]
SUITES = load_suites(ROOT / "benchmarks.yaml")  # as oodbench reads it: grouped `oods` flattened
RUNS = [(suite, i, run) for suite, body in SUITES.items() for i, run in enumerate(body["runs"])]


def test_required_suites_exist():
    assert {"smoke", "cpu", "gpu", "imagenet"} <= set(SUITES)


def test_everything_suite_names_every_builtin_detector():
    """Issue 26 item 4: a detector added to the built-ins joins the ``everything`` suite or this fails."""
    from conftest import builtin_names

    (run,) = SUITES["everything"]["runs"]
    assert sorted(run["detectors"]) == sorted(builtin_names("detectors"))


def test_cifar10_cpu_holds_every_post_hoc_builtin():
    """Issue 30 item 4: the anomaly entry holds every post-hoc built-in (a new one joins it or this fails); the
    full-spectrum entry all of them but the three the suite's description names (extra network passes over every
    scored image)."""
    from conftest import builtin_names

    detectors = registries().detectors
    post_hoc = sorted(n for n in builtin_names("detectors") if not detectors.get(n).needs.trains)
    anomaly, full = SUITES["cifar10-cpu"]["runs"]
    assert sorted(anomaly["detectors"]) == post_hoc
    assert full["protocol"] == "full-spectrum" and full["ood_groups"] == anomaly["ood_groups"]
    left_out = sorted(set(post_hoc) - set(full["detectors"]))
    assert left_out == ["adascale", "gram", "rankfeat"]
    assert all(name in SUITES["cifar10-cpu"]["description"] for name in left_out)


def test_imagenet_suite_groups_name_its_ood_sets():
    """OpenOOD v1.5's ImageNet-1K groups, written `oods: {near: [...], far: [...]}` and read as a flat list plus
    ``ood_groups``; the raw YAML keeps the grouped form."""
    raw = yaml.safe_load((ROOT / "benchmarks.yaml").read_text())["suites"]["imagenet"]
    groups = {"near": ["ssb-hard", "ninco"], "far": ["inaturalist", "textures", "openimage-o"]}
    for run, written in zip(SUITES["imagenet"]["runs"], raw["runs"]):
        assert written["oods"] == groups
        assert run["ood_groups"] == groups and run["oods"] == [*groups["near"], *groups["far"]]
    assert all(run.get("tune", "none") in ("none", "heldout") for run in SUITES["imagenet"]["runs"])


@pytest.fixture
def declared_for(monkeypatch):
    """Registries that see the datasets a suite's ``config:`` template declares (e.g. the imagenet suite's)."""
    from oodbench.plugins.manager import reset

    def regs(suite: str):
        config = SUITES[suite].get("config")
        if config:
            monkeypatch.setenv("OODBENCH_CONFIG", str(ROOT / config))
        reset()
        return registries()

    yield regs
    monkeypatch.setenv("OODBENCH_CONFIG", "none")
    reset()


@pytest.mark.parametrize("suite, i, run", RUNS, ids=[f"{s}-{i}" for s, i, _ in RUNS])
def test_suite_entry_is_valid(suite, i, run, declared_for):
    regs = declared_for(suite)
    fields = {f.name for f in dataclasses.fields(RunRequest)}
    extra = set(run) - fields - {"seeds", "paper"}
    assert not extra, f"{suite}[{i}] has unknown keys {extra}"
    for name in run["detectors"]:
        regs.detectors.get(name)
    for name in [run["id"], *run.get("oods", []), *([run["tune_out"]] if run.get("tune_out") else [])]:
        regs.datasets.get(name)
    if run.get("backbone"):
        regs.backbones.get(run["backbone"])
    assert run.get("tune", "none") in TUNE_MODES
    for det in run.get("paper") or {}:
        assert det in run["detectors"], f"paper numbers for {det!r}, which the entry does not run"
    RunRequest(**{k: v for k, v in run.items() if k not in ("seeds", "paper")})
