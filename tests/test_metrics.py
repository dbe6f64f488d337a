"""Metrics against hand-worked values (SPEC.md definitions), ties included."""

import numpy as np
import pytest

from oodbench.records import metrics as M


def test_auroc_perfect_inverted_and_tied():
    assert M.auroc([3, 4], [1, 2]) == 100.0
    assert M.auroc([1, 2], [3, 4]) == 0.0
    # all tied: every ID/OOD pair counts one half
    assert M.auroc([1, 1], [1, 1]) == 50.0
    # ID {2, 1}, OOD {1, 0}: pairs (2>1)(2>0)(1=1 → ½)(1>0) → 3.5 / 4
    assert M.auroc([2, 1], [1, 0]) == pytest.approx(87.5)


def test_aupr_in_and_out_by_hand():
    # ranking by score: ID(3), OOD(2), ID(1). AP with ID positive: (1/1 + 2/3)/2
    assert M.aupr_in([3, 1], [2]) == pytest.approx(100 * (1 + 2 / 3) / 2)
    # OOD positive, ranking by -score: ID(-3)… → order: ID(1) [-1], OOD(2) [-2], ID(3) [-3]: AP = 1/2
    assert M.aupr_out([3, 1], [2]) == pytest.approx(50.0)


def test_fpr_at_tpr_id_positive_with_ties():
    id_s = np.arange(1, 21, dtype=float)  # 20 ID scores 1..20
    ood = np.array([0.5, 1.0, 2.0, 30.0])
    # accepting 95% of ID = 19 of 20 → threshold 2 → accepts OOD {2, 30} (tie with 2 accepted) = 50%
    assert M.fpr_at(id_s, ood, 0.95) == pytest.approx(50.0)
    assert M.ood_metrics(id_s, ood)["tnr95"] == pytest.approx(50.0)
    # 80% → 16 of 20 → threshold 5 → accepts only OOD 30
    assert M.fpr_at(id_s, ood, 0.80) == pytest.approx(25.0)


def test_fpr_ties_accept_together():
    # ID scores all equal: any threshold accepting 95% of ID accepts all ties, OOD tie included
    assert M.fpr_at([1, 1, 1, 1], [1, 0], 0.95) == pytest.approx(50.0)


def test_fpr95_oodpos_is_a_different_quantity():
    id_s = np.arange(1, 21, dtype=float)
    ood = np.array([0.5, 1.0, 2.0, 30.0])
    # OOD positive, flag when -score >= t. Catch ≥95% of 4 OOD → all 4 → must flag score ≤ 30 → all ID flagged
    assert M.fpr95_oodpos(id_s, ood) == pytest.approx(100.0)
    # without the outlier at 30: flag score ≤ 2 → ID {1, 2} flagged = 10%
    assert M.fpr95_oodpos(id_s, ood[:3]) == pytest.approx(10.0)


def test_detection_error_min_and_at_95():
    id_s, ood = [3.0, 4.0], [1.0, 2.0]
    assert M.det_err(id_s, ood) == 0.0
    # ID {1,2,3,4}, OOD {2.5}: best threshold 3 → TPR ½, FPR 0 → 25; threshold 1 → TPR 1, FPR 1 → 50
    assert M.det_err([1, 2, 3, 4], [2.5]) == pytest.approx(25.0)
    # TPR ≥ 95% forces threshold 1: 0.5·0 + 0.5·1 = 50
    assert M.det_err95([1, 2, 3, 4], [2.5]) == pytest.approx(50.0)


def test_misclassification_metrics_by_hand():
    scores = np.array([0.9, 0.8, 0.3, 0.2])
    correct = np.array([True, True, False, True])
    m = M.misclassification_metrics(scores, correct)
    # errors ranked by -score: the error (0.3) beats correct 0.9, 0.8 but not 0.2 → 2/3
    assert m["auroc_err"] == pytest.approx(100 * 2 / 3)
    assert m["aupr_err"] == pytest.approx(50.0)  # order by -score: 0.2(c) 0.3(e) → precision ½
    assert m["aupr_succ"] == pytest.approx(100 * (1 + 1 + 3 / 4) / 3)


def test_metrics_reject_empty():
    with pytest.raises(ValueError):
        M.auroc([], [1.0])
