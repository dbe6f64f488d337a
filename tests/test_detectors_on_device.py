"""Detectors compute where the features are (issue 12, item 2).

A CUDA run keeps every feature on the GPU, so a detector that copies a tensor to the host or allocates one
without naming its device is slow there (a round trip per call) or fails (tensors on two devices). No test
may need a GPU, so this checks the cause rather than the symptom: under :class:`HostGuard` every post-hoc
built-in is fitted, ensembled and scored at its default and at each grid extreme, and any ``.cpu()`` /
``.numpy()`` or device-less factory call (``torch.zeros(n)`` rather than ``torch.zeros(n, device=…)``) made
anywhere inside — detector, feature extraction, pre-processing — is reported with the line that made it.
The scores must come back as tensors: only the pipeline moves them to the CPU, for the metrics.
"""

from __future__ import annotations

import traceback

import numpy as np
import pytest
import torch
from conftest import builtin_names
from torch.overrides import TorchFunctionMode

from oodbench import Detector, LayerwiseDetector
from oodbench.plugins.detector import validate_scores
from oodbench.plugins.manager import registries
from oodbench.plugins.testing import tiny_views

FACTORIES = {
    torch.zeros,
    torch.ones,
    torch.full,
    torch.empty,
    torch.eye,
    torch.arange,
    torch.linspace,
    torch.tensor,
    torch.as_tensor,
    torch.rand,
    torch.randn,
    torch.randint,
    torch.randperm,
}
TRANSFERS = {torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.tolist}
#: detectors that compute on the CPU by design, and why
ON_THE_HOST = {"openmax": "scipy's Weibull fit and CDF (K×K state)"}


class HostGuard(TorchFunctionMode):
    """Records host copies and allocations on the default device made while it is active."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in TRANSFERS or (func in FACTORIES and "device" not in kwargs):
            caller = traceback.extract_stack(limit=2)[0]  # the line that called it
            self.found.append(f"{func.__name__} at {caller.filename.rsplit('/', 2)[-1]}:{caller.lineno}")
        return func(*args, **kwargs)


def posthoc_detectors() -> list[str]:
    """The post-hoc built-ins: a third-party plugin may return NumPy scores (docs/plugins.md §3)."""
    regs = registries().detectors
    return [n for n in builtin_names("detectors") if not regs.get(n).needs.supplies and n not in ON_THE_HOST]


def grid_points(det: Detector) -> list[dict]:
    """The defaults, then each grid parameter at its last value (e.g. ε = 0.2: pre-processing on)."""
    space = det.search_space()
    return [{}] + [{k: v[-1]} for k, v in space.items() if k not in type(det).fit_params]


@pytest.fixture(scope="module")
def views():
    return tiny_views(n_train=200, n_test=64)


@pytest.mark.parametrize("name", posthoc_detectors())
def test_posthoc_detector_stays_on_the_features_device(name, views):
    train, id_test, ood_test = (v.with_model(v.model) for v in views)  # empty caches: extraction is guarded too
    det = registries().detectors.get(name)()
    guard = HostGuard()
    with guard:
        det.fit(train)
    if isinstance(det, LayerwiseDetector) and det.combines_layers():
        det.fit_ensemble(id_test, ood_test)  # scikit-learn's regression: on the CPU, outside the guard
    for params in grid_points(det):
        tuned = det.tuned_copy(**params) if params else det
        with guard:
            scores = tuned.score_samples(id_test)
        assert isinstance(scores, torch.Tensor), f"{name} {params}: scores must stay a tensor, got {type(scores)}"
        assert scores.device == id_test.device
        validate_scores(tuned, scores, len(id_test))
    assert not guard.found, f"{name}: host copies or device-less allocations: {sorted(set(guard.found))}"


def test_the_guard_reports_a_host_round_trip(views):
    """The check can fail: a detector that scores through numpy is caught, with its line."""

    class ThroughNumpy(Detector):
        name = "through-numpy"

        def score_samples(self, data):
            return torch.from_numpy(np.exp(data.logits().numpy()).max(axis=1))

    guard = HostGuard()
    with guard:
        ThroughNumpy().fit(views[0]).score_samples(views[1])
        torch.zeros(3)
    assert any(f.startswith("numpy at ") and "test_detectors_on_device.py" in f for f in guard.found)
    assert any(f.startswith("zeros at ") for f in guard.found)


def test_ensemble_decision_in_torch_matches_scikit_learn(views):
    """The layer ensemble's linear map applied in torch (on the scores' device) equals scikit-learn's."""
    train, id_test, ood_test = views
    det = registries().detectors.get("mahalanobis")().fit(train).fit_ensemble(id_test, ood_test)
    columns = det.layer_scores(ood_test)
    assert det.ensemble_ is not None
    got = det.ensemble_.decision_function(columns).numpy()
    assert np.allclose(got, det.ensemble_.decision_function(columns.double().numpy()), rtol=1e-9, atol=1e-9)
