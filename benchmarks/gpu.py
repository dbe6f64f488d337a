"""Every GPU figure of issue 12 in one command, printed as one table beside its target.

    OODBENCH_DATA=/path/to/datasets python benchmarks/gpu.py [--skip train,suite,speed,agree,rowb] [--epochs 30]
        [--train batch_size=512 --train schedule=onecycle …]   # a ResNet-18 recipe for steps train and suite
    OODBENCH_DATA=../shared/datasets python benchmarks/gpu.py --rehearse     # the same steps on the CPU, toy size

On a CUDA machine, each step in a fresh process with its own cache under a temporary folder (``--work`` keeps it):

1. ``train``: ``oodbench train --backbone resnet18 --dataset cifar10-jpeg --device cuda``; its test accuracy and
   training window (first step to last, data already on the device) from the checkpoint's log, and the
   command's wall time.
2. ``suite``: the ``gpu`` suite's ResNet-18 entry (9 detectors × 4 OOD sets, oracle tuning) with an empty
   cache (cold), then again with the cache it left (warm: checkpoint and features cached).
3. ``speed``: ``benchmarks/detector_speed.py`` on cifar10-jpeg vs svhn with the step-1 checkpoint: one-pass
   feature extraction img/s (cold, no feature cache) at a run's batch, and again at the anchor's batch of 4096
   (does the batch limit it?), and the six target detectors' fit + score seconds beside
   pytorch-ood 0.4.0's on the same model and features (extracted once, outside both clocks); then
   ``benchmarks/speed_end_to_end.py``: the same six detectors from images on the device to scores, forward
   passes inside both clocks, float32 on both sides and again with oodbench on its fast path (bf16 autocast,
   channels_last) against the same pytorch-ood seconds.
4. ``agree``: ``benchmarks/device_agreement.py`` on cifar10-jpeg vs svhn with the step-1 checkpoint: every
   post-hoc detector with its features on the CPU and on CUDA; the largest score difference and AUROC gap.
5. ``rowb``: the ``gpu`` suite's ResNet-34 entry (paper 003 Table 2 row B) over seeds 0, 1, 2 and its table
   (mean ± std) from ``oodbench leaderboard``.

Nothing here measures without CUDA; no test depends on it. The anchors in the targets are H100 figures (compare
with them on an H100 only: the device tool may lend another GPU, e.g. an H200; the table names it).
``--rehearse`` runs every step on the CPU at toy size (a few hundred images, one epoch, ``--devices cpu,cpu``
for the agreement) so that the script, its commands and its parsing are checked before GPU time is spent;
its figures say nothing about the targets and its table says so. A step that fails is reported in the table
and the steps after it still run; every row is printed as soon as it is measured.

Through a GPU machine that receives at most 64 MiB per call: ``benchmarks/gpu_pack.sh`` packs every split these
steps read (≈ 50 MiB: MNIST's test split only) and the pytorch-ood wheel, and ``benchmarks/gpu_device.sh``
is the command there; docs/gpu.md gives the calls and their time budget.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from oodbench.cli.app import key_values

REPO = Path(__file__).resolve().parents[1]
ANCHOR_BATCH = 4096  # the batch of issue 12's inference anchor (ResNet-18, bf16, channels_last)
SPEED_DETECTORS = ("msp", "energy", "odin", "mahalanobis", "knn", "vim")


class StepFailed(Exception):
    """A command of a step exited non-zero; the message is its last lines."""


@dataclass(frozen=True)
class Scale:
    """Where and at what size the steps run: the GPU figures, or a CPU rehearsal at toy size."""

    device: str = "cuda"
    epochs: int | None = None  # every trained network (None: the suite's / the backbone's)
    train_limit: int | None = None
    test_limit: int | None = None
    agree_devices: str = "cpu,cuda"
    agree_n: int = 1000
    agree_detectors: str | None = None  # None: every post-hoc detector
    rowb_seeds: tuple[int, ...] = (0, 1, 2)

    def limits(self) -> list[str]:
        """``--train-limit`` / ``--test-limit`` options for the benchmark scripts."""
        out = ["--train-limit", str(self.train_limit)] if self.train_limit else []
        return out + (["--test-limit", str(self.test_limit)] if self.test_limit else [])

    def entry(self, entry: dict) -> dict:
        """A suite entry at this scale."""
        out = {**entry, "device": self.device}
        for key in ("epochs", "train_limit", "test_limit"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


REHEARSAL = Scale(
    "cpu",
    epochs=1,
    train_limit=300,
    test_limit=40,
    agree_devices="cpu,cpu",
    agree_n=40,
    agree_detectors="msp,odin,mahalanobis,knn,vim",
    rowb_seeds=(0, 1),
)


def oodbench(args: list[str], cache: Path, *, script: str | None = None) -> tuple[str, float]:
    """(stdout, wall seconds) of ``python -m oodbench ARGS`` (or of a benchmark script) with ``cache``. Its status
    lines (stderr: epochs and training windows, a suite's runs, tuned values) are passed on, indented, as they
    come, so that a step cut short by the call's time limit still shows in the log how far it got."""
    env = {k: v for k, v in os.environ.items() if k != "OODBENCH_QUIET"} | {"OODBENCH_CACHE": str(cache)}
    cmd = [sys.executable, script, *args] if script else [sys.executable, "-m", "oodbench", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status: list[str] = []

    def relay() -> None:
        for line in proc.stderr:
            status.append(line)
            print(f"    {line.rstrip()}", flush=True)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    out = proc.stdout.read()
    proc.wait()
    reader.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((out + "".join(status)).strip().splitlines()[-15:])
        raise StepFailed(f"{' '.join(cmd[1:])}: exit {proc.returncode} after {wall:.0f} s\n{tail}")
    return out, wall


def suite_file(work: Path, entry: dict, name: str) -> Path:
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"suites": {name: {"runs": [entry]}}}))
    return path


