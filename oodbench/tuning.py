"""Hyperparameter selection on the tuning set (SPEC.md "Splits", paper 003 / Lee et al. 2018).

The tuning set is 1,000 ID-test + 1,000 OOD samples removed from evaluation. For a layer-wise
detector one half (500 + 500) fits the logistic-regression layer weights and the other half
selects the grid point; the chosen configuration is then fitted once more on the whole tuning
set. A detector without layers selects its grid point on the whole tuning set. Every grid
point reuses the features cached in the views (no re-extraction).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.base import clone

from .detector import Detector, LayerwiseDetector, Supplies, fit_detector, validate_scores
from .features import FeatureView
from .metrics import auroc, fpr_at


@dataclass
class TuneResult:
    params: dict[str, Any]
    criterion: str
    value: float | None
    grid_size: int
    ood_source: str
    trials: list[dict[str, Any]] = field(default_factory=list)


def grid_points(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(space)
    return [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))] or [{}]


def criterion_value(name: str, id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    if name == "tnr95":
        return 100.0 - fpr_at(id_scores, ood_scores, 0.95)
    if name == "auroc":
        return auroc(id_scores, ood_scores)
    raise ValueError(f"unknown selection criterion {name!r}")


def halves(view: FeatureView, seed: int) -> tuple[FeatureView, FeatureView]:
    """(regression half, selection half), memoised on the view: the ID tuning set is shared by every
    OOD set of an oracle run, so its halves — and what detectors memoise on them (gradient signs,
    perturbed features) — are built once."""

    def split() -> tuple[FeatureView, FeatureView]:
        perm = torch.randperm(len(view), generator=torch.Generator().manual_seed(seed))
        mid = len(view) // 2
        return view.subset(perm[:mid].sort().values), view.subset(perm[mid:].sort().values)

    return view.memo(("halves", seed), split)


def tune(
    detector: Detector,
    id_tune: FeatureView,
    ood_tune: FeatureView,
    ood_source: str,
    seed: int = 0,
    train: FeatureView | None = None,
    supplies: Supplies | None = None,
) -> tuple[Detector, TuneResult]:
    """Select ``detector``'s hyperparameters (and layer weights) on the tuning set.

    Grid parameters listed in ``detector.fit_params`` change fitted state: for those the detector
    is cloned and refitted on ``train`` once per distinct value (and cached across grid points), with the
    run's ``supplies`` for detectors that train (MC Dropout's rate: one dropout backbone per value).
    """
    points = grid_points(detector.search_space())
    layerwise = isinstance(detector, LayerwiseDetector)
    crit = detector.criterion
    fit_keys = set(detector.fit_params)
    refitted: dict[tuple, Detector] = {}

    def candidate(point: dict[str, Any]) -> Detector:
        fit_part = {k: v for k, v in point.items() if k in fit_keys}
        base = detector
        if fit_part:
            key = tuple(sorted(fit_part.items()))
            if key not in refitted:
                if train is None:
                    raise ValueError(f"{detector.name}: tuning {sorted(fit_part)} needs the training view")
                refitted[key] = fit_detector(clone(detector).set_params(**fit_part), train, supplies)
            base = refitted[key]
        return base.tuned_copy(**{k: v for k, v in point.items() if k not in fit_keys})

    if len(points) == 1 and not layerwise:
        return candidate(points[0]), TuneResult(points[0], crit, None, 1, ood_source)
    if layerwise:
        reg_id, sel_id = halves(id_tune, seed)
        reg_ood, sel_ood = halves(ood_tune, seed + 1)
    else:
        sel_id, sel_ood = id_tune, ood_tune
    trials = []
    best: tuple[float, float, int] | None = None
    for i, point in enumerate(points):
        cand = candidate(point)
        if layerwise:
            cand.fit_ensemble(reg_id, reg_ood, seed=seed)
        s_id = validate_scores(cand, cand.score_samples(sel_id), len(sel_id))
        s_ood = validate_scores(cand, cand.score_samples(sel_ood), len(sel_ood))
        value, tie_break = criterion_value(crit, s_id, s_ood), auroc(s_id, s_ood)
        trials.append({**point, crit: value, "auroc": tie_break})
        if best is None or (value, tie_break) > best[:2]:
            best = (value, tie_break, i)
    assert best is not None
    chosen = points[best[2]]
    final = candidate(chosen)
    if layerwise:
        final.fit_ensemble(id_tune, ood_tune, seed=seed)
    return final, TuneResult(chosen, crit, best[0], len(points), ood_source, trials)
