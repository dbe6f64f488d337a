"""Every post-hoc detector with its features on the CPU and on CUDA: the same weights, the same samples.

    OODBENCH_DATA=../shared/datasets python benchmarks/device_agreement.py [--devices cpu,cuda] [--n 2000]

One backbone (LeNet on FashionMNIST by default, one epoch on the CPU, or ``--checkpoint``) is copied to each
device; every detector that needs no training is fitted on ``--n`` ID training images and scored on ``--n``
ID and ``--n`` OOD test images there, at its defaults and at each grid parameter's last value (ε = 0.2:
input pre-processing on the device). Layer ensembles are fitted on the scored sets, so their torch decision
function runs too. Printed per row: the largest score difference relative to the score range, AUROC on each
device, and fit + score seconds on each. Features are float32 on both sides (no autocast); cuDNN's TF32
convolutions are switched off so the network computes the same function. ``--devices cpu,cpu`` runs it
without a GPU (every difference is then 0: a check of the script, not of the devices).
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def load(args):
    from oodbench.data.imageset import LoadContext, resolve_data_root
    from oodbench.models.checkpoints import ModelSpec, load_or_train
    from oodbench.models.train import default_config
    from oodbench.plugins.manager import registries

    regs = registries()
    ctx = LoadContext(resolve_data_root())
    id_set = regs.datasets.get(args.id)
    train, id_test = id_set.load("train", ctx), id_set.load("test", ctx)
    ood_test = regs.datasets.get(args.ood).load("test", ctx).to_format(train.shape)
    factory = regs.backbones.get(args.backbone)
    cfg = default_config(factory.train_defaults, epochs=args.epochs)
    spec = ModelSpec(args.backbone, args.id, train.shape, train.num_classes, cfg)
    ckpt = Path(args.checkpoint) if args.checkpoint else None
    model, _ = load_or_train(spec, factory, train, None, "cpu", ckpt)
    return model, (train.head(args.n), id_test.head(args.n), ood_test.head(args.n))


def scored(name: str, model, sets, device: str, batch_size: int) -> dict:
    """{grid point: ([ID scores, OOD scores] on the CPU as float64, seconds)} for one detector on one device."""
    from oodbench.models.features import FeatureView
    from oodbench.plugins.detector import LayerwiseDetector, validate_scores
    from oodbench.plugins.manager import registries

    net = copy.deepcopy(model).to(device).eval()
    train, id_test, ood_test = (FeatureView(s, net, device, batch_size) for s in sets)
    for v in (train, id_test, ood_test):
        v.features(net.feature_layers)  # extraction is not part of the detector's clock
    det = registries().detectors.get(name)()
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    det.fit(train)
    if isinstance(det, LayerwiseDetector) and det.combines_layers():
        det.fit_ensemble(id_test, ood_test)
    sync()
    fit_s = time.perf_counter() - t0
    space = det.search_space()
    points = [{}] + [{k: v[-1]} for k, v in space.items() if k not in type(det).fit_params]
    out = {}
    for params in points:
        tuned = det.tuned_copy(**params) if params else det
        t0 = time.perf_counter()
        s = [validate_scores(tuned, tuned.score_samples(v), len(v)) for v in (id_test, ood_test)]
        out[str(params or "defaults")] = (s, fit_s + time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--id", default="fashionmnist")
    ap.add_argument("--ood", default="mnist")
    ap.add_argument("--backbone", default="lenet")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--checkpoint", help="load these weights (oodbench's checkpoint layout) instead of training")
    ap.add_argument("--n", type=int, default=2000, help="images per set (ID train, ID test, OOD test)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--detectors", help="comma-separated (default: every detector that needs no training)")
    args = ap.parse_args()
    first, second = args.devices.split(",")
    if "cuda" in args.devices and not torch.cuda.is_available():
        raise SystemExit("device_agreement: no CUDA device here (use --devices cpu,cpu to check the script)")
    os.environ.setdefault("OODBENCH_QUIET", "1")
    os.environ.setdefault("OODBENCH_CACHE", tempfile.mkdtemp(prefix="oodbench-agree-"))
    torch.backends.cudnn.allow_tf32 = False

    from oodbench.plugins.manager import registries
    from oodbench.records.metrics import ood_metrics

    model, sets = load(args)
    regs = registries().detectors
    names = args.detectors.split(",") if args.detectors else [n for n in regs.names() if not regs.get(n).needs.supplies]
    print(
        f"{'detector':20s} {'grid point':28s} {'max |Δ|/range':>13s} {'AUROC ' + first:>12s} "
        f"{'AUROC ' + second:>12s} {first + ' s':>8s} {second + ' s':>8s}"
    )
    for name in names:
        a, b = scored(name, model, sets, first, args.batch_size), scored(name, model, sets, second, args.batch_size)
        for point, ((sa, ta), (sb, tb)) in ((p, (a[p], b[p])) for p in a):
            both_a, both_b = np.concatenate(sa), np.concatenate(sb)
            spread = max(float(np.ptp(both_a)), 1e-12)
            delta = float(np.abs(both_a - both_b).max()) / spread
            auc_a, auc_b = ood_metrics(*sa)["auroc"], ood_metrics(*sb)["auroc"]
            print(f"{name:20s} {point:28s} {delta:13.2e} {auc_a:12.2f} {auc_b:12.2f} {ta:8.3f} {tb:8.3f}")


if __name__ == "__main__":
    main()
