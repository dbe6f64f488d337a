"""Peak memory of runs over an ImageNet-style folder too large to decode whole (issues 12 and 31).

    python benchmarks/streaming_memory.py [--train 2000] [--test 1000] [--ood 1000] [--classes 10] [--side 512]
                                          [--cases declared,folder-gaussian] [--workers 2] [--keep DIR]

Writes ``--side``×``--side`` JPEGs (an ImageNet-style tree ``imnet/{train,test}/<class>/*.JPEG`` and an OOD folder
``far``) into a temporary folder, saves a randomly initialised timm ResNet-18 with a ``--classes`` head to a local
weights file, and runs ``oodbench run -d msp -d knn … --backbone timm:resnet18 --pretrained-file FILE`` on the CPU
once per case, the spellings a user takes:

- ``declared``: ``--in imnet --out far`` (both declared in an oodbench.yaml with ``size: 224``; issue 12's case);
- ``folder-gaussian``: ``--in folder:DIR/imnet --out gaussian`` (no declared size, a synthetic OOD set; issue 31's
  command, 18.8 GB before the synthetic set was drawn in batches);
- ``folder-far`` and ``declared-gaussian``: the other two combinations.

While each runs, the resident memory (RSS) and proportional set size (PSS: shared pages divided among the
processes sharing them) of the run and every process it starts are summed every 0.1 s. Prints per case the peak
summed RSS and PSS, wall time, extraction throughput (the record's stage timings) and the record's peak RSS per
stage (``memory``, :mod:`oodbench.core.memory`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def write_jpegs(folder: Path, n: int, side: int, seed: int, classes: int) -> None:
    """Smooth random colour fields with fine noise (realistic JPEG sizes), ``classes`` sub-folders."""
    from torchvision.io import encode_jpeg

    def one(i: int) -> None:
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        low = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(side, side), mode="bicubic")
        im = ((low[0] + 0.08 * torch.randn(3, side, side, generator=g)).clamp(0, 1) * 255).to(torch.uint8)
        path = folder / f"c{i % classes:02d}" / f"img_{i:05d}.JPEG"
        path.write_bytes(encode_jpeg(im, quality=85).numpy().tobytes())

    for c in range(classes):
        (folder / f"c{c:02d}").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(one, range(n)))


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    rss = pss = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith(("Rss:", "Pss:")):
                    kb = int(line.split()[1]) * 1024
                    rss, pss = (rss + kb, pss) if line.startswith("Rss:") else (rss, pss + kb)
        except OSError:
            continue
    return rss, pss


def make_data(work: Path, args: argparse.Namespace) -> Path:
    import timm

    write_jpegs(work / "imnet" / "train", args.train, args.side, 1, args.classes)
    write_jpegs(work / "imnet" / "test", args.test, args.side, 2, args.classes)
    write_jpegs(work / "far", args.ood, args.side, 3, 1)
    weights = work / "resnet18-timm.pth"
    torch.manual_seed(0)  # random weights in timm's own layout, as a downloaded state dict would be
    torch.save(timm.create_model("resnet18", num_classes=args.classes).state_dict(), weights)
    (work / "oodbench.yaml").write_text(
        f"datasets:\n  imnet: {{folder: {work / 'imnet'}, size: 224}}\n"
        f"  far: {{folder: {work / 'far'}, stream: true, size: 224}}\n"
    )
    return weights


CASES = {
    "declared": ("imnet", "far"),
    "folder-gaussian": ("folder:{work}/imnet", "gaussian"),
    "folder-far": ("folder:{work}/imnet", "far"),
    "declared-gaussian": ("imnet", "gaussian"),
}


def measure(cmd: list[str], env: dict) -> tuple[int, int, float, str, int]:
    """Run ``cmd``; (peak summed RSS, peak summed PSS, wall seconds, output, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_rss = peak_pss = 0
    while proc.poll() is None:
        rss, pss = tree_memory(proc.pid)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    return peak_rss, peak_pss, time.perf_counter() - start, out, proc.returncode


def run_case(name: str, work: Path, weights: Path, args: argparse.Namespace) -> None:
    env = dict(os.environ, OODBENCH_CONFIG=str(work / "oodbench.yaml"), OODBENCH_CACHE=str(work / "cache"))
    env.update(OODBENCH_DECODE_WORKERS=str(args.workers), OODBENCH_QUIET="1")
    id_, ood = (x.format(work=work) for x in CASES[name])
    results = work / f"results-{name}"
    cmd = [sys.executable, "-m", "oodbench", "run", "-d", "msp", "-d", "knn", "--in", id_, "--out", ood]
    cmd += ["--backbone", "timm:resnet18", "--pretrained-file", str(weights), "--no-feature-cache"]
    cmd += ["--results", str(results), "--device", "cpu"]
    print(f"\n== {name}: oodbench run -d msp -d knn --in {id_} --out {ood} --backbone timm:resnet18 …")
    peak_rss, peak_pss, wall, out, code = measure(cmd, env)
    if code != 0:
        print(f"run failed (exit {code}):\n{out}")
        return
    record = json.loads(max(results.rglob("*.json"), key=lambda p: p.stat().st_mtime).read_text())
    extract = record["seconds"].get("extract_features", float("nan"))
    extracted = record["n_eval"]["id"] + record["n_eval"]["ood"]  # roughly: the evaluated test and OOD images
    print(out.strip())
    print(f"peak RSS (the run and every process it starts, summed): {peak_rss / 1e9:.2f} GB (target: under 1.5 GB)")
    print(f"peak PSS (shared pages divided among those processes):   {peak_pss / 1e9:.2f} GB")
    print(f"wall {wall:.0f} s; extraction (test and OOD splits): {extract:.0f} s, ~{extracted / extract:.1f} img/s")
    stages = ", ".join(f"{k} {v / 1024:.2f}" for k, v in record.get("memory", {}).items())
    print(f"the record's peak RSS per stage (GiB): {stages}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--ood", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--cases", default="declared,folder-gaussian", help=f"comma-separated, of: {', '.join(CASES)}")
    ap.add_argument("--workers", type=int, default=2, help="decoder threads ($OODBENCH_DECODE_WORKERS)")
    ap.add_argument("--keep", type=Path, help="generate the images here (reused when present)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="oodbench-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    weights = work / "resnet18-timm.pth"
    if not (work / "oodbench.yaml").is_file():
        make_data(work, args)
    n = args.train + args.test + args.ood
    print(f"data: {n} JPEGs {args.side}×{args.side} in {work} ({time.perf_counter() - t:.0f} s to write)")
    print(f"decoded whole they would take {n * 3 * args.side**2 / 2**30:.2f} GiB")
    for name in args.cases.split(","):
        run_case(name, work, weights, args)


if __name__ == "__main__":
    main()