class Table:
    """The figures, each printed as it is added and all again at the end."""

    def __init__(self, rehearsal: bool):
        self.rows: list[tuple[str, str, str]] = []
        self.rehearsal = rehearsal

    def add(self, figure: str, target: str, measured: str) -> None:
        self.rows.append((figure, target, measured))
        print(f"[figure] {figure}: {measured} (target {target or '-'})", flush=True)

    def print(self) -> None:
        width = max([len(r[0]) for r in self.rows] + [10])
        if self.rehearsal:
            print("\nREHEARSAL on the CPU at toy size: these figures check the script, not the targets")
        print(f"\n{'figure':{width}s}  {'target':22s}  measured")
        for figure, target, measured in self.rows:
            print(f"{figure:{width}s}  {target:22s}  {measured}")


def step_train(work: Path, scale: Scale, train: list[str], table: Table) -> Path:
    extra = (["--epochs", str(scale.epochs)] if scale.epochs else []) + [a for kv in train for a in ("--train", kv)]
    extra += ["--train-limit", str(scale.train_limit)] if scale.train_limit else []
    out, wall = oodbench(
        ["train", "--backbone", "resnet18", "--dataset", "cifar10-jpeg", "--device", scale.device, *extra],
        work / "cache-train",
    )
    path = Path(re.search(r"checkpoint: (\S+)", out).group(1))
    log = torch.load(path, map_location="cpu", weights_only=False)["log"]
    table.add("ResNet-18 cifar10-jpeg test accuracy", "≥ 91 %", f"{log['val_acc']:.2f} %")
    table.add("  training window (data on the device)", "≤ 45 s", f"{log['seconds']:.1f} s")
    table.add("  training throughput", "(~51k img/s anchor)", f"{log['images_per_second']:.0f} img/s")
    table.add("  `oodbench train` wall time", "", f"{wall:.1f} s")
    return path


def step_suite(work: Path, scale: Scale, train: list[str], table: Table) -> None:
    suites = yaml.safe_load((REPO / "benchmarks.yaml").read_text())["suites"]
    entry = scale.entry(suites["gpu"]["runs"][0])
    if train:  # the same recipe as step 1, so the suite trains its ResNet-18 alike
        entry["train_options"] = key_values(train, "--train")  # parsed as `oodbench run --train` parses it
    path = suite_file(work, entry, "gpu18")
    cache = work / "cache-suite"
    _, cold = oodbench(["bench", "gpu18", "--file", str(path), "--results", str(work / "suite-cold")], cache)
    table.add("gpu suite ResNet-18 entry, cold", "≤ 120 s", f"{cold:.1f} s")
    _, warm = oodbench(["bench", "gpu18", "--file", str(path), "--results", str(work / "suite-warm")], cache)
    table.add("gpu suite ResNet-18 entry, warm", "≤ 60 s", f"{warm:.1f} s")
    board, _ = oodbench(["leaderboard", "gpu18", "--file", str(path), "--results", str(work / "suite-warm")], cache)
    print(board, flush=True)


