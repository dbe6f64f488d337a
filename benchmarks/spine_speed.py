"""Speed of the spine on FashionMNIST vs MNIST with LeNet: prints seconds and images/s per stage.

    OODBENCH_DATA=../shared/datasets python benchmarks/spine_speed.py [--device cpu|cuda] [--epochs 2]

Stages: data loading, training (img/s), one-pass feature extraction of every LeNet layer
(img/s), FSSD fit, FSSD tuning over the 21-point ε grid with the layer ensemble, scoring.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("OODBENCH_QUIET", "1")
    os.environ["OODBENCH_CACHE"] = tempfile.mkdtemp(prefix="oodbench-bench-")

    from oodbench.data.imageset import LoadContext, resolve_data_root
    from oodbench.models.features import FeatureView
    from oodbench.models.train import TrainConfig, fit_model
    from oodbench.pipeline.protocols import Split
    from oodbench.pipeline.tuning import tune
    from oodbench.plugins.manager import registries

    dev = torch.device(args.device)
    regs = registries()
    ctx = LoadContext(resolve_data_root())
    t = time.perf_counter()
    train = regs.datasets.get("fashionmnist").load("train", ctx)
    test = regs.datasets.get("fashionmnist").load("test", ctx)
    ood = regs.datasets.get("mnist").load("test", ctx)
    print(f"load data            {time.perf_counter() - t:7.2f} s")
    torch.manual_seed(0)
    model = regs.backbones.get("lenet").build((1, 28, 28), 10)
    log = fit_model(model, train, TrainConfig(epochs=args.epochs), dev)
    print(f"train {args.epochs} epochs       {log['seconds']:7.2f} s   {log['images_per_second']:9.0f} img/s")
    model.eval()
    views = [FeatureView(d, model, dev, 1024, amp=True) for d in (train, test, ood)]
    t = time.perf_counter()
    for v in views:
        v.features(model.feature_layers)
    sec = time.perf_counter() - t
    n = sum(len(v) for v in views)
    layers = len(model.feature_layers)
    print(f"extract all layers   {sec:7.2f} s   {n / sec:9.0f} img/s ({n} images, {layers} layers, one pass)")
    det = regs.detectors.get("fssd")()
    t = time.perf_counter()
    det.fit(views[0])
    print(f"fssd fit             {time.perf_counter() - t:7.2f} s")
    id_split, ood_split = Split.of(len(test), 1000, 0), Split.of(len(ood), 1000, 1)
    id_tune, id_eval = id_split.tune, id_split.eval
    ood_tune, ood_eval = ood_split.tune, ood_split.eval
    t = time.perf_counter()
    tuned, info = tune(det, views[1].subset(id_tune), views[2].subset(ood_tune), "mnist")
    print(f"fssd tune (21 eps)   {time.perf_counter() - t:7.2f} s   chose epsilon={info.params['epsilon']}")
    for eps in (0.0, 0.1):
        scorer = tuned.tuned_copy(epsilon=eps)
        t = time.perf_counter()
        scorer.score_samples(views[1].subset(id_eval))  # fresh subset views: nothing memoised
        scorer.score_samples(views[2].subset(ood_eval))
        sec = time.perf_counter() - t
        how = "cached features" if eps == 0 else "pre-processing: per layer 1 backward + 1 forward"
        print(f"fssd score 18k e={eps:<4} {sec:6.2f} s   {18000 / sec:9.0f} img/s ({how})")


if __name__ == "__main__":
    main()
