"""benchmarks/gpu.py's own logic on the CPU: what it reads from the real commands' output, and how a failing
command is reported (its full rehearsal, ``gpu.py --rehearse``, takes half an hour here and is run by hand)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys

import numpy as np
import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def gpu():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", REPO / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_row_b_reads_each_detectors_mean_and_std_from_a_real_two_seed_leaderboard(gpu, tmp_path, capsys):
    entry = {"detectors": ["msp", "energy"], "id": "fashionmnist", "oods": ["mnist"], "epochs": 1, "device": "cpu"}
    entry |= {"train_limit": 300, "test_limit": 60, "seeds": [0, 1]}
    board = gpu.seeded_board(tmp_path, "twoseeds", entry)
    relayed = capsys.readouterr().out.splitlines()  # the commands' status lines, passed on as they came
    assert any(line.startswith("    [1/2] run: anomaly fashionmnist→mnist seed 0") for line in relayed), relayed
    assert any(line.startswith("    [2/2] run:") for line in relayed)
    assert any(line.startswith("    training lenet on fashionmnist") for line in relayed)
    for detector in ("msp", "energy"):
        found = gpu.mean_std_auroc(board, detector)
        assert found and re.fullmatch(r"\d+\.\d ± \d+\.\d", found), (detector, board)
        aurocs = [
            json.loads(p.read_text())["metrics"]["auroc"] for p in (tmp_path / "twoseeds").rglob(f"{detector}__*.json")
        ]
        assert len(aurocs) == 2
        assert float(found.split(" ± ")[0]) == pytest.approx(np.mean(aurocs), abs=0.051)
    assert gpu.mean_std_auroc(board, "odin") is None


def test_a_failing_command_is_one_step_failure_with_its_last_lines(gpu, tmp_path):
    with pytest.raises(gpu.StepFailed, match=r"exit 2 after .*\n.*unknown detector"):
        gpu.oodbench(["run", "-d", "no-such-detector", "--in", "mnist"], tmp_path / "cache")
    table = gpu.Table(rehearsal=True)
    table.add("figure", "≥ 1", "2")
    assert table.rows == [("figure", "≥ 1", "2")]
    assert gpu.REHEARSAL.entry({"device": "cuda", "epochs": 30})["device"] == "cpu"
    assert gpu.REHEARSAL.entry({"epochs": 30})["epochs"] == 1


def test_the_entry_points_stub_declares_what_pip_installed(tmp_path):
    """gpu_device.sh's fallback where ``pip install -e .`` fails on the GPU machine: the stub's metadata must
    give importlib.metadata the same entry points as the installed distribution (pip built both from
    pyproject.toml)."""
    import importlib.metadata as metadata

    spec = importlib.util.spec_from_file_location("entry_points_stub", REPO / "benchmarks" / "entry_points_stub.py")
    stub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stub)
    info = stub.write_stub(tmp_path)
    found = metadata.PathDistribution(info)
    installed = metadata.distribution("oodbench")
    assert (found.name, found.version) == (installed.name, installed.version)

    def points(dist):
        return sorted((e.group, e.name, e.value) for e in dist.entry_points)

    assert points(found) == points(installed)
    assert ("oodbench", "builtin-detectors", "oodbench_builtins.detectors") in points(found)


def test_the_speed_step_reads_extraction_and_every_ratio_from_the_real_scripts(gpu, tmp_path):
    """detector_speed.py's and speed_end_to_end.py's real output (toy size, CPU): extraction at the batch
    ``oodbench run`` would use and at ``--extract-batches``, and the three ratios of each target detector."""
    args = ["--epochs", "1", "--train-limit", "300", "--test-limit", "40"]
    script = str(REPO / "benchmarks" / "detector_speed.py")
    detectors = ["--detectors", ",".join(gpu.SPEED_DETECTORS)]
    out, _ = gpu.oodbench([*args, *detectors, "--extract-batches", "64"], tmp_path / "cache", script=script)
    rows = gpu.extraction_rows(out)
    assert [r[0] for r in rows] == [
        "feature extraction, ResNet-18 32×32, a run's batch",
        "  the same at the anchor's batch",
    ]
    # FashionMNIST's 28×28 on the CPU: a run's batch is the request's default, 512 (oodbench.pipeline.supply.batch_for)
    assert re.fullmatch(r"\d+ img/s \(batch 512\)", rows[0][2]), rows
    assert re.fullmatch(r"\d+ img/s \(batch 64\)", rows[1][2]), rows
    assert gpu.extraction_rows("no such lines")[0][2] == "?"
    e2e, _ = gpu.oodbench(args, tmp_path / "cache", script=str(REPO / "benchmarks" / "speed_end_to_end.py"))
    ratios = gpu.ratio_rows(out, e2e)
    assert len(ratios) == 3 * len(gpu.SPEED_DETECTORS)
    for figure, _, value in ratios:
        assert re.fullmatch(r"\d+\.\d× \([\d.]+ s vs [\d.]+ s\)", value), (figure, value, out, e2e)