def extraction_rows(out: str) -> list[tuple[str, str, str]]:
    """The table rows (figure, target, value) of ``detector_speed.py --extract-batches ANCHOR_BATCH``'s output:
    extraction img/s at a run's batch (the target's figure) and at the anchor's."""
    rows = []
    for what, label, target in (
        ("feature extraction", "feature extraction, ResNet-18 32×32, a run's batch", "≥ 100k img/s"),
        ("  the same extraction", "  the same at the anchor's batch", "(~190k img/s anchor)"),
    ):
        rate = re.search(rf"^{what} \(.*?, batch (\d+)[^)]*\): [\d.]+ s, (\d+) img/s$", out, re.M)
        rows.append((label, target, f"{rate.group(2)} img/s (batch {rate.group(1)})" if rate else "?"))
    return rows


def step_speed(work: Path, scale: Scale, checkpoint: Path, table: Table) -> None:
    args = ["--id", "cifar10-jpeg", "--ood", "svhn", "--backbone", "resnet18", "--device", scale.device]
    args += ["--checkpoint", str(checkpoint), *scale.limits(), "--detectors", ",".join(SPEED_DETECTORS)]
    scripts = REPO / "benchmarks"
    anchor = ["--extract-batches", str(ANCHOR_BATCH)]  # also timed at the anchor's batch, to compare
    out, _ = oodbench([*args, *anchor], work / "cache-speed", script=str(scripts / "detector_speed.py"))
    print(out, flush=True)
    for row in extraction_rows(out):
        table.add(*row)
    e2e, _ = oodbench(args, work / "cache-speed", script=str(scripts / "speed_end_to_end.py"))
    print(e2e, flush=True)
    for row in ratio_rows(out, e2e):
        table.add(*row)


def ratio_rows(shared: str, e2e: str) -> list[tuple[str, str, str]]:
    """The ≥ 5× rows (figure, target, value) per target detector, from ``detector_speed.py``'s output (features
    shared) and ``speed_end_to_end.py``'s (``e2e:`` float32 both, ``fast:`` oodbench's fast path)."""
    rows = []
    for name in SPEED_DETECTORS:
        for label, text, prefix in (
            ("features shared", shared, ""),
            ("forward inside both, float32 both", e2e, "e2e:"),
            ("forward inside both, oodbench's fast path", e2e, "fast:"),
        ):
            found = re.search(rf"^{prefix}{name}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$", text, re.M)
            value = f"{found.group(3)}× ({found.group(2)} s vs {found.group(1)} s)" if found else "?"
            rows.append((f"{name}: pytorch-ood s / oodbench s, {label}", "≥ 5×", value))
    return rows


def step_agree(work: Path, scale: Scale, checkpoint: Path, table: Table) -> None:
    args = ["--id", "cifar10-jpeg", "--ood", "svhn", "--backbone", "resnet18", "--checkpoint", str(checkpoint)]
    args += ["--devices", scale.agree_devices, "--n", str(scale.agree_n)]
    args += ["--detectors", scale.agree_detectors] if scale.agree_detectors else []
    out, _ = oodbench(args, work / "cache-agree", script=str(REPO / "benchmarks" / "device_agreement.py"))
    print(out, flush=True)
    found = re.findall(r"^(\S+)\s+(.+?)\s+([\d.e+-]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+$", out, re.M)
    if not found:
        table.add("post-hoc detectors on CUDA vs CPU", "scores agree", "?")
        return
    delta = max(found, key=lambda r: float(r[2]))
    gap = max(found, key=lambda r: abs(float(r[3]) - float(r[4])))
    where = scale.agree_devices.replace(",", " vs ")
    table.add(f"post-hoc detectors, {where}: max |Δ|/range", "small", f"{float(delta[2]):.1e} ({delta[0]} {delta[1]})")
    table.add("  largest AUROC gap", "≈ 0", f"{abs(float(gap[3]) - float(gap[4])):.2f} ({gap[0]} {gap[1]})")


