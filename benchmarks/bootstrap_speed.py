"""Seconds for the 95 % bootstrap intervals of every metric of one record (issue 11 target: under 1 s).

    python benchmarks/bootstrap_speed.py [--n-id 10000] [--n-ood 10000] [--resamples 1000] [--repeat 5]

Scores are N(1, 1) for ID and N(0, 1) for OOD, rounded to 3 decimals so that ties occur (the slower path).
Prints the best and the median of ``--repeat`` timings of the resampled metrics and their percentile
intervals (what :func:`oodbench.records.bootstrap.ood_ci` does for a record: all metrics); the same for AUROC only
(what each paired rank comparison costs per row and seed); and the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def timings(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-id", type=int, default=10_000)
    ap.add_argument("--n-ood", type=int, default=10_000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from oodbench.records import bootstrap

    g = np.random.default_rng(0)
    id_s, ood_s = np.round(g.normal(1, 1, args.n_id), 3), np.round(g.normal(0, 1, args.n_ood), 3)
    n_metrics = len(bootstrap.resampled(id_s[:10], ood_s[:10], 2))
    print(
        f"{args.n_id} ID + {args.n_ood} OOD scores, {args.resamples} stratified resamples, "
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}"
    )
    for what, only_auroc in ((f"all {n_metrics} metrics", False), ("AUROC only", True)):

        def once(only: bool = only_auroc) -> None:
            bootstrap.intervals(bootstrap.resampled(id_s, ood_s, args.resamples, 0, only))

        ts = timings(once, args.repeat)
        print(f"{what:>14}: best {min(ts):.3f} s, median {statistics.median(ts):.3f} s over {args.repeat} runs")


if __name__ == "__main__":
    main()
