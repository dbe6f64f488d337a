"""Peak memory of a run over an ImageNet-style folder too large to decode whole (issue 12's streaming target).

    python benchmarks/streaming_memory.py [--images 4000] [--side 512] [--workers 2] [--keep DIR]

Writes ``--images`` ``--side``×``--side`` JPEGs (half ID train, a quarter ID test, a quarter OOD; 10 classes) into
a temporary ImageNet-style tree (``train/<class>/*.JPEG``), saves a randomly initialised timm ResNet-18 with a
10-class head to a local weights file, and runs ``oodbench run -d msp -d knn --in imnet --out far --backbone
timm:resnet18 --pretrained-file FILE --no-feature-cache`` on the CPU (images streamed at 224×224, the backbone's own
data config). While it runs, the resident memory (RSS) and proportional set size (PSS: shared pages divided
among the processes sharing them) of the run and every process it starts are summed every 0.1 s.
Prints the decoded size the set would need whole, peak summed RSS and PSS, wall time, and
the extraction throughput from the record's stage timings.
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


def make_data(work: Path, n: int, side: int) -> Path:
    import timm

    write_jpegs(work / "imnet" / "train", n // 2, side, 1, 10)
    write_jpegs(work / "imnet" / "test", n // 4, side, 2, 10)
    write_jpegs(work / "far", n - n // 2 - n // 4, side, 3, 1)
    weights = work / "resnet18-10-timm.pth"
    torch.manual_seed(0)  # random weights in timm's own layout, as a downloaded state dict would be
    torch.save(timm.create_model("resnet18", num_classes=10).state_dict(), weights)
    (work / "oodbench.yaml").write_text(
        f"datasets:\n  imnet: {{folder: {work / 'imnet'}, size: 224}}\n"
        f"  far: {{folder: {work / 'far'}, stream: true, size: 224}}\n"
    )
    return weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2, help="decoder threads ($OODBENCH_DECODE_WORKERS)")
    ap.add_argument("--keep", type=Path, help="generate the images here (reused when present)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="oodbench-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    fresh = not (work / "oodbench.yaml").is_file()
    weights = make_data(work, args.images, args.side) if fresh else work / "resnet18-10-timm.pth"
    print(f"data: {args.images} JPEGs {args.side}×{args.side} in {work} ({time.perf_counter() - t:.0f} s to write)")
    print(f"decoded whole they would take {args.images * 3 * args.side**2 / 2**30:.2f} GiB")
    env = dict(os.environ, OODBENCH_CONFIG=str(work / "oodbench.yaml"), OODBENCH_CACHE=str(work / "cache"))
    env.update(OODBENCH_DECODE_WORKERS=str(args.workers), OODBENCH_QUIET="1")
    cmd = [sys.executable, "-m", "oodbench", "run", "-d", "msp", "-d", "knn", "--in", "imnet", "--out", "far"]
    cmd += ["--backbone", "timm:resnet18", "--pretrained-file", str(weights), "--no-feature-cache"]
    cmd += ["--results", str(work / "results"), "--device", "cpu"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_rss = peak_pss = 0
    while proc.poll() is None:
        rss, pss = tree_memory(proc.pid)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.1)
    wall = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        sys.exit(f"run failed (exit {proc.returncode}):\n{out}")
    record = json.loads(next((work / "results").rglob("*.json")).read_text())
    extract = record["seconds"].get("extract_features", float("nan"))
    extracted = args.images - args.images // 2  # test + OOD in the supply stage (the train split on fit)
    print(out.strip())
    print(
        f"peak RSS (the run and every process it starts, summed): {peak_rss / 2**30:.2f} GiB = "
        f"{peak_rss / 1e9:.2f} GB (issue 12's target: under 1.5 GB)"
    )
    print(f"peak PSS (shared pages divided among those processes):   {peak_pss / 2**30:.2f} GiB")
    rate = extracted / extract
    print(f"wall {wall:.0f} s; extraction of {extracted} test/OOD images: {extract:.0f} s = {rate:.1f} img/s")


if __name__ == "__main__":
    main()
