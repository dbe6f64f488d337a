"""Does torch's CPU thread count change a trained LeNet? (docs/ray.md: Ray runs train with one thread per run.)

    OODBENCH_DATA=../shared/datasets python benchmarks/thread_determinism.py [--epochs 1] [--limit 5000]

Trains LeNet on a seeded FashionMNIST subset twice, with one torch thread and with two, same seed, each in a
fresh process, and prints the largest absolute weight difference.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

TRAIN = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from oodbench.data import LoadContext, resolve_data_root
from oodbench.plugins import registries
from oodbench.models.train import TrainConfig, fit_model
fmnist = registries().datasets.get("fashionmnist")
data = fmnist.load("train", LoadContext(resolve_data_root())).head(int(sys.argv[3]), 0)
torch.manual_seed(0)
model = registries().backbones.get("lenet").build((1, 28, 28), 10)
fit_model(model, data, TrainConfig(epochs=int(sys.argv[4]), seed=0))
torch.save(model.state_dict(), sys.argv[2])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {t: Path(tmp) / f"lenet-{t}.pt" for t in (1, 2)}
        for threads, path in paths.items():
            argv = [str(threads), str(path), str(args.limit), str(args.epochs)]
            subprocess.run([sys.executable, "-c", TRAIN, *argv], check=True, env=dict(os.environ, OODBENCH_QUIET="1"))
        a, b = (torch.load(p) for p in paths.values())
        diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    print(f"LeNet, {args.epochs} epoch(s) on {args.limit} images, 1 vs 2 torch threads: max |Δw| = {diff:.3g}")


if __name__ == "__main__":
    main()
