"""Per-detector fit/score seconds (default FashionMNIST vs MNIST, LeNet) and pytorch-ood's on the same features.

    OODBENCH_DATA=../shared/datasets python benchmarks/detector_speed.py [--epochs 2] [--device cpu]
    python benchmarks/detector_speed.py --id cifar10-jpeg --ood svhn --backbone resnet18 --device cuda \
        [--checkpoint FILE]        # the GPU comparison of issue 12 (benchmarks/gpu.py runs it)

Features are extracted once (timed separately) and shared by every oodbench detector, as in a run.
pytorch-ood timings use its feature-level API (fit_features / predict_features or static scores on
logits) where it has one, and its model-level predict where it needs the network (ODIN, GradNorm). Both sides'
Mahalanobis read the penultimate layer alone (pytorch-ood's takes one encoder output).
Ratio = pytorch-ood seconds / oodbench seconds (fit + score).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch


def timed(fn):
    """(result, seconds), CUDA work included (synchronised before and after)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t


def arguments(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--id", default="fashionmnist")
    ap.add_argument("--ood", default="mnist")
    ap.add_argument("--backbone", default="lenet")
    ap.add_argument("--checkpoint", help="load these weights (oodbench's checkpoint layout) instead of training")
    ap.add_argument("--batch-size", type=int, help="default: the batch a run uses (oodbench.pipeline.supply.batch_for)")
    ap.add_argument(
        "--extract-batches",
        default="",
        help="comma-separated: also time a cold extraction at these batch sizes (printed, not used further)",
    )
    ap.add_argument("--train-limit", type=int, help="a seeded random subset of the ID training set (rehearsals)")
    ap.add_argument("--test-limit", type=int, help="a seeded random subset of each test set (rehearsals)")
    ap.add_argument("--detectors", help="comma-separated (default: every detector that trains no network of its own)")
    return ap.parse_args()


def setup(args: argparse.Namespace):
    """(train set, ID+OOD test set, backbone on the device, ModelProvider) for the comparison."""
    os.environ.setdefault("OODBENCH_QUIET", "1")
    os.environ["OODBENCH_CACHE"] = tempfile.mkdtemp(prefix="oodbench-bench-")
    from oodbench.data.imageset import ImageSet, LoadContext, resolve_data_root
    from oodbench.models.checkpoints import ModelSpec, load_or_train
    from oodbench.models.provider import ModelProvider
    from oodbench.models.train import default_config
    from oodbench.plugins.manager import registries

    regs = registries()
    ctx = LoadContext(resolve_data_root())
    id_set, ood_set = regs.datasets.get(args.id), regs.datasets.get(args.ood)
    train = id_set.load("train", ctx).head(args.train_limit)
    id_test = id_set.load("test", ctx).head(args.test_limit)
    ood_test = ood_set.load("test", ctx).head(args.test_limit).to_format(train.shape)
    test = ImageSet(
        torch.cat([id_test.images, ood_test.images]), torch.full((len(id_test) + len(ood_test),), -1), "id+ood"
    )
    factory = regs.backbones.get(args.backbone)
    cfg = default_config(factory.train_defaults, epochs=args.epochs)
    spec = ModelSpec(args.backbone, args.id, train.shape, train.num_classes, cfg)
    device = torch.device(args.device)
    args.batch_size = args.batch_size or run_batch(train.shape, device)
    model, _ = load_or_train(spec, factory, train, None, device, Path(args.checkpoint) if args.checkpoint else None)
    return train, test, model, ModelProvider(spec, factory, train, None, device)


def run_batch(shape: tuple[int, int, int], device: torch.device) -> int:
    """The extraction batch ``oodbench run`` uses for these images on ``device`` (its default batch_size)."""
    from oodbench.pipeline.request import RunRequest
    from oodbench.pipeline.supply import batch_for

    return batch_for(RunRequest.batch_size, shape, device)


def extract(args: argparse.Namespace, train, test, model):
    """(train view, test view) with every feature layer extracted once, the extraction timed and printed; then,
    for comparison, a cold extraction at each of ``--extract-batches`` (fresh views, no feature cache)."""
    extras = [int(b) for b in args.extract_batches.split(",") if b]
    kept = timed_extraction("feature extraction", args.batch_size, args.device, train, test, model)
    for batch in extras:
        timed_extraction("  the same extraction", batch, args.device, train, test, model)
    return kept


def timed_extraction(what: str, batch: int, device: str, train, test, model):
    """Fresh (train, test) views at ``batch`` with every feature layer extracted in one timed pass (printed).
    One batch is extracted first, untimed (CUDA's lazy start-up and cuDNN's choice of kernels for this batch
    shape would otherwise fall on whichever batch size is timed first); the feature cache is cold."""
    from oodbench.models.features import FeatureView

    layers, n = model.feature_layers, len(train) + len(test)
    FeatureView(train.head(batch), model, device, batch, amp=True).features(layers)
    tr, te = (FeatureView(s, model, device, batch, amp=True) for s in (train, test))
    _, sec = timed(lambda: (tr.features(layers), te.features(layers)))
    how = f"{n} images, {len(layers)} layers, one pass, batch {batch}, after a warm-up batch"
    print(f"{what} ({how}): {sec:.2f} s, {n / sec:.0f} img/s")
    return tr, te


def time_oodbench(args: argparse.Namespace, tr, te, provider) -> dict[str, float]:
    """Fit + score seconds of every chosen oodbench detector that trains no network of its own."""
    from oodbench.plugins.detector import Supplies, fit_detector
    from oodbench.plugins.manager import registries

    supplies = Supplies(provider)
    ours: dict[str, float] = {}
    print(f"{'detector':22s} {'fit s':>8s} {'score s':>8s}   ({len(te)} test images)")
    # ODIN with its input pre-processing step; Mahalanobis on the penultimate layer only, the one encoder output
    # pytorch-ood's detector takes (oodbench's default fits every feature layer for its layer ensemble)
    params = {"odin": {"epsilon": 0.0014}, "mahalanobis": {"layers": ["penultimate"]}}
    backbone_variants = {"deep-ensemble", "mcdropout"}  # trained detectors that only retrain the backbone
    chosen = set(args.detectors.split(",")) if args.detectors else None
    for entry in registries().detectors:
        if chosen is not None and entry.name not in chosen:
            continue
        det = entry.obj(**params.get(entry.name, {}))
        if det.needs.trains and entry.name not in backbone_variants:
            continue  # trains a network of its own: timed by the `trained` suite, not here
        _, t_fit = timed(lambda det=det: fit_detector(det, tr, supplies))
        _, t_score = timed(lambda det=det: det.score_samples(te))
        ours[entry.name] = t_fit + t_score
        print(f"{entry.name:22s} {t_fit:8.3f} {t_score:8.3f}")
    return ours


def main() -> None:
    args = arguments(__doc__)
    train, test, model, provider = setup(args)
    tr, te = extract(args, train, test, model)
    ours = time_oodbench(args, tr, te, provider)
    try:
        import pytorch_ood.detector as pood
    except ImportError:
        print("pytorch-ood not installed: pip install pytorch-ood==0.4.0 for the comparison")
        return
    time_pytorch_ood(pood, args, ours, tr, te, train, test, model)


def time_pytorch_ood(pood, args: argparse.Namespace, ours: dict[str, float], tr, te, train, test, model) -> None:
    """pytorch-ood's seconds on the same features (or model), each beside oodbench's, with the ratio."""
    device = torch.device(args.device)
    # pytorch-ood computes where its inputs live: the features go to the model's device for it
    z_tr = tr.features(["penultimate"])["penultimate"].to(device)
    z_te = te.features(["penultimate"])["penultimate"].to(device)
    logits_tr, logits_te = tr.logits().to(device), te.logits().to(device)
    labels = train.labels.to(device)
    x = test.images.float().div(255).to(device)

    def batched(detector):  # the model-level detectors see the same batch size as oodbench's
        return lambda: torch.cat([detector.predict(part) for part in x.split(args.batch_size)])

    head = model.head
    w, b = head.weight.detach(), head.bias.detach()
    theirs = {
        "msp": lambda: pood.MaxSoftmax.score(logits_te),
        "energy": lambda: pood.EnergyBased.score(logits_te),
        "maxlogit": lambda: pood.MaxLogit.score(logits_te),
        "entropy": lambda: pood.Entropy.score(logits_te),
        "gen": lambda: pood.GEN.score(logits_te, gamma=0.1, M=10),
        "klm": lambda: pood.KLMatching(None).fit_logits(logits_tr).predict_logits(logits_te),
        "mahalanobis": lambda: pood.Mahalanobis(None).fit_features(z_tr, labels).predict_features(z_te),
        "rmd": lambda: pood.RMD(None).fit_features(z_tr, labels).predict_features(z_te),
        "knn": lambda: pood.KNN(None, k=50).fit_features(z_tr, labels).predict_features(z_te),
        "vim": lambda: pood.ViM(None, d=42, w=w, b=b).fit_features(z_tr, labels).predict_features(z_te),
        "dice": lambda: pood.DICE(None, w=w, b=b, p=0.9).fit_features(z_tr, labels).predict_features(z_te),
        "she": lambda: pood.SHE(None, head).fit_features(z_tr, labels).predict_features(z_te),
        "nnguide": lambda: pood.NNGuide(None, head, k=10).fit_features(z_tr, labels).predict_features(z_te),
        "odin": batched(pood.ODIN(model, eps=0.0014, temperature=1000.0)),
        "gradnorm": batched(pood.GradNorm(model, param_filter=lambda n: n == f"net.{model.head_path}.weight")),
    }
    print(f"\n{'detector':22s} {'oodbench s':>10s} {'pytorch-ood s':>14s} {'ratio':>8s}")
    for name, fn in theirs.items():
        if name not in ours:
            continue
        with torch.no_grad() if name not in ("odin", "gradnorm") else torch.enable_grad():
            _, sec = timed(fn)
        print(f"{name:22s} {ours[name]:10.3f} {sec:14.3f} {sec / max(ours[name], 1e-9):8.1f}x")


if __name__ == "__main__":
    main()
