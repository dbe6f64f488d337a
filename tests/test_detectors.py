"""Detectors: the contract over the whole registry, FSSD by hand, and tuning-set hygiene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodbench.data.imageset import LoadContext
from oodbench.models.features import FeatureView
from oodbench.pipeline.protocols import Split
from oodbench.pipeline.tuning import tune
from oodbench.plugins.manager import registries
from oodbench.plugins.testing import check_detector, tiny_views


def _split(n, k, seed):
    split = Split.of(n, k, seed)
    return split.tune, split.eval


@pytest.mark.parametrize("name", registries().detectors.names())
def test_detector_contract(name):
    check_detector(registries().detectors.get(name))


def test_msp_is_max_softmax():
    train, id_test, _ = tiny_views()
    det = registries().detectors.get("msp")().fit(train)
    logits = id_test.logits()
    assert np.allclose(det.score_samples(id_test), torch.softmax(logits, 1).max(1).values.numpy())


def test_fssd_singularity_and_distance_by_hand():
    train, id_test, _ = tiny_views()
    fssd = registries().detectors.get("fssd")(n_noise=300, seed=1).fit(train)
    # FSS is the mean feature of uniform-noise images (Algorithm 1, step 1)
    g = torch.Generator().manual_seed(1)
    noise = torch.randint(0, 256, (300, 1, 28, 28), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        ref = train.model.forward_features(noise.float() / 255, ["conv2"])["conv2"].mean(0)
    assert torch.allclose(fssd.fss_["conv2"], ref, atol=1e-5)
    # FSSD_k(x) = ||F_k(x) - F*_k|| (eq. 1)
    scores = fssd.layer_scores(id_test)
    feats = id_test.features(["conv2"])["conv2"]
    k = fssd.layers_.index("conv2")
    assert np.allclose(scores[:, k], (feats - ref).norm(dim=1).numpy(), rtol=1e-4)


def test_fssd_input_preprocessing_moves_away_from_fss():
    train, id_test, _ = tiny_views()
    det = registries().detectors.get("fssd")(seed=0).fit(train)
    base = det.layer_scores(id_test)
    pushed = det.tuned_copy(epsilon=0.01).layer_scores(id_test)
    # x + eps*sign(grad FSSD) increases FSSD for (almost) every sample and layer
    assert (pushed > base).double().mean() > 0.9


def test_fssd_separates_fmnist_from_mnist_on_a_trained_lenet(lenet_fmnist, data_root):
    model, _ = lenet_fmnist
    reg = registries().datasets
    ctx = LoadContext(data_root)
    fm = reg.get("fashionmnist").load("test", ctx).head(1000)
    mn = reg.get("mnist").load("test", ctx).head(1000)
    train = FeatureView(reg.get("fashionmnist").load("train", ctx).head(2000), model)
    det = registries().detectors.get("fssd")().fit(train)
    id_v, ood_v = FeatureView(fm, model), FeatureView(mn, model)
    id_tune, id_eval = _split(1000, 200, 0)
    ood_tune, ood_eval = _split(1000, 200, 1)
    tuned, info = tune(det, id_v.subset(id_tune), ood_v.subset(ood_tune), "mnist")
    from oodbench.records.metrics import auroc

    a = auroc(tuned.score_samples(id_v.subset(id_eval)), tuned.score_samples(ood_v.subset(ood_eval)))
    assert a > 95.0
    assert (
        info.grid_size == 21
        and len(info.trials) == 21
        and info.params["epsilon"] in [t["epsilon"] for t in info.trials]
    )


def test_tuning_and_evaluation_samples_never_overlap():
    for n, k in ((10000, 1000), (1200, 200), (50, 1000)):
        tune_idx, eval_idx = _split(n, k, seed=3)
        assert len(set(tune_idx.tolist()) & set(eval_idx.tolist())) == 0
        assert len(tune_idx) + len(eval_idx) == n and len(tune_idx) == min(k, n // 2)
    assert torch.equal(_split(1000, 100, 0)[0], _split(1000, 100, 0)[0])


def test_feature_extraction_happens_once_per_split():
    train, id_test, _ = tiny_views()
    dets = [registries().detectors.get(name)().fit(train) for name in ("msp", "fssd")]
    layers = sorted({layer for d in dets for layer in d.required_layers(id_test.model)})
    calls = []
    handle = id_test.model.net.register_forward_hook(lambda *a: calls.append(1))
    id_test.features(layers)
    assert len(calls) == 2  # 96 samples in batches of 64: one pass over the split for all layers
    for det in dets:
        det.score_samples(id_test)
        det.score_samples(id_test.subset(torch.arange(10)))
    handle.remove()
    assert len(calls) == 2  # every detector (and subset) reused the cached features


def test_nonfinite_scores_are_an_error():
    from oodbench.core.errors import DetectorError
    from oodbench.plugins.detector import Detector, validate_scores

    with pytest.raises(DetectorError, match="non-finite"):
        validate_scores(Detector(), np.array([0.0, np.nan]), 2)
    with pytest.raises(DetectorError, match="shape"):
        validate_scores(Detector(), np.zeros(3), 2)


def test_untuned_layerwise_score_is_the_deepest_layer_and_says_so():
    train, id_test, _ = tiny_views()
    det = registries().detectors.get("fssd")().fit(train)
    assert np.allclose(det.score_samples(id_test), det.layer_scores(id_test)[:, -1])
    assert "deepest layer only (logits)" in det.describe_fit()["combination"]


def test_scoring_before_fit_is_refused():
    from sklearn.exceptions import NotFittedError

    _, id_test, _ = tiny_views()
    with pytest.raises(NotFittedError):
        registries().detectors.get("fssd")().score_samples(id_test)


def test_features_come_back_from_the_disk_cache(tmp_path):
    train, id_test, _ = tiny_views()
    first = FeatureView(id_test.imageset, id_test.model, cache_dir=tmp_path / "f")
    want = first.features(["conv1", "logits"])
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert names == ["conv1.pt", "conv1.pt.sha256", "logits.pt", "logits.pt.sha256"]  # each entry with its hash

    class Exploding(torch.nn.Module):
        def forward(self, x):  # pragma: no cover - must not run
            raise AssertionError("features should have come from disk")

    second = FeatureView(id_test.imageset, id_test.model, cache_dir=tmp_path / "f")
    second.model = type(id_test.model).__new__(type(id_test.model))
    torch.nn.Module.__init__(second.model)
    second.model.net = Exploding()
    got = second.features(["conv1", "logits"])
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_batch_independence_under_avx2_kernels():
    """CI may run on a CPU without AVX-512 (the failure of issue 11 on an AMD EPYC with AVX2 only):
    oneDNN's AVX2 GEMM blocking made torch.cdist's matrix-product path depend on the batch size.
    The contract check runs here with oneDNN capped at AVX2, in a fresh interpreter (the cap is read
    when torch loads)."""
    import os
    import subprocess
    import sys

    code = (
        "from oodbench.plugins import registries; from oodbench.plugins.testing import check_detector\n"
        "for n in ('metric-learning', 'odm', 'dec-embedding'): check_detector(registries().detectors.get(n))"
    )
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "OODBENCH_QUIET": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_gradient_pass_that_runs_out_of_memory_halves_its_batch_and_scores_alike(lenet_fmnist, data_root, capfd):
    """ODIN's input pre-processing (a gradient pass per batch) on a trained LeNet whose forward runs out of
    memory above 32 images, as a GPU would at ImageNet size: the pass restarts at half the batch until it fits,
    warns once per halving, keeps the batch that fitted (its subsets too), and gives the scores of a view whose
    batch fitted from the start. Where not even one image fits, the error stands."""
    model, train = lenet_fmnist
    test = registries().datasets.get("mnist").load("test", LoadContext(data_root)).head(200)
    fitted = registries().detectors.get("odin")(epsilon=0.002).fit(FeatureView(train.head(500), model, "cpu", 32))
    expected = fitted.score_samples(FeatureView(test, model, "cpu", 32))
    limit = {"images": 32}

    def out_of_memory_above_the_limit(module, args):
        if torch.is_grad_enabled() and len(args[0]) > limit["images"]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    handle = model.register_forward_pre_hook(out_of_memory_above_the_limit)
    try:
        view = FeatureView(test, model, "cpu", 128)
        capfd.readouterr()
        assert np.allclose(fitted.score_samples(view), expected, atol=1e-6)
        assert np.allclose(fitted.score_samples(view.subset(torch.arange(100))), expected[:100], atol=1e-6)
        limit["images"] = 0
        with pytest.raises(torch.cuda.OutOfMemoryError):
            fitted.score_samples(FeatureView(test, model, "cpu", 4))
    finally:
        handle.remove()
    lines = [line for line in capfd.readouterr().err.splitlines() if "out of memory" in line]
    halvings = [(line.split("at batch ")[1].split(" ")[0], line.split("; batch ")[1].split(" ")[0]) for line in lines]
    assert halvings == [("128", "64"), ("64", "32"), ("4", "2"), ("2", "1")], lines  # the subset started at 32
    assert all(line.startswith("oodbench: warning: out of memory on cpu") for line in lines)
