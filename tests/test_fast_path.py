"""The CUDA fast path (bf16 autocast, channels_last) run on the CPU (issue 12, items 1 and 2).

No test may need a GPU, yet the trainer's and the feature extractor's CUDA branch is what a GPU run executes:
bf16 activations and channels_last maps. :func:`oodbench.core.precision.accelerated` is the one switch for it, so
switching it on here runs that branch through the CPU's own bf16 autocast: a loss that mixes dtypes, a ``.view``
of a channels_last map or a float32 buffer written with bf16 values fails here as it would on the GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import builtin_names

from oodbench.core import precision
from oodbench.data.imageset import LoadContext
from oodbench.models.features import FeatureView
from oodbench.models.train import TrainConfig, TrainTask, fit_model
from oodbench.plugins.detector import fit_detector, validate_scores
from oodbench.plugins.manager import registries
from oodbench.plugins.testing import tiny_run
from oodbench.records.metrics import auroc


@pytest.fixture
def fast_path(monkeypatch):
    """Every device takes the fast path, as CUDA does."""
    monkeypatch.setattr(precision, "accelerated", lambda device: True)


class _Seen(TrainTask):
    """Cross-entropy, recording the dtype of the logits and the layout of the batches it is given."""

    def __init__(self):
        self.dtypes: set[torch.dtype] = set()
        self.channels_last: set[bool] = set()

    def loss(self, model, x, y):
        logits = model(x)
        self.dtypes.add(logits.dtype)
        self.channels_last.add(x.is_contiguous(memory_format=torch.channels_last))
        return F.cross_entropy(logits, y)


def test_the_trainer_runs_bf16_and_channels_last_on_the_fast_path(fast_path, data_root):
    factory = registries().backbones.get("lenet")
    data = registries().datasets.get("fashionmnist").load("train", LoadContext(data_root)).head(2048)
    torch.manual_seed(0)
    model = factory.build(data.shape, 10)
    task = _Seen()
    log = fit_model(model, data, TrainConfig(epochs=3, batch_size=64, augment="crop-flip"), "cpu", task)
    assert task.dtypes == {torch.bfloat16} and task.channels_last == {True}
    conv = next(m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)).weight
    assert conv.dtype == torch.float32 and conv.is_contiguous(memory_format=torch.channels_last)
    assert np.isfinite(log["epoch_loss"]).all() and log["epoch_loss"][-1] < log["epoch_loss"][0], log["epoch_loss"]


@pytest.mark.parametrize("name", builtin_names("detectors"))
def test_every_detector_fits_and_scores_on_the_fast_path(fast_path, name):
    """Fit (training its own networks through the trainer where it does) and score from bf16 features."""
    (train, id_test, ood_test), supplies = tiny_run(n_train=128, n_test=48)
    for view in (train, id_test, ood_test):
        view.amp = True
    det = registries().detectors.get(name)()
    fit_detector(det, train, supplies)
    for view in (id_test, ood_test):
        validate_scores(det, det.score_samples(view), len(view))
    assert train.features(["penultimate"])["penultimate"].dtype == torch.float32


POST_HOC = ("msp", "energy", "maxlogit", "mahalanobis", "knn", "vim", "react", "fssd")


def test_bf16_features_rank_as_float32_features_do(lenet_fmnist, data_root, monkeypatch):
    """A trained LeNet, FashionMNIST vs MNIST: features extracted on the fast path are within bf16's precision
    of float32 ones, and each detector's AUROC from them moves by less than half a point."""
    model, train = lenet_fmnist
    ctx = LoadContext(data_root)
    id_test = registries().datasets.get("fashionmnist").load("test", ctx).head(1000)
    ood_test = registries().datasets.get("mnist").load("test", ctx).head(1000)
    results = {}
    for fast in (False, True):
        monkeypatch.setattr(precision, "accelerated", lambda device, fast=fast: fast)
        views = [FeatureView(d, model, "cpu", 256, amp=True) for d in (train.head(2000), id_test, ood_test)]
        feats = views[1].features(["penultimate"])["penultimate"]
        aurocs = {}
        for name in POST_HOC:
            det = registries().detectors.get(name)().fit(views[0])
            s_id, s_ood = (validate_scores(det, det.score_samples(v), len(v)) for v in views[1:])
            aurocs[name] = auroc(s_id, s_ood)
        results[fast] = (feats, aurocs)
    (f32, a32), (f16, a16) = results[False], results[True]
    assert f16.dtype == torch.float32
    relative = (f16 - f32).norm(dim=1) / f32.norm(dim=1).clamp_min(1e-6)
    assert 0 < relative.median() < 0.02, relative.median()
    gaps = {name: abs(a16[name] - a32[name]) for name in POST_HOC}
    assert max(gaps.values()) < 0.5, gaps


def test_features_from_the_fast_path_are_cached_apart_from_the_cpus(monkeypatch, data_root, tmp_path):
    """bf16 features (the fast path) and float32 ones are not interchangeable: their feature-cache keys differ;
    an fp32 key is (weights' hash, data name, data fingerprint)."""
    import hashlib

    from oodbench.pipeline.request import RunRequest
    from oodbench.pipeline.supply import view_factory

    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path))
    data = registries().datasets.get("mnist").load("test", LoadContext(data_root)).head(64)
    model = registries().backbones.get("lenet").build(data.shape, 10)
    req = RunRequest(detectors=["msp"], id="mnist")
    cpu = view_factory(req, model, "abc123", torch.device("cpu"))(data).cache_dir
    key = hashlib.sha256(f"abc123|{data.name}|{data.fingerprint()}".encode()).hexdigest()[:20]
    assert cpu == tmp_path / "features" / key
    fast = view_factory(req, model, "abc123", torch.device("cpu"), "bf16")(data).cache_dir
    assert fast.parent == cpu.parent and fast != cpu
