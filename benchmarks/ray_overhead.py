"""Wall time of a suite's first entries under ``--executor local`` and ``--executor ray``, cold caches each.

    OODBENCH_DATA=../shared/datasets python benchmarks/ray_overhead.py [--suite cpu] [--entries 3] [--cpus-per-run 1]

Each executor runs ``oodbench bench`` in a fresh process with its own empty checkpoint/feature cache and results
folder, so both train every model and extract every feature; the Ray time includes starting the local Ray.
Prints both wall times, Ray's overhead ((ray - local) / local), the largest AUROC difference between the two
executors' records, and the load average before and after (the figures mean little on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def bench(executor: str, suite_file: Path, work: Path, extra: list[str]) -> float:
    env = dict(os.environ, OODBENCH_CACHE=str(work / f"cache-{executor}"), OODBENCH_QUIET="1")
    args = [sys.executable, "-m", "oodbench.cli", "bench", "part", "--file", str(suite_file)]
    args += ["--results", str(work / f"results-{executor}"), "--executor", executor]
    t = time.perf_counter()
    done = subprocess.run(args + (extra if executor == "ray" else []), env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"{executor}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    print(f"{executor:5s} {seconds:8.1f} s   {done.stdout.strip()}", flush=True)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="cpu")
    ap.add_argument("--entries", type=int, default=3, help="the suite's first N entries")
    ap.add_argument("--cpus-per-run", type=int, default=1)
    ap.add_argument("--max-parallel", type=int, default=None)
    args = ap.parse_args()

    from oodbench.records.store import read_records
    from oodbench.suites.bench import load_suites

    entries = load_suites(REPO / "benchmarks.yaml")[args.suite]["runs"][: args.entries]
    extra = ["--cpus-per-run", str(args.cpus_per_run)]
    extra += ["--max-parallel", str(args.max_parallel)] if args.max_parallel else []
    with tempfile.TemporaryDirectory(prefix="oodbench-ray-overhead-") as tmp:
        work = Path(tmp)
        suite_file = work / "suite.yaml"
        suite_file.write_text(yaml.safe_dump({"suites": {"part": {"runs": entries}}}))
        print(f"{args.suite} suite, first {len(entries)} entries; {os.cpu_count()} CPU(s); ray {' '.join(extra)}")
        print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
        local = bench("local", suite_file, work, extra)
        ray = bench("ray", suite_file, work, extra)
        print(f"load average after:  {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"ray overhead: {100 * (ray - local) / local:+.1f} % of the local wall time")
        a = {r.record_id: r.metrics["auroc"] for r in read_records(work / "results-local" / "part")}
        b = {r.record_id: r.metrics["auroc"] for r in read_records(work / "results-ray" / "part")}
        same = set(a) == set(b)
        diff = max((abs(a[k] - b[k]) for k in a.keys() & b.keys()), default=float("nan"))
        print(f"records: local {len(a)}, ray {len(b)}, same identities: {same}; largest AUROC difference {diff:.3f}")


if __name__ == "__main__":
    main()
