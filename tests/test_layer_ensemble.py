"""Layer ensembles need layers: a layer-wise detector with one layer keeps that layer's score under tuning
(no logistic regression, no sign learned from OOD labels), and its record says no ensemble was fitted."""

from __future__ import annotations

import numpy as np

from oodbench.pipeline.tuning import criterion_value, tune
from oodbench.plugins.manager import registries
from oodbench.plugins.testing import tiny_views


def test_one_layer_under_oracle_tuning_scores_that_layer_as_is():
    train, id_test, ood_test = tiny_views()
    det = registries().detectors.get("fssd")(layers=["conv2"]).fit(train)
    tuned, info = tune(det, id_test, ood_test, "noise", seed=0)
    assert info.grid_size == 21 and info.params["epsilon"] in det.search_space()["epsilon"]
    for view in (id_test, ood_test):
        assert np.array_equal(tuned.score_samples(view), tuned.layer_scores(view)[:, 0])
    facts = tuned.describe_fit()
    assert "ensemble" not in facts and facts["combination"] == "one layer (conv2): its score as is; no ensemble fitted"


def test_one_layer_selects_on_the_whole_tuning_set():
    train, id_test, ood_test = tiny_views()
    det = registries().detectors.get("fssd")(layers=["conv1"]).fit(train)
    _, info = tune(det, id_test, ood_test, "noise", seed=0)
    for trial in info.trials:  # every trial's criterion comes from all 96 + 96 tuning samples
        cand = det.tuned_copy(epsilon=trial["epsilon"])
        value = criterion_value("tnr95", cand.score_samples(id_test), cand.score_samples(ood_test))
        assert np.isclose(trial["tnr95"], value)
    assert info.protocol == "grid point chosen on the whole tuning set (no layer ensemble)"  # what the record says


def test_two_layers_still_fit_the_ensemble():
    train, id_test, ood_test = tiny_views()
    det = registries().detectors.get("fssd")(layers=["conv2", "logits"]).fit(train)
    tuned, info = tune(det, id_test, ood_test, "noise", seed=0)
    assert set(tuned.describe_fit()["ensemble"]["weights"]) == {"conv2", "logits"}
    assert info.protocol.startswith("regression half / selection half")
