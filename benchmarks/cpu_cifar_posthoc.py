"""Post-hoc detectors on CIFAR-10 on this CPU, through a model file (issue 23, item 5).

Builds oodbench's ResNet-18 32×32 with random-but-fixed weights (seed 0), exports it with ``torch.export`` to a
temporary ``.pt2`` (normalisation inside), and runs ``oodbench run --model FILE`` with msp, energy, knn, vim,
mahalanobis and fssd on cifar10-jpeg vs svhn, tinyimagenet-r32 and dtd-subset32 at ``--train-limit 5000
--test-limit 2000``. It prints the seconds and images/s of each stage (from the records' timing facts) and the
whole wall time. **The AUROCs of random weights mean nothing**: this measures the CPU path, not detectors.

    OODBENCH_DATA=../shared/datasets python benchmarks/cpu_cifar_posthoc.py [--train-limit N] [--test-limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DETECTORS = ["msp", "energy", "knn", "vim", "mahalanobis", "fssd"]
OODS = ["svhn", "tinyimagenet-r32", "dtd-subset32"]


def export_random_resnet18(path: Path) -> None:
    from oodbench.plugins.manager import registries

    torch.manual_seed(0)
    backbone = registries().backbones.get("resnet18").build((3, 32, 32), 10).eval()
    program = torch.export.export(backbone, (torch.rand(2, 3, 32, 32),), dynamic_shapes=({0: torch.export.Dim("n")},))
    torch.export.save(program, path)


def stage_rows(records: list[dict], n_train: int, n_test: int) -> list[tuple[str, float, float]]:
    """(stage, seconds, images/s) from the run's timing facts: shared stages once, then each detector's fit."""
    first = records[0]["seconds"]
    n_eval = n_test * (1 + len(OODS))
    rows = [
        ("load data (train + test + OOD sets)", first["load_data"], (n_train + n_eval) / first["load_data"]),
        ("backbone (load the .pt2, probe)", first["backbone"], float("nan")),
        ("extract features (ID test + OOD, one pass)", first["extract_features"], n_eval / first["extract_features"]),
    ]
    for det in DETECTORS:
        s = next(r["seconds"] for r in records if r["detector"] == det)
        rows.append((f"{det}: fit (first fit extracts ID train)", s["fit"], n_train / max(s["fit"], 1e-9)))
        score = sum(r["seconds"]["score"] for r in records if r["detector"] == det)
        rows.append((f"{det}: score {1 + len(OODS)} sets", score, n_eval / max(score, 1e-9)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-limit", type=int, default=5000)
    ap.add_argument("--test-limit", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        export_random_resnet18(work / "resnet18-random.pt2")
        cmd = [sys.executable, "-m", "oodbench.cli", "run", "--model", str(work / "resnet18-random.pt2")]
        cmd += [a for d in DETECTORS for a in ("-d", d)] + ["--in", "cifar10-jpeg"]
        cmd += [a for o in OODS for a in ("--out", o)] + ["--model-layer", "net.layer3", "--model-layer", "net.layer4"]
        cmd += ["--train-limit", str(args.train_limit), "--test-limit", str(args.test_limit)]
        cmd += ["--results", str(work / "results"), "--no-feature-cache"]
        env = dict(os.environ, OODBENCH_CACHE=str(work / "cache"))
        print("$", " ".join(cmd[2:]), flush=True)
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, text=True, capture_output=True)
        wall = time.perf_counter() - start
        print(done.stdout)
        if done.returncode:
            sys.exit(f"the run failed ({done.returncode}): {done.stderr.strip().splitlines()[-1]}")
        records = [json.loads(p.read_text()) for p in (work / "results").rglob("*.json") if "metrics" in p.read_text()]
    print(f"{torch.get_num_threads()} torch threads; random weights: the AUROCs above mean nothing\n")
    print(f"{'stage':<48} {'seconds':>8} {'images/s':>9}")
    for stage, seconds, rate in stage_rows(records, args.train_limit, args.test_limit):
        shown = f"{rate:9.0f}" if seconds >= 0.05 and rate == rate else f"{'-':>9}"  # no rate for ~0 s or nan
        print(f"{stage:<48} {seconds:8.1f} {shown}")
    print(f"\nwhole run (wall, including Python and torch start-up): {wall:.1f} s")


if __name__ == "__main__":
    main()
