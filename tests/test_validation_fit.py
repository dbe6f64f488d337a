"""Calibration-style fits take the ID validation split (issue 28, item 4; ``Needs.fits_on``): temperature scaling
and KL matching fit on the ID samples held out for tuning — never evaluated, never trained on — not on ID train,
where a classifier that fits its training set gets a temperature below 1."""

from __future__ import annotations

import torch

from oodbench.pipeline.runner import RunRequest, run
from oodbench.plugins.manager import registries
from oodbench.plugins.testing import synthetic_view

SMALL = dict(oods=["mnist"], epochs=1, train_limit=2000, test_limit=600, n_tune=100)


def test_calibration_detectors_fit_on_the_held_out_id_samples(tmp_path):
    recs = {r.detector: r for r in run(RunRequest(["temperature-scaling", "klm", "msp"], "fashionmnist", **SMALL))}
    for name in ("temperature-scaling", "klm"):
        assert registries().detectors.get(name).needs.fits_on == "validation"
        assert recs[name].fit["fitted_on"] == "ID validation, 100", recs[name].fit  # n_tune samples, not 2,000
        assert recs[name].n_eval["id"] == recs["msp"].n_eval["id"] == 500  # and none of them is evaluated
    assert registries().detectors.get("msp").needs.fits_on == "train"


def test_fitted_temperature_is_the_nll_minimiser_of_the_data_it_is_given():
    """Guo et al. 2017 §4.2: T minimises the NLL. Logits made twice too sharp for their labels get T ≈ 2."""
    torch.manual_seed(0)
    true = torch.randn(4000, 5)
    labels = torch.distributions.Categorical(logits=true).sample()  # labels drawn from softmax(true)
    view = synthetic_view({"logits": 2 * true}, labels)
    det = registries().detectors.get("temperature-scaling")().fit(view)
    assert abs(det.fitted_temperature_ - 2.0) < 0.15
    assert det.describe_fit()["fitted_on"] == "ID validation, 4000"
