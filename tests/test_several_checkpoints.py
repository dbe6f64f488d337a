"""Several checkpoints of one recipe (issue 30, item 3): ``--model a --model b`` (``models: [...]`` in a suite) runs
each, one record per checkpoint under one backbone name, and tables report mean ± std over them, computed from the
records — a checkpoint added later joins the mean without rerunning the others. The checkpoints are the shared
CIFAR-10 models brought from outside the project (../shared/models), read where they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oodbench.pipeline.request import BadValue, RunRequest
from oodbench.pipeline.runner import family_name
from oodbench.records.store import record_files
from oodbench.suites.bench import bench
from oodbench.suites.leaderboard import leaderboard

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
FILES = [MODELS / f"cifar10-mininet-w64-s{i}.ts" for i in range(3)]
pytestmark = pytest.mark.skipif(not all(f.is_file() for f in FILES), reason=f"the shared models are not in {MODELS}")


def _suite(path: Path, models: list[Path]) -> Path:
    listed = ", ".join(str(m) for m in models)
    path.write_text(
        "suites:\n  ck:\n    runs:\n"
        f"      - {{detectors: [msp, energy], id: cifar10-jpeg, oods: [svhn], models: [{listed}],\n"
        "         train_limit: 200, test_limit: 200, n_tune: 50}\n"
    )
    return path


def test_each_checkpoint_is_a_record_and_a_later_one_joins_the_mean(tmp_path, capsys):
    results = tmp_path / "results"
    assert bench("ck", _suite(tmp_path / "two.yaml", FILES[:2]), str(results))["done"] == 2
    counts = bench("ck", _suite(tmp_path / "three.yaml", FILES), str(results))
    assert counts["done"] == 1 and counts["skipped"] == 2  # only the added checkpoint runs
    records = [r for _, r in record_files(results / "ck")]
    assert len(records) == 6 and {r.backbone for r in records} == {"model:cifar10-mininet-w64"}
    assert len({r.checkpoint for r in records}) == 3  # each checkpoint's weights hash
    text = leaderboard("ck", tmp_path / "three.yaml", str(results))
    for det in ("msp", "energy"):
        auroc = [r.metrics["auroc"] for r in records if r.detector == det]
        row = next(line for line in text.splitlines() if f"| {det} " in line)
        assert "3 ckpts" in row
        assert f"{np.mean(auroc):.1f} ± {np.std(auroc):.1f}" in row  # NumPy's mean and std over the records


def test_family_name_and_bad_combinations():
    assert family_name([str(f) for f in FILES]) == "cifar10-mininet-w64"
    assert family_name(["a/resnet18.pt2"]) == "resnet18" and family_name(["a.pt2", "b.pt2"]) == "checkpoints"
    with pytest.raises(BadValue, match="instead of --model"):
        RunRequest(["msp"], "cifar10-jpeg", model=str(FILES[0]), models=[str(f) for f in FILES])
    with pytest.raises(BadValue, match="--model-name describe a --model"):
        RunRequest(["msp"], "cifar10-jpeg", model_name="mine")
