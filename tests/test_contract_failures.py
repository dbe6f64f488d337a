"""docs/plugins.md §9 and the checks agree (issue 27): every way a detector can break the contract fails
``check_detector`` with an ``AssertionError`` naming the rule — never a DetectorError, a scikit-learn
RuntimeError or the detector's own exception — and ``search_space`` may read fitted state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodbench import Detector, Interval
from oodbench.pipeline.runner import RunRequest, run
from oodbench.plugins.testing import check_detector


def _logit_max(data) -> torch.Tensor:
    return data.features(["logits"])["logits"].max(dim=1).values


class Good(Detector):
    name = "contract-good"
    description = "max logit"

    def score_samples(self, data):
        return _logit_max(data)


class NotStored(Good):
    name = "contract-not-stored"

    def __init__(self, k=3):
        self.k = k * 2  # clone() of scikit-learn refuses this (RuntimeError)


class Learned(Good):
    name = "contract-learned"

    def __init__(self):
        self.mean_ = 0.0


class NoLayer(Good):
    name = "contract-no-layer"

    def required_layers(self, model):
        return ["conv9"]


class FitNotSelf(Good):
    name = "contract-fit-not-self"

    def fit(self, train):
        return None


class FitRaises(Good):
    name = "contract-fit-raises"

    def fit(self, train):
        raise KeyError("penultimat")


class NaNs(Good):
    name = "contract-nans"

    def score_samples(self, data):
        s = _logit_max(data)
        return torch.where(s > s.median(), torch.nan, s)  # a DetectorError inside validate_scores


class WrongLength(Good):
    name = "contract-wrong-length"

    def score_samples(self, data):
        return _logit_max(data)[:-1]


class Batchy(Good):
    name = "contract-batchy"

    def score_samples(self, data):
        s = _logit_max(data)
        return s - s.mean()  # depends on the other samples in the batch


class BadGrid(Good):
    name = "contract-bad-grid"

    def search_space(self):
        return {"temperature": [1.0]}  # not an __init__ parameter


class BadDefault(Good):
    name = "contract-bad-default"
    parameter_constraints = {"k": [Interval(int, 1)]}

    def __init__(self, k=0):
        self.k = k


FAILURES = {
    NotStored: "__init__ with defaults and clone: raised RuntimeError",
    Learned: "must not set learned",
    NoLayer: "required_layers names layers the backbone lacks",
    FitNotSelf: "fit must return self",
    FitRaises: "fit: raised KeyError",
    NaNs: "score_samples: raised DetectorError: .*non-finite",
    WrongLength: "score_samples: raised DetectorError: .*shape",
    Batchy: "must not depend on the other samples in the batch",
    BadGrid: "search_space names 'temperature', which is not an __init__ parameter",
    BadDefault: "a default breaks its declared parameter_constraints: contract-bad-default.k=0",
}


def test_a_good_detector_passes():
    check_detector(Good)


@pytest.mark.parametrize("cls", list(FAILURES), ids=lambda c: c.name)
def test_each_broken_rule_is_an_assertion_naming_it(cls):
    with pytest.raises(AssertionError, match=FAILURES[cls]):
        check_detector(cls)


class BoundedKNN(Detector):
    """k-NN distance on the penultimate features, its k grid bounded by the fitted training-set size and
    feature dimension — a search space that reads fitted state (docs/plugins.md §5)."""

    name = "contract-bounded-knn"
    description = "kNN whose k grid depends on the fitted data"

    def __init__(self, k=1):
        self.k = k

    def required_layers(self, model):
        return ["penultimate"]

    def fit(self, train):
        self.bank_ = torch.nn.functional.normalize(train.features(["penultimate"])["penultimate"], dim=1)
        return self

    def search_space(self):
        limit = min(len(self.bank_), self.bank_.shape[1])  # fitted state: AttributeError before fit
        return {"k": [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024) if k <= limit]}

    def score_samples(self, data):
        x = torch.nn.functional.normalize(data.features(["penultimate"])["penultimate"], dim=1)
        return -torch.cdist(x, self.bank_).topk(self.k, dim=1, largest=False).values[:, -1]


def test_search_space_may_depend_on_the_fitted_feature_size(monkeypatch, tmp_path):
    check_detector(BoundedKNN)  # read after fit in the contract check
    from oodbench.plugins import manager

    regs = manager.registries()
    monkeypatch.setitem(regs.detectors.entries, BoundedKNN.name, manager.Entry(BoundedKNN.name, BoundedKNN, "test"))
    req = RunRequest(
        detectors=[BoundedKNN.name], id="fashionmnist", oods=["mnist"], epochs=1, train_limit=300,
        test_limit=200, n_tune=50, tune="oracle", results=str(tmp_path),
    )  # fmt: skip
    (record,) = run(req).records
    ks = [t["k"] for t in record.tuning["trials"]]
    assert ks == [1, 2, 4, 8, 16, 32, 64]  # bounded by LeNet's penultimate dimension, 84
    assert record.tuning["chosen"]["k"] in ks and np.isfinite(record.metrics["auroc"])


def test_layers_probes_a_backbone_at_its_declared_input_shape_and_names_close_paths(monkeypatch, capsys):
    from oodbench import Backbone, BackboneFactory
    from oodbench.cli.main import main
    from oodbench.plugins import manager

    class Small(BackboneFactory):
        name = "contract-small"
        input_shape = (1, 28, 28)  # suits() nothing: without the declaration `layers` would probe 3×224×224

        def __init__(self, layer: str = "0"):
            self.layer = layer

        def build(self, input_shape, num_classes, pretrained=False, **options):
            net = torch.nn.Sequential(torch.nn.Conv2d(input_shape[0], 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
            return Backbone(net, {"conv": self.layer}, "2", [0.5], [0.5], input_shape, arch=self.name)

    regs = manager.registries().backbones
    monkeypatch.setitem(regs.entries, "contract-small", manager.Entry("contract-small", Small(), "test"))
    assert main(["layers", "contract-small", "--classes", "2"]) == 0
    assert "on 1×28×28 inputs" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"no module '00' in the network; closest: 0"):
        Small("00").build((1, 28, 28), 2)
