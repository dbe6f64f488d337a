"""The full-spectrum protocol (issue 30 item 2): ID ∪ csID scored against OOD, tuning on clean data, ID accuracy on
clean and shifted ID, and csID copies of ID tuning samples never evaluated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from oodbench.core.errors import UsageError
from oodbench.data.provenance import shared

SMALL = dict(train_limit=3000, test_limit=200, epochs=3, n_tune=20, id="fashionmnist", oods=["mnist"])


def request(tmp_path, **kw):
    from oodbench.pipeline.runner import RunRequest

    return RunRequest(**{"detectors": ["msp", "energy"], "results": str(tmp_path / "r"), **SMALL, **kw})


def test_full_spectrum_scores_id_and_its_shifted_copies_against_ood(tmp_path):
    from oodbench.pipeline.runner import run

    fs = run(
        request(tmp_path, protocol="full-spectrum", corruptions=["gaussian_noise", "contrast"], severities=[2, 5]),
        store=False,
    )
    plain = run(request(tmp_path), store=False)
    for (record, scores), (clean, clean_scores) in zip(fs.unsaved, plain.unsaved):
        assert record.protocol == "full-spectrum" and record.detector == clean.detector
        n_eval = 200 - 20
        assert record.n_eval == {"id": 5 * n_eval, "ood": clean.n_eval["ood"]}  # clean + 4 csID copies
        # the clean part is the anomaly run's evaluation split, scored the same
        assert np.allclose(scores["id"][:n_eval], clean_scores["id"])
        assert np.allclose(scores["ood"], clean_scores["ood"])
        labels = np.r_[np.ones(len(scores["id"])), np.zeros(len(scores["ood"]))]
        expected = 100 * roc_auc_score(labels, np.r_[scores["id"], scores["ood"]])
        assert record.metrics["auroc"] == pytest.approx(expected, abs=1e-9)
        assert record.metrics["id_acc"] == clean.metrics["id_acc"] and "id_acc_shifted" not in clean.metrics
        assert 0 <= record.metrics["id_acc_shifted"] <= 100
        assert record.metrics["id_acc_shifted"] < record.metrics["id_acc"]  # severity-5 noise and contrast hurt
        assert record.config["csid"] == {"corruptions": ["gaussian_noise", "contrast"], "severities": [2, 5]}


def test_csid_copies_of_id_tuning_samples_are_never_evaluated(tmp_path):
    from oodbench.pipeline.planning import make_plan, resolve

    req = request(tmp_path, protocol="full-spectrum", corruptions=["brightness"], severities=[1, 3], tune="oracle")
    plan = make_plan(req, resolve(req))
    evaluated = plan.id_scored.subset(plan.id_scored_eval())
    tuned = plan.id_test.subset(plan.id_split.tune)
    assert len(evaluated) == 3 * len(plan.id_split.eval)
    assert not shared(evaluated.provenance, tuned.provenance).any()  # copies of evaluated images only
    copies = plan.id_scored.subset(plan.id_split.tune + len(plan.id_test))  # brightness@1 of the tuning images
    assert shared(copies.provenance, tuned.provenance).all()  # the check would see them as the tuning images
    assert torch.equal(plan.id_scored.images[: len(plan.id_test)], plan.id_test.images)  # clean first


def test_full_spectrum_needs_ood_sets_and_refuses_corrupt_both(tmp_path):
    from oodbench.pipeline.planning import resolve

    with pytest.raises(UsageError, match="--out"):
        resolve(request(tmp_path, protocol="full-spectrum", oods=[]))
    with pytest.raises(UsageError, match="--corrupt-both applies to --protocol corruption, not full-spectrum"):
        resolve(request(tmp_path, protocol="full-spectrum", corrupt_both="contrast:3"))
