"""OOD and misclassification metrics, defined once, exactly as SPEC.md says (all in percent).

Inputs are per-sample scores with higher = more in-distribution. Threshold metrics use the
full ROC curve (``sklearn.metrics.roc_curve`` with every threshold kept), so ties are handled
the same way everywhere: samples with equal scores are accepted or rejected together.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _labels_scores(id_scores: np.ndarray, ood_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    id_scores = np.asarray(id_scores, dtype=np.float64).ravel()
    ood_scores = np.asarray(ood_scores, dtype=np.float64).ravel()
    if id_scores.size == 0 or ood_scores.size == 0:
        raise ValueError("metrics need at least one ID and one OOD score")
    y = np.r_[np.ones(id_scores.size), np.zeros(ood_scores.size)]
    return y, np.r_[id_scores, ood_scores]


def fpr_at_tpr(positive: np.ndarray, negative: np.ndarray, tpr: float) -> tuple[float, float]:
    """(FPR, TPR) at the first threshold accepting ≥ ``tpr`` of the positives.

    A sample is accepted when its score ≥ threshold.
    """
    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    fprs, tprs, _ = roc_curve(y, np.r_[positive, negative], drop_intermediate=False)
    i = int(np.searchsorted(tprs, tpr - 1e-12, side="left"))
    return float(fprs[i]), float(tprs[i])


def auroc(id_scores, ood_scores) -> float:
    y, s = _labels_scores(id_scores, ood_scores)
    return 100.0 * roc_auc_score(y, s)


def aupr_in(id_scores, ood_scores) -> float:
    y, s = _labels_scores(id_scores, ood_scores)
    return 100.0 * average_precision_score(y, s)


def aupr_out(id_scores, ood_scores) -> float:
    y, s = _labels_scores(id_scores, ood_scores)
    return 100.0 * average_precision_score(1 - y, -s)


def fpr_at(id_scores, ood_scores, tpr: float) -> float:
    """ID positive: % of OOD accepted when ≥ ``tpr`` of ID is accepted (fpr95, fpr80)."""
    fpr, _ = fpr_at_tpr(np.asarray(id_scores, float), np.asarray(ood_scores, float), tpr)
    return 100.0 * fpr


def fpr95_oodpos(id_scores, ood_scores) -> float:
    """OOD positive (OE code, OpenOOD): % of ID flagged when ≥ 95% of OOD is flagged."""
    fpr, _ = fpr_at_tpr(-np.asarray(ood_scores, float), -np.asarray(id_scores, float), 0.95)
    return 100.0 * fpr


def det_err(id_scores, ood_scores) -> float:
    """min over thresholds of 0.5·(1−TPR) + 0.5·FPR (ODIN), ID positive."""
    y, s = _labels_scores(id_scores, ood_scores)
    fprs, tprs, _ = roc_curve(y, s, drop_intermediate=False)
    return 100.0 * float(np.min(0.5 * (1 - tprs) + 0.5 * fprs))


def det_err95(id_scores, ood_scores) -> float:
    """Paper 001's detection error at the threshold where TPR (ID accepted) reaches 95%."""
    fpr, tpr = fpr_at_tpr(np.asarray(id_scores, float), np.asarray(ood_scores, float), 0.95)
    return 100.0 * (0.5 * (1 - tpr) + 0.5 * fpr)


def ood_metrics(id_scores, ood_scores) -> dict[str, float]:
    """Every ID-vs-OOD metric of SPEC.md in one dict."""
    fpr95 = fpr_at(id_scores, ood_scores, 0.95)
    de = det_err(id_scores, ood_scores)
    return {
        "auroc": auroc(id_scores, ood_scores),
        "aupr_in": aupr_in(id_scores, ood_scores),
        "aupr_out": aupr_out(id_scores, ood_scores),
        "fpr95": fpr95,
        "tnr95": 100.0 - fpr95,
        "fpr95_oodpos": fpr95_oodpos(id_scores, ood_scores),
        "fpr80": fpr_at(id_scores, ood_scores, 0.80),
        "det_err": de,
        "det_acc": 100.0 - de,
        "det_err95": det_err95(id_scores, ood_scores),
    }


def accuracy(logits, labels) -> float:
    pred = np.asarray(logits).argmax(axis=1)
    return 100.0 * float(np.mean(pred == np.asarray(labels)))


def misclassification_metrics(scores, correct) -> dict[str, float]:
    """Paper 004 EXP-1 on ID test: errors are the positive class for ``auroc_err``/``aupr_err``."""
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if correct.all() or not correct.any():
        raise ValueError("misclassification metrics need both correct and wrong predictions")
    return {
        "auroc_err": 100.0 * roc_auc_score(~correct, -scores),
        "aupr_succ": 100.0 * average_precision_score(correct, scores),
        "aupr_err": 100.0 * average_precision_score(~correct, -scores),
    }


#: What each metric key means (table headers and docs); FPR conventions named explicitly.
METRIC_LABELS = {
    "auroc": "AUROC",
    "aupr_in": "AUPR-In",
    "aupr_out": "AUPR-Out",
    "fpr95": "FPR95 (ID+)",
    "tnr95": "TNR95 (ID+)",
    "fpr95_oodpos": "FPR95 (OOD+)",
    "fpr80": "FPR80 (ID+)",
    "det_err": "DetErr",
    "det_acc": "DetAcc",
    "det_err95": "DetErr95",
    "id_acc": "ID acc",
    "id_acc_shifted": "ID acc (csID)",
}
