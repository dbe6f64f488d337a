"""Regenerate the ``cifar10-cpu`` suite and print its wall time and images/s per stage on this machine (issue 30).

Runs ``oodbench bench cifar10-cpu`` (three shared CIFAR-10 models brought with ``--model``, every post-hoc detector;
benchmarks.yaml says what the suite holds) from a cold feature cache, then reads the stage timings every record
keeps (``seconds``): per checkpoint, loading the data, the model, one feature extraction over every split (train,
ID test, four OOD sets; the train split inside the first fit that reads it), and every detector's fit and
scoring, per entry (the anomaly entry and the full-spectrum one, whose ID test split is the clean one and its
csID copies). Images per stage: the images that stage read.

    OODBENCH_DATA=../shared/datasets python benchmarks/cifar10_cpu.py [--results DIR] [--only-read]

``--only-read`` prints the figures of records already under ``DIR/cifar10-cpu`` (no run). To publish the records:
``oodbench leaderboard cifar10-cpu --results DIR --write LEADERBOARD.md --publish``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from oodbench.records.store import record_files

REPO = Path(__file__).resolve().parents[1]
STAGES = ("load_data", "backbone", "extract_features")


def run_suite(results: Path) -> float:
    env = {**os.environ, "OODBENCH_CACHE": tempfile.mkdtemp(prefix="cifar10-cpu-cache-"), "OODBENCH_YES": "1"}
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "oodbench", "bench", "cifar10-cpu", "--results", str(results)]
    subprocess.run(cmd, cwd=REPO, env=env, check=True)
    return time.perf_counter() - t0


def id_images(first) -> int:
    """ID test images a run read: the clean test split and, full-spectrum, each csID copy of it (tuning part too)."""
    csid = first.config.get("csid") or {}
    copies = 1 + len(csid.get("corruptions", [])) * len(csid.get("severities", []))
    return (first.n_eval["id"] // copies + first.config["n_tune"]) * copies


def stage_table(records: list) -> list[tuple[str, float, int]]:
    """(stage, seconds summed over checkpoints, images read) from the records' own timings; stages carry their
    protocol's name when the suite has several (the anomaly and the full-spectrum entry)."""
    runs: dict[tuple, list] = defaultdict(list)
    for r in records:
        runs[(r.protocol, r.checkpoint)].append(r)
    several = len({protocol for protocol, _ in runs}) > 1
    rows: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for (protocol, _), recs in runs.items():
        tag, first = (f"{protocol}: " if several else ""), recs[0]
        train = min(first.config["train_limit"] or 50000, 50000)
        id_test = id_images(first)
        ood_test = sum(r.n_eval["ood"] + first.config["n_tune"] for r in recs if r.detector == first.detector)
        rows[tag + "backbone"][0] += first.seconds.get("backbone", 0.0)
        rows[tag + "load_data"][0] += first.seconds.get("load_data", 0.0)
        rows[tag + "load_data"][1] += train + id_test + ood_test
        rows[tag + "extract_features"][0] += first.seconds.get("extract_features", 0.0)  # test splits, once per run
        rows[tag + "extract_features"][1] += id_test + ood_test
        for r in recs:  # fit is once per detector and run: every record of the detector repeats it
            rows[f"{tag}score {r.detector}"][0] += r.seconds.get("score", 0.0)
            rows[f"{tag}score {r.detector}"][1] += r.n_eval["ood"] + r.n_eval["id"]
        for det in dict.fromkeys(r.detector for r in recs):
            one = next(r for r in recs if r.detector == det)
            rows[f"{tag}fit {det}"][0] += one.seconds.get("fit", 0.0)
            rows[f"{tag}fit {det}"][1] += train
    head = [f"{p}: {s}" if several else s for p in sorted({p for p, _ in runs}) for s in STAGES]
    rest = sorted(k for k in rows if k not in head)  # protocol prefixes sort the stages by entry
    return [(stage, rows[stage][0], int(rows[stage][1])) for stage in [*head, *rest] if stage in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=None, help="results folder (default: a temporary one)")
    parser.add_argument("--only-read", action="store_true", help="print the figures of existing records")
    args = parser.parse_args()
    results = Path(args.results or tempfile.mkdtemp(prefix="cifar10-cpu-"))
    wall = None if args.only_read else run_suite(results)
    records = [r for _, r in record_files(results / "cifar10-cpu")]
    if not records:
        sys.exit(f"no cifar10-cpu records under {results}")
    print(
        f"\ncifar10-cpu: {len(records)} records, {len({r.checkpoint for r in records})} checkpoints, cpu threads "
        f"{os.cpu_count()}" + (f", wall {wall:.0f} s ({wall / 60:.1f} min)" if wall is not None else "")
    )
    print(f"{'stage':<28} {'seconds':>9} {'images':>9} {'images/s':>10}")
    for stage, sec, images in stage_table(records):
        rate = f"{images / sec:,.0f}" if sec > 0 and images else "—"
        print(f"{stage:<28} {sec:>9.1f} {images:>9,} {rate:>10}")
    print(
        "extract_features: the ID and OOD test splits. The train split is extracted inside the first fit that reads "
        "it (its images/s are in that fit's row: knn reads the penultimate features, gram every feature map); fit "
        "rows count the train images; the logit-only fits read the features already there."
    )


if __name__ == "__main__":
    main()
