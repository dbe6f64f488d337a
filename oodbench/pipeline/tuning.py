"""Hyperparameter selection on the tuning set (SPEC.md "Splits", paper 003 / Lee et al. 2018).

The tuning set is 1,000 ID-test + 1,000 OOD samples removed from evaluation. For a layer-wise
detector one half (500 + 500) fits the logistic-regression layer weights and the other half
selects the grid point; the chosen configuration is then fitted once more on the whole tuning
set. A detector without layers, or with one layer (no ensemble), selects its grid point on the
whole tuning set. Every grid point reuses the features cached in the views (no re-extraction).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.base import clone
from sklearn.model_selection import ParameterGrid

from oodbench.models.features import FeatureView
from oodbench.plugins.detector import Detector, LayerwiseDetector, Supplies, fit_detector, validate_scores
from oodbench.records.metrics import auroc, fpr_at


@dataclass
class TuneResult:
    params: dict[str, Any]
    criterion: str
    value: float | None
    grid_size: int
    ood_source: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    protocol: str = ""  # how the tuning set was used (recorded as tuning.protocol)
    grid: str = "default"  # which named grid (``--grid``), or the detector's default search space


LAYERWISE_PROTOCOL = "regression half / selection half, then refit on the whole tuning set"
WHOLE_SET_PROTOCOL = "grid point chosen on the whole tuning set (no layer ensemble)"
SINGLE_POINT_PROTOCOL = "one grid point: nothing chosen"


def grid_points(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``space``'s values (scikit-learn's ParameterGrid: parameters in sorted
    order); ``[{}]`` for an empty space. A parameter with no values is an error."""
    return list(ParameterGrid(space))


def _value_order(value: Any) -> tuple[int, float, str]:
    """A total order over grid values of mixed types: None, numbers (ascending, NaN last), strings,
    then anything else by type name and repr."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, numbers.Real):
        number = float(value)
        return (1, math.inf if math.isnan(number) else number, type(value).__name__)
    if isinstance(value, str):
        return (2, 0.0, value)
    return (3, 0.0, f"{type(value).__name__}:{value!r}")


def canonical_key(point: dict[str, Any]) -> tuple:
    """Orders grid points independently of how the grid lists them: values by parameter name."""
    return tuple((name, _value_order(point[name])) for name in sorted(point))


def best_point(points: list[dict[str, Any]], scores: list[tuple[float, float]]) -> int:
    """Index of the point with the highest (criterion, AUROC); among equal ones the smallest
    :func:`canonical_key` (for an ascending one-parameter grid: the first). NaN ranks lowest."""

    def rank(i: int) -> tuple:
        value, tie_break = (-math.inf if math.isnan(v) else v for v in scores[i])
        return (-value, -tie_break, canonical_key(points[i]))

    return min(range(len(points)), key=rank)


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
    grid: str | None = None,
) -> tuple[Detector, TuneResult]:
    """Select ``detector``'s hyperparameters (and layer weights) on the tuning set.

    Grid parameters listed in ``detector.fit_params`` change fitted state: for those the detector
    is cloned and refitted on ``train`` once per distinct value (and cached across grid points), with the
    run's ``supplies`` for detectors that train (MC Dropout's rate: one dropout backbone per value).
    """
    points = grid_points(detector.named_search_space(grid))
    grid_used = grid if grid in detector.grids else "default"
    layerwise = isinstance(detector, LayerwiseDetector) and detector.combines_layers()
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
        single = TuneResult(points[0], crit, None, 1, ood_source, [], SINGLE_POINT_PROTOCOL, grid_used)
        return candidate(points[0]), single
    if layerwise:
        reg_id, sel_id = halves(id_tune, seed)
        reg_ood, sel_ood = halves(ood_tune, seed + 1)
    else:
        sel_id, sel_ood = id_tune, ood_tune
    trials, scores = [], []
    for point in points:
        cand = candidate(point)
        if layerwise:
            cand.fit_ensemble(reg_id, reg_ood, seed=seed)
        s_id = validate_scores(cand, cand.score_samples(sel_id), len(sel_id))
        s_ood = validate_scores(cand, cand.score_samples(sel_ood), len(sel_ood))
        scores.append((criterion_value(crit, s_id, s_ood), auroc(s_id, s_ood)))
        trials.append({**point, crit: scores[-1][0], "auroc": scores[-1][1]})
    best = best_point(points, scores)
    final = candidate(points[best])
    if layerwise:
        final.fit_ensemble(id_tune, ood_tune, seed=seed)
    how = LAYERWISE_PROTOCOL if layerwise else WHOLE_SET_PROTOCOL
    result = TuneResult(points[best], crit, scores[best][0], len(points), ood_source, trials, how, grid_used)
    return final, result
