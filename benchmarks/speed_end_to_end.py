"""Per detector, uint8 images on the device → scores, forward passes inside both clocks: oodbench vs pytorch-ood.

    OODBENCH_DATA=../shared/datasets python benchmarks/speed_end_to_end.py [--device cpu] [--epochs 2]
    python benchmarks/speed_end_to_end.py --id cifar10-jpeg --ood svhn --backbone resnet18 --device cuda \
        --checkpoint FILE          # issue 12's ≥ 5× comparison (benchmarks/gpu.py runs it)

For MSP, Energy, ODIN (T = 1000, ε = 0.0014), Mahalanobis (penultimate layer, ε = 0: pytorch-ood's detector
takes one encoder), KNN (k = 50) and ViM, both sides start from the same uint8 images already on the device
and the same network in float32 (no autocast on either side):

- oodbench: a fresh :class:`~oodbench.models.features.FeatureView` per detector (empty feature cache) — ``fit`` on
  the ID training set, ``score_samples`` on the ID+OOD test set, the extraction of the layers the detector
  reads inside its clock (in a run, one extraction serves every detector: this is the least favourable case);
- pytorch-ood 0.4.0: its model-level API — ``fit(loader)`` over the same training batches (float, on the
  device, prepared outside both clocks) and ``predict(x)`` per test batch of the same size.

A second row per detector (``fast:``) times oodbench as a run computes — its fast path on CUDA: bf16
autocast and channels_last (:mod:`oodbench.core.precision`), on a copy of the network — against the same
pytorch-ood seconds (float32, the network as given): the two tools each as they are used. On the CPU the fast
path is off, so both rows time the same computation there.

Ratio = pytorch-ood seconds / oodbench seconds. ``benchmarks/detector_speed.py`` is the other comparison:
features extracted once and outside both clocks.
"""

from __future__ import annotations

import copy

import torch
from detector_speed import arguments, setup, timed

PARAMS = {"odin": {"temperature": 1000.0, "epsilon": 0.0014}, "mahalanobis": {"layers": ["penultimate"]}}


def ours(name: str, train, test, model, device, batch_size: int, amp: bool = False) -> tuple[float, object]:
    """(seconds, fitted detector): fit + score from images on the device, extraction included; ``amp``: on the
    device's fast path, as a run extracts (bf16 autocast, channels_last where the device has them)."""
    from oodbench.models.features import FeatureView
    from oodbench.plugins.detector import validate_scores
    from oodbench.plugins.manager import registries

    det = registries().detectors.get(name)(**PARAMS.get(name, {}))
    tr, te = (FeatureView(s, model, device, batch_size, amp=amp) for s in (train, test))
    _, sec = timed(lambda: validate_scores(det, det.fit(tr).score_samples(te), len(te)))
    return sec, det


def theirs(name: str, model, loader, test_x, batch_size: int, vim_dim: int) -> float:
    """Seconds of pytorch-ood's fit(loader) + predict(x) per test batch, on the same network and device."""
    import pytorch_ood.detector as pood

    def encoder(x: torch.Tensor) -> torch.Tensor:
        return model.forward_features(x, ["penultimate"])["penultimate"]

    head = model.head
    build = {
        "msp": lambda: pood.MaxSoftmax(model),
        "energy": lambda: pood.EnergyBased(model),
        "odin": lambda: pood.ODIN(model, eps=0.0014, temperature=1000.0),
        "mahalanobis": lambda: pood.Mahalanobis(encoder),
        "knn": lambda: pood.KNN(encoder, k=50),
        "vim": lambda: pood.ViM(encoder, d=vim_dim, w=head.weight.detach(), b=head.bias.detach()),
    }

    def run() -> torch.Tensor:
        det = build[name]()
        if hasattr(det, "to"):
            det.to(test_x.device)
        det.fit(loader)
        grad = torch.enable_grad() if name == "odin" else torch.no_grad()
        with grad:
            return torch.cat([det.predict(part.float().div(255)) for part in test_x.split(batch_size)])

    return timed(run)[1]


def main() -> None:
    args = arguments(__doc__)
    train, test, model, _ = setup(args)
    from oodbench.data.imageset import ImageSet

    device = torch.device(args.device)
    model = model.to(device).eval()
    train = ImageSet(train.images.to(device), train.labels.to(device), train.name)
    test = ImageSet(test.images.to(device), test.labels.to(device), test.name)
    loader = [
        (x.float().div(255), y)
        for x, y in zip(train.images.split(args.batch_size), train.labels.split(args.batch_size))
    ]
    fast_model = copy.deepcopy(model)  # the fast path turns its network channels_last: the float32 one stays as is
    with torch.no_grad():  # warm-up (kernel selection, allocator) outside every clock
        model(loader[0][0])
    ours("msp", train.head(args.batch_size), test.head(args.batch_size), fast_model, device, args.batch_size, True)
    print(f"{len(train)} train / {len(test)} test images on {device}; e2e: float32 on both sides; fast: oodbench's")
    print(f"{'detector':16s} {'oodbench s':>10s} {'pytorch-ood s':>14s} {'ratio':>8s}")
    for name in ("msp", "energy", "odin", "mahalanobis", "knn", "vim"):
        mine, det = ours(name, train, test, model, device, args.batch_size)
        fast, _ = ours(name, train, test, fast_model, device, args.batch_size, amp=True)
        other = theirs(name, model, loader, test.images, args.batch_size, getattr(det, "dim_", 0))
        print(f"{'e2e:' + name:16s} {mine:10.3f} {other:14.3f} {other / max(mine, 1e-9):8.1f}x")
        print(f"{'fast:' + name:16s} {fast:10.3f} {other:14.3f} {other / max(fast, 1e-9):8.1f}x", flush=True)


if __name__ == "__main__":
    main()
