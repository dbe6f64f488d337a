"""Pictures for the HTML report (:mod:`oodbench.report.html`), embedded as base64 PNG data URIs.

- :func:`pair_figure`: per (protocol, ID, OOD) pair, the ROC curves of its detectors (positives: the
  ID samples, as SPEC.md's AUROC) and one ID-vs-OOD score histogram per detector (paper 003 Fig. 1),
  from the per-sample scores saved beside each record.
- :func:`corruption_figure`: AUROC against severity per corruption type (paper 003 Fig. 4), drawn by
  :func:`oodbench.report.plots.corruption_curves`.

matplotlib is optional (the ``plot`` extra): without it the first picture raises a one-line
:class:`~oodbench.core.errors.UsageError`, as ``oodbench plot`` does.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oodbench.records.record import Record
from oodbench.report.plots import _grid, _pyplot, corruption_curves
from oodbench.report.tables import label


@dataclass(frozen=True)
class Curve:
    """One record's scores split into positives (ID, or right predictions) and negatives (OOD, or errors)."""

    name: str
    pos: np.ndarray
    neg: np.ndarray
    pos_label: str
    neg_label: str


def curve_of(record: Record, scores: dict[str, Any] | None, seeds: int = 1) -> Curve | None:
    """The two score sets of a record: ID vs OOD, or for misclassification (paper 004 EXP-1) the ID test
    set's right vs wrong predictions. None when no scores were saved (or one side is empty)."""
    if scores is None or "id" not in scores:
        return None
    name = label(record) + (f" s{record.seed}" if seeds > 1 else "")
    if "ood" in scores:
        pos, neg, labels = scores["id"], scores["ood"], (f"ID {record.id}", f"OOD {record.ood}")
    elif "correct" in scores:
        right = scores["correct"].astype(bool)
        pos, neg, labels = scores["id"][right], scores["id"][~right], ("right", "wrong")
    else:
        return None
    pos, neg = np.asarray(pos, dtype=np.float64).ravel(), np.asarray(neg, dtype=np.float64).ravel()
    return Curve(name, pos, neg, *labels) if pos.size and neg.size else None


def png_uri(plt, fig, dpi: int = 80) -> str:
    """The figure as a ``data:image/png;base64,…`` URI (closed afterwards)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pair_figure(curves: Sequence[Curve], title: str, bins: int = 50) -> str:
    """ROC curves of every detector of one pair in the first panel, then one histogram panel per detector."""
    from sklearn.metrics import auc, roc_curve

    plt = _pyplot()
    fig, axes = _grid(plt, len(curves) + 1, (3.4, 2.7), cols=4)
    roc, colours = axes.flat[0], plt.get_cmap("tab20" if len(curves) > 10 else "tab10")
    for i, c in enumerate(curves):
        y = np.r_[np.ones(c.pos.size), np.zeros(c.neg.size)]
        fpr, tpr, _ = roc_curve(y, np.r_[c.pos, c.neg])
        roc.plot(fpr, tpr, lw=1.2, color=colours(i % colours.N), label=f"{c.name} ({100 * auc(fpr, tpr):.1f})")
    roc.plot([0, 1], [0, 1], ls=":", lw=0.8, color="0.5")
    roc.set(xlabel=f"FPR ({curves[0].neg_label} accepted)", ylabel=f"TPR ({curves[0].pos_label} accepted)")
    roc.set_title(f"ROC — {title}", fontsize=8)
    roc.legend(fontsize=6, loc="lower right")
    for ax, c in zip(list(axes.flat)[1:], curves):
        lo, hi = float(min(c.pos.min(), c.neg.min())), float(max(c.pos.max(), c.neg.max()))
        span = (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
        ax.hist(c.pos, bins=bins, range=span, alpha=0.6, density=True, label=c.pos_label)
        ax.hist(c.neg, bins=bins, range=span, alpha=0.6, density=True, label=c.neg_label)
        ax.set_title(c.name, fontsize=8)
        ax.set_xlabel("score (higher = more in-distribution)", fontsize=7)
        ax.legend(fontsize=6)
    for ax in axes.flat:
        ax.tick_params(labelsize=6)
    return png_uri(plt, fig)


def corruption_figure(records: Sequence[Record]) -> str:
    """:func:`oodbench.report.plots.corruption_curves` of the sweep records, as a data URI."""
    buf = io.BytesIO()
    corruption_curves(list(records), buf)  # savefig takes a file object as well as a path
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
