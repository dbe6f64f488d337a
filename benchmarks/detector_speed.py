"""Per-detector fit/score seconds on FashionMNIST vs MNIST (LeNet), and pytorch-ood's on the same features.

    OODBENCH_DATA=../shared/datasets python benchmarks/detector_speed.py [--epochs 2] [--device cpu]

Features are extracted once (timed separately) and shared by every oodbench detector, as in a run.
pytorch-ood timings use its feature-level API (fit_features / predict_features or static scores on
logits) where it has one, and its model-level predict where it needs the network (ODIN, GradNorm).
Ratio = pytorch-ood seconds / oodbench seconds (fit + score).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("OODBENCH_QUIET", "1")
    os.environ["OODBENCH_CACHE"] = tempfile.mkdtemp(prefix="oodbench-bench-")

    from oodbench.checkpoints import ModelSpec, load_or_train
    from oodbench.data import ImageSet, LoadContext, resolve_data_root
    from oodbench.detector import Supplies, fit_detector
    from oodbench.features import FeatureView
    from oodbench.models import ModelProvider
    from oodbench.plugins import registries
    from oodbench.train import TrainConfig

    regs = registries()
    ctx = LoadContext(resolve_data_root())
    train = regs.datasets.get("fashionmnist").load("train", ctx)
    test = ImageSet(
        torch.cat(
            [
                regs.datasets.get("fashionmnist").load("test", ctx).images,
                regs.datasets.get("mnist").load("test", ctx).images,
            ]
        ),
        torch.full((20000,), -1),
        "fmnist+mnist",
    )
    factory = regs.backbones.get("lenet")
    spec = ModelSpec("lenet", "fashionmnist", (1, 28, 28), 10, TrainConfig(epochs=args.epochs))
    model, _ = load_or_train(spec, factory, train, None, torch.device(args.device))
    supplies = Supplies(ModelProvider(spec, factory, train, None, torch.device(args.device)))
    tr = FeatureView(train, model, args.device, 1024)
    te = FeatureView(test, model, args.device, 1024)
    layers = model.feature_layers
    _, t_extract = timed(lambda: (tr.features(layers), te.features(layers)))
    print(f"feature extraction (80k images, {len(layers)} layers, one pass): {t_extract:.2f} s")

    ours: dict[str, float] = {}
    print(f"{'detector':22s} {'fit s':>8s} {'score s':>8s}   (20k test images)")
    params = {"odin": {"epsilon": 0.0014}}  # time ODIN with its input pre-processing step
    backbone_variants = {"deep-ensemble", "mcdropout"}  # trained detectors that only retrain the backbone
    for entry in regs.detectors:
        det = entry.obj(**params.get(entry.name, {}))
        if det.needs.trains and entry.name not in backbone_variants:
            continue  # trains a network of its own: timed by the `trained` suite, not here
        _, t_fit = timed(lambda det=det: fit_detector(det, tr, supplies))
        _, t_score = timed(lambda det=det: det.score_samples(te))
        ours[entry.name] = t_fit + t_score
        print(f"{entry.name:22s} {t_fit:8.3f} {t_score:8.3f}")

    try:
        import pytorch_ood.detector as pood
    except ImportError:
        print("pytorch-ood not installed: pip install pytorch-ood==0.4.0 for the comparison")
        return
    z_tr = tr.features(["penultimate"])["penultimate"]
    z_te = te.features(["penultimate"])["penultimate"]
    logits_tr, logits_te = tr.logits(), te.logits()
    x = test.images.float() / 255
    head = model.head
    w, b = head.weight.detach(), head.bias.detach()
    theirs = {
        "msp": lambda: pood.MaxSoftmax.score(logits_te),
        "energy": lambda: pood.EnergyBased.score(logits_te),
        "maxlogit": lambda: pood.MaxLogit.score(logits_te),
        "entropy": lambda: pood.Entropy.score(logits_te),
        "gen": lambda: pood.GEN.score(logits_te, gamma=0.1, M=10),
        "klm": lambda: pood.KLMatching(None).fit_logits(logits_tr).predict_logits(logits_te),
        "mahalanobis": lambda: pood.Mahalanobis(None).fit_features(z_tr, train.labels).predict_features(z_te),
        "rmd": lambda: pood.RMD(None).fit_features(z_tr, train.labels).predict_features(z_te),
        "knn": lambda: pood.KNN(None, k=50).fit_features(z_tr, train.labels).predict_features(z_te),
        "vim": lambda: pood.ViM(None, d=42, w=w, b=b).fit_features(z_tr, train.labels).predict_features(z_te),
        "dice": lambda: pood.DICE(None, w=w, b=b, p=0.9).fit_features(z_tr, train.labels).predict_features(z_te),
        "she": lambda: pood.SHE(None, head).fit_features(z_tr, train.labels).predict_features(z_te),
        "nnguide": lambda: pood.NNGuide(None, head, k=10).fit_features(z_tr, train.labels).predict_features(z_te),
        "odin": lambda: pood.ODIN(model, eps=0.0014, temperature=1000.0).predict(x),
        "gradnorm": lambda: pood.GradNorm(model, param_filter=lambda n: n == "net.fc3.weight").predict(x),
    }
    print(f"\n{'detector':22s} {'oodbench s':>10s} {'pytorch-ood s':>14s} {'ratio':>8s}")
    for name, fn in theirs.items():
        with torch.no_grad() if name not in ("odin", "gradnorm") else torch.enable_grad():
            _, sec = timed(fn)
        print(f"{name:22s} {ours[name]:10.3f} {sec:14.3f} {sec / max(ours[name], 1e-9):8.1f}x")


if __name__ == "__main__":
    main()