ROWB_TARGETS = {
    "fssd": "≥ 99.0 (paper 99.5)",
    "mahalanobis": "≥ 98.0 (99.1)",
    "odin": "≥ 94 (96.7)",
    "msp": "86.9–92.9 (89.9)",
}


def seeded_board(work: Path, name: str, entry: dict) -> str:
    """Run a one-entry suite (all its seeds) with a cache of its own and return its leaderboard (markdown)."""
    path, results, cache = suite_file(work, entry, name), work / name, work / f"cache-{name}"
    oodbench(["bench", name, "--file", str(path), "--results", str(results)], cache)
    return oodbench(["leaderboard", name, "--file", str(path), "--results", str(results)], cache)[0]


def mean_std_auroc(board: str, detector: str) -> str | None:
    """``mean ± std`` AUROC of ``detector``'s row in a leaderboard table (rows start with the rank; AUROC is the
    first ``±`` column), or None."""
    found = re.search(rf"^\|[^\n]*?\|\s*{re.escape(detector)}\s*\|[^\n]*?(\d+\.\d ± \d+\.\d)", board, re.M)
    return found.group(1) if found else None


def step_rowb(work: Path, scale: Scale, table: Table) -> None:
    suites = yaml.safe_load((REPO / "benchmarks.yaml").read_text())["suites"]
    entry = {**scale.entry(suites["gpu"]["runs"][1]), "seeds": list(scale.rowb_seeds)}
    board = seeded_board(work, "rowb", entry)
    print(board, flush=True)
    for name, target in ROWB_TARGETS.items():
        label = f"row B {name} AUROC, ResNet-34, cifar10-jpeg vs svhn[:10k], seeds {list(scale.rowb_seeds)}"
        table.add(label, target, mean_std_auroc(board, name) or "? (see the table above)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", default="", help="comma-separated steps to skip: train, suite, speed, agree, rowb")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of every trained network (default: the suite's)")
    ap.add_argument("--train", action="append", default=[], help="ResNet-18 training setting KEY=VALUE (repeatable)")
    ap.add_argument("--work", type=Path, help="keep caches and results here (default: a temporary folder)")
    ap.add_argument("--rehearse", action="store_true", help="every step on the CPU at toy size (checks the script)")
    args = ap.parse_args()
    scale = REHEARSAL if args.rehearse else Scale(epochs=args.epochs)
    if not args.rehearse and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA device (no figure is measured without one; --rehearse checks it)")
    skip = set(filter(None, args.skip.split(",")))
    work = args.work or Path(tempfile.mkdtemp(prefix="oodbench-gpu-"))
    where = torch.cuda.get_device_name() if scale.device == "cuda" else "CPU rehearsal"
    print(f"{where}; work folder {work}", flush=True)
    table = Table(args.rehearse)
    steps = {
        "train": lambda: step_train(work, scale, args.train, table),
        "suite": lambda: step_suite(work, scale, args.train, table),
        "speed": lambda: step_speed(work, scale, checkpoint, table),
        "agree": lambda: step_agree(work, scale, checkpoint, table),
        "rowb": lambda: step_rowb(work, scale, table),
    }
    checkpoint = None
    for name, step in steps.items():
        if name in skip:
            continue
        if name in ("speed", "agree") and checkpoint is None:
            table.add(f"step {name}", "runs", "not run: it needs step train's checkpoint")
            continue
        started = time.perf_counter()
        try:
            result = step()
        except StepFailed as exc:
            print(f"step {name} failed:\n{exc}", flush=True)
            table.add(f"step {name}", "runs", f"FAILED: {str(exc).splitlines()[-1][:80]}")
            continue
        checkpoint = result if name == "train" else checkpoint
        print(f"[step] {name}: {time.perf_counter() - started:.1f} s", flush=True)
    table.print()


if __name__ == "__main__":
    main()
