"""Every GPU figure of issue 12 in one command, printed as one table beside its target.

    OODBENCH_DATA=/path/to/datasets python benchmarks/gpu.py [--skip train,suite,speed,agree,rowb] [--epochs 30]
        [--train batch_size=512 --train schedule=onecycle …]   # a ResNet-18 recipe for steps train and suite

On a CUDA machine, each step in a fresh process with its own cache under a temporary folder (``--work`` keeps it):

1. ``train``: ``oodbench train --backbone resnet18 --dataset cifar10-jpeg --device cuda``; its test accuracy and
   training window (first step to last, data already on the device) from the checkpoint's log, and the
   command's wall time.
2. ``suite``: the ``gpu`` suite's ResNet-18 entry (9 detectors × 4 OOD sets, oracle tuning) with an empty
   cache (cold), then again with the cache it left (warm: checkpoint and features cached).
3. ``speed``: ``benchmarks/detector_speed.py`` on cifar10-jpeg vs svhn with the step-1 checkpoint: one-pass
   feature extraction img/s (cold, no feature cache) and per-detector fit + score seconds beside pytorch-ood
   0.4.0's on the same model and features (extracted once, outside both clocks); then
   ``benchmarks/speed_end_to_end.py``: the same six detectors from images on the device to scores, forward
   passes inside both clocks.
4. ``agree``: ``benchmarks/device_agreement.py`` on cifar10-jpeg vs svhn with the step-1 checkpoint: every
   post-hoc detector with its features on the CPU and on CUDA; the largest score difference and AUROC gap.
5. ``rowb``: the ``gpu`` suite's ResNet-34 entry (paper 003 Table 2 row B) over seeds 0, 1, 2 and its table
   (mean ± std) from ``oodbench leaderboard``.

Nothing here runs without CUDA; no test depends on it. The anchors in the targets are H100 figures.

Through a GPU machine that receives at most 64 MiB per call (``../shared/tools/device-pack``): steps train,
speed, agree and rowb need ``cifar10-jpeg svhn`` (≈ 43 MiB packed) and pytorch-ood 0.4.0 (a pure-Python wheel,
``pip download --no-deps pytorch-ood==0.4.0``) carried beside it; ``--skip suite``. The suite step's five
sets (≈ 69 MiB) do not fit one call: unpack ``cifar10-jpeg svhn`` into a folder outside the checkout in one call
and ``tinyimagenet-r32 dtd-subset32 mnist`` into the same folder in the next while the machine is still warm,
then run ``--skip train,speed,agree,rowb`` with ``OODBENCH_DATA`` pointing there. Keep ``--work`` outside the
checkout too, so caches do not travel.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
SPEED_DETECTORS = ("msp", "energy", "odin", "mahalanobis", "knn", "vim")


def oodbench(args: list[str], cache: Path, *, script: str | None = None) -> tuple[str, float]:
    """(stdout, wall seconds) of ``python -m oodbench ARGS`` (or of a benchmark script) with ``cache``."""
    env = dict(os.environ, OODBENCH_CACHE=str(cache), OODBENCH_QUIET="1")
    cmd = [sys.executable, script, *args] if script else [sys.executable, "-m", "oodbench", *args]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout, wall


def suite_file(work: Path, entry: dict, name: str) -> Path:
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"suites": {name: {"runs": [entry]}}}))
    return path


def recipe(epochs: int | None, train: list[str]) -> list[str]:
    """``oodbench train`` options for the ResNet-18 recipe (``--epochs``, ``--train KEY=VALUE``)."""
    return (["--epochs", str(epochs)] if epochs else []) + [a for kv in train for a in ("--train", kv)]


def step_train(work: Path, epochs: int | None, train: list[str], rows: list) -> Path:
    extra = recipe(epochs, train)
    out, wall = oodbench(
        ["train", "--backbone", "resnet18", "--dataset", "cifar10-jpeg", "--device", "cuda", *extra],
        work / "cache-train",
    )
    path = Path(re.search(r"checkpoint: (\S+)", out).group(1))
    log = torch.load(path, map_location="cpu", weights_only=False)["log"]
    rows += [
        ("ResNet-18 cifar10-jpeg test accuracy", "≥ 91 %", f"{log['val_acc']:.2f} %"),
        ("  training window (data on the device)", "≤ 45 s", f"{log['seconds']:.1f} s"),
        ("  training throughput", "(~51k img/s anchor)", f"{log['images_per_second']:.0f} img/s"),
        ("  `oodbench train` wall time", "", f"{wall:.1f} s"),
    ]
    return path


def step_suite(work: Path, epochs: int | None, train: list[str], rows: list) -> None:
    suites = yaml.safe_load((REPO / "benchmarks.yaml").read_text())["suites"]
    entry = dict(suites["gpu"]["runs"][0])
    if epochs:
        entry["epochs"] = epochs
    if train:  # the same recipe as step 1, so its checkpoint is the suite's (warm) or trained alike (cold)
        entry["train_options"] = {k: yaml.safe_load(v) for k, _, v in (kv.partition("=") for kv in train)}
    path = suite_file(work, entry, "gpu18")
    cache = work / "cache-suite"
    _, cold = oodbench(["bench", "gpu18", "--file", str(path), "--results", str(work / "suite-cold")], cache)
    _, warm = oodbench(["bench", "gpu18", "--file", str(path), "--results", str(work / "suite-warm")], cache)
    rows += [
        ("gpu suite ResNet-18 entry, cold", "≤ 120 s", f"{cold:.1f} s"),
        ("gpu suite ResNet-18 entry, warm", "≤ 60 s", f"{warm:.1f} s"),
    ]


def step_speed(work: Path, checkpoint: Path, rows: list) -> None:
    args = ["--id", "cifar10-jpeg", "--ood", "svhn", "--backbone", "resnet18", "--device", "cuda"]
    out, _ = oodbench(
        [*args, "--checkpoint", str(checkpoint)],
        work / "cache-speed",
        script=str(REPO / "benchmarks" / "detector_speed.py"),
    )
    print(out)
    rate = re.search(r"feature extraction .*?, (\d+) img/s", out)
    rows.append(("feature extraction, ResNet-18 32×32", "≥ 100k img/s", f"{rate.group(1)} img/s" if rate else "?"))
    e2e, _ = oodbench(
        [*args, "--checkpoint", str(checkpoint)],
        work / "cache-speed",
        script=str(REPO / "benchmarks" / "speed_end_to_end.py"),
    )
    print(e2e)
    for name in SPEED_DETECTORS:
        for label, text, prefix in (("features shared", out, ""), ("forward inside both", e2e, "e2e:")):
            found = re.search(rf"^{prefix}{name}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$", text, re.M)
            value = f"{found.group(3)}× ({found.group(2)} s vs {found.group(1)} s)" if found else "?"
            rows.append((f"{name}: pytorch-ood s / oodbench s, {label}", "≥ 5×", value))


def step_agree(work: Path, checkpoint: Path, rows: list) -> None:
    args = ["--id", "cifar10-jpeg", "--ood", "svhn", "--backbone", "resnet18", "--checkpoint", str(checkpoint)]
    out, _ = oodbench(args, work / "cache-agree", script=str(REPO / "benchmarks" / "device_agreement.py"))
    print(out)
    found = re.findall(r"^(\S+)\s+(.+?)\s+([\d.e+-]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+$", out, re.M)
    if not found:
        rows.append(("post-hoc detectors on CUDA vs CPU", "scores agree", "?"))
        return
    delta = max(found, key=lambda r: float(r[2]))
    gap = max(found, key=lambda r: abs(float(r[3]) - float(r[4])))
    rows += [
        ("post-hoc detectors on CUDA vs CPU: max |Δ|/range", "small", f"{float(delta[2]):.1e} ({delta[0]} {delta[1]})"),
        ("  largest AUROC gap", "≈ 0", f"{abs(float(gap[3]) - float(gap[4])):.2f} ({gap[0]} {gap[1]})"),
    ]


def step_rowb(work: Path, rows: list) -> None:
    suites = yaml.safe_load((REPO / "benchmarks.yaml").read_text())["suites"]
    entry = {**suites["gpu"]["runs"][1], "seeds": [0, 1, 2]}
    path = suite_file(work, entry, "rowb")
    results = work / "rowb"
    oodbench(["bench", "rowb", "--file", str(path), "--results", str(results)], work / "cache-rowb")
    table, _ = oodbench(["leaderboard", "rowb", "--file", str(path), "--results", str(results)], work / "cache-rowb")
    print(table)
    rows.append(("paper 003 row B (ResNet-34, cifar10-jpeg vs svhn[:10k])", "see the table above", "printed above"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", default="", help="comma-separated steps to skip: train, suite, speed, agree, rowb")
    ap.add_argument("--epochs", type=int, default=None, help="ResNet-18 epochs (default: the backbone's)")
    ap.add_argument("--train", action="append", default=[], help="ResNet-18 training setting KEY=VALUE (repeatable)")
    ap.add_argument("--work", type=Path, help="keep caches and results here (default: a temporary folder)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA device (no figure is measured without one)")
    skip = set(filter(None, args.skip.split(",")))
    work = args.work or Path(tempfile.mkdtemp(prefix="oodbench-gpu-"))
    print(f"{torch.cuda.get_device_name()}; work folder {work}", flush=True)
    rows: list[tuple[str, str, str]] = []
    checkpoint = step_train(work, args.epochs, args.train, rows) if "train" not in skip else None
    if "suite" not in skip:
        step_suite(work, args.epochs, args.train, rows)
    if "speed" not in skip and checkpoint is not None:
        step_speed(work, checkpoint, rows)
    if "agree" not in skip and checkpoint is not None:
        step_agree(work, checkpoint, rows)
    if "rowb" not in skip:
        step_rowb(work, rows)
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"\n{'figure':{width}s}  {'target':22s}  measured")
    for figure, target, measured in rows:
        print(f"{figure:{width}s}  {target:22s}  {measured}")


if __name__ == "__main__":
    main()
