"""Suites: resumable `bench` (second run does nothing; a killed run resumes) and the leaderboard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from oodbench.suites.bench import bench
from oodbench.suites.leaderboard import leaderboard, write_section

SUITE = {
    "suites": {
        "tiny": {
            "runs": [
                {
                    "detectors": ["msp", "energy"],
                    "id": "fashionmnist",
                    "oods": ["mnist"],
                    "epochs": 1,
                    "train_limit": 2000,
                    "test_limit": 400,
                    "n_tune": 50,
                    "tune": "oracle",
                    "paper": {"msp": {"auroc": 77.3}},
                },
                {
                    "detectors": ["msp"],
                    "id": "mnist",
                    "protocol": "novelty",
                    "holdout": "0,1",
                    "epochs": 1,
                    "train_limit": 2000,
                    "test_limit": 400,
                    "n_tune": 50,
                },
                {
                    "detectors": ["msp"],
                    "id": "fashionmnist",
                    "oods": ["gaussian"],
                    "epochs": 1,
                    "train_limit": 2000,
                    "test_limit": 400,
                    "n_tune": 50,
                    "seeds": [3, 4],
                },
            ]
        }
    }
}


def write_suite(tmp_path: Path) -> Path:
    path = tmp_path / "suites.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    return path


def test_second_bench_does_no_work_and_leaderboard_renders(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OODBENCH_QUIET")
    suites = write_suite(tmp_path)
    first = bench("tiny", suites, str(tmp_path / "res"))
    assert first == {"done": 4, "skipped": 0, "failed": 0, "total": 4}
    n_records = len(list((tmp_path / "res" / "tiny").rglob("*.json")))
    assert n_records == 5
    capsys.readouterr()
    second = bench("tiny", suites, str(tmp_path / "res"))
    assert second == {"done": 0, "skipped": 4, "failed": 0, "total": 4}
    assert "nothing to do" in capsys.readouterr().err
    board = leaderboard("tiny", suites, str(tmp_path / "res"))
    assert "### anomaly" in board and "### novelty" in board
    assert "FPR95 (ID+)" in board and "FPR95 (OOD+)" in board  # the FPR convention is named
    msp_row = next(
        line for line in board.splitlines() if "| msp" in line and "| mnist " in line and "fashionmnist" in line
    )
    assert "77.3" in msp_row and "oracle" in msp_row
    assert any("± " in line and "gaussian" in line for line in board.splitlines())  # two seeds → mean ± std


def test_write_section_replaces_in_place(tmp_path):
    md = tmp_path / "LEADERBOARD.md"
    md.write_text("# Board\n\nintro\n")
    write_section(md, "cpu", "table v1")
    write_section(md, "cpu", "table v2")
    write_section(md, "smoke", "smoke table")
    text = md.read_text()
    assert text.startswith("# Board\n\nintro\n")
    assert "table v2" in text and "table v1" not in text and text.count("<!-- oodbench:leaderboard cpu -->") == 1
    assert "smoke table" in text


def test_killed_bench_resumes_without_redoing_finished_runs(tmp_path):
    suites = write_suite(tmp_path)
    res = tmp_path / "res"
    env = dict(os.environ, OODBENCH_QUIET="")
    args = [sys.executable, "-m", "oodbench.cli", "bench", "tiny", "--file", str(suites), "--results", str(res)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    markers = res / "tiny" / ".done"
    deadline = time.time() + 300
    while time.time() < deadline and not (markers.is_dir() and any(markers.iterdir())):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted(p.name for p in markers.iterdir())
    assert 1 <= len(finished) < 4, "the kill should land mid-suite"
    records_before = {p: p.stat().st_mtime_ns for p in (res / "tiny").rglob("*.json")}
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("skip (done)") == len(finished)
    assert "4 in the suite" in again.stdout
    assert len(list(markers.iterdir())) == 4
    for path, mtime in records_before.items():  # finished records were not rewritten
        assert path.stat().st_mtime_ns == mtime


def test_leaderboard_check_against_committed_records(tmp_path, capsys, monkeypatch):
    """Issue 13: `--write --publish` commits the records (JSON, no scores) beside the file; `--check` renders from
    them alone and exits 1 with one line naming the stale section and the regenerating command, 0 when it matches."""
    from oodbench.cli.main import main

    suites = write_suite(tmp_path)
    res = tmp_path / "res"
    assert bench("tiny", suites, str(res))["failed"] == 0
    monkeypatch.chdir(tmp_path)
    board = tmp_path / "LEADERBOARD.md"
    assert (
        main(["leaderboard", "tiny", "--file", str(suites), "--results", str(res), "--write", str(board), "--publish"])
        == 0
    )
    committed = tmp_path / "leaderboards" / "tiny"
    assert sorted(p.name for p in committed.rglob("*.json")) == sorted(
        p.name for p in res.joinpath("tiny").rglob("*.json")
    )
    assert not list(committed.rglob("*.npz"))  # scores are not committed
    capsys.readouterr()
    assert main(["leaderboard", "tiny", "--file", str(suites), "--check", str(board)]) == 0
    text = board.read_text()
    row = next(line for line in text.splitlines() if "| msp" in line and "fashionmnist" in line and "| mnist " in line)
    cells = row.split("|")
    cells[8] = " 12.3 " if cells[8].strip() != "12.3" else " 45.6 "  # one number edited (the AUROC column)
    board.write_text(text.replace(row, "|".join(cells)))
    capsys.readouterr()
    assert main(["leaderboard", "tiny", "--file", str(suites), "--check", str(board)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "section `tiny` is stale" in err[0] and "--write" in err[0]


def test_download_does_not_change_which_runs_are_done():
    """`bench --download` (issue 13) lets runs fetch data; a run done without it is still done with it."""
    import dataclasses

    from oodbench.pipeline.request import RunRequest
    from oodbench.suites.bench import request_key

    req = RunRequest(detectors=["msp"], id="mnist", oods=["notmnist"])
    assert request_key(req) == request_key(dataclasses.replace(req, download=True))
    assert request_key(req) != request_key(dataclasses.replace(req, seed=1))


def test_train_options_key_a_run_and_leave_earlier_markers_valid():
    """A run's training settings (`--train`, a suite's `train_options:`) change what it computes, so its marker;
    without any, the marker keeps the name it had before the field existed (computed at 46179ba)."""
    import dataclasses

    from oodbench.pipeline.request import RunRequest
    from oodbench.suites.bench import request_key

    req = RunRequest(detectors=["msp"], id="mnist", oods=["notmnist"])
    assert request_key(req) == "d4a0f6c20b70ab98"
    assert request_key(dataclasses.replace(req, train_options={"batch_size": 512})) != request_key(req)
