"""MSP, Energy, KNN and ViM on a shared CIFAR-10 model agree with pytorch-ood 0.4.0 to 0.5 AUROC (issue 30).

The model is one of the CIFAR-10 classifiers brought from outside the project (../shared/models, TorchScript),
loaded as ``--model`` loads it; the images are the same 600 cifar10-jpeg training images (the fit data of KNN
and ViM) and 300 cifar10-jpeg vs 300 SVHN test images for both. pytorch-ood computes its logits with the
TorchScript module itself, and its KNN/ViM from the penultimate features of the same module (as the LeNet
agreement tests give it the features oodbench extracted).
Each prints both AUROCs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pood = pytest.importorskip("pytorch_ood.detector")

from oodbench.data.imageset import ImageSet, LoadContext  # noqa: E402
from oodbench.models.features import FeatureView  # noqa: E402
from oodbench.models.foreign import BroughtModel  # noqa: E402
from oodbench.plugins.manager import registries  # noqa: E402
from oodbench.records.metrics import auroc  # noqa: E402

MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "cifar10-mininet-w64-s0.ts"
N = 300
pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason=f"the shared CIFAR-10 models are not in {MODEL.parent}")


@pytest.fixture(scope="module")
def cifar(data_root):
    reg, ctx = registries().datasets, LoadContext(data_root)
    backbone = BroughtModel(str(MODEL)).build((3, 32, 32), 10).eval()
    train = reg.get("cifar10-jpeg").load("train", ctx).head(600, 0)
    images = torch.cat([reg.get(n).load("test", ctx).head(N, 0).images for n in ("cifar10-jpeg", "svhn")])
    test = ImageSet(images, torch.full((2 * N,), -1), "cifar10-jpeg+svhn")
    scripted = torch.jit.load(str(MODEL)).eval()  # pytorch-ood's side: the TorchScript module as it is
    with torch.no_grad():
        logits = scripted(images.float() / 255)
    train_view, test_view = FeatureView(train, backbone), FeatureView(test, backbone)
    penultimate = test_view.features(["penultimate"])["penultimate"]  # pytorch-ood's KNN/ViM fit and score these
    train_penultimate = train_view.features(["penultimate"])["penultimate"]
    return backbone, train_view, test_view, logits, penultimate, train_penultimate


def _ours(name, train, test, **params) -> float:
    scores = registries().detectors.get(name)(**params).fit(train).score_samples(test).detach().cpu()
    return auroc(scores[:N], scores[N:])


def _theirs(outlier_scores: torch.Tensor) -> float:
    s = -outlier_scores.detach().cpu()  # pytorch-ood: higher = more OOD
    return auroc(s[:N], s[N:])


def _close(name: str, ours: float, theirs: float) -> None:
    print(f"{name}: oodbench {ours:.2f}, pytorch-ood {theirs:.2f}")
    assert abs(ours - theirs) <= 0.5, (name, ours, theirs)


def test_msp_and_energy(cifar):
    _, train, test, logits, _, _ = cifar
    _close("msp", _ours("msp", train, test), _theirs(pood.MaxSoftmax.score(logits)))
    _close("energy", _ours("energy", train, test), _theirs(pood.EnergyBased.score(logits)))


def test_knn_and_vim(cifar):
    backbone, train, test, _, penultimate, train_penultimate = cifar
    labels = torch.zeros(len(train_penultimate), dtype=torch.long)
    knn = pood.KNN(None, k=50).fit_features(train_penultimate, labels)
    _close("knn", _ours("knn", train, test, k=50), _theirs(knn.predict_features(penultimate)))
    head = backbone.head
    vim = pood.ViM(None, d=64, w=head.weight.detach(), b=head.bias.detach())
    vim.fit_features(train_penultimate, labels)
    _close("vim", _ours("vim", train, test, dim=64), _theirs(vim.predict_features(penultimate)))
