"""The tuning grid comes from scikit-learn's ParameterGrid, and the chosen point does not depend on
the order in which the grid lists its values or parameters (ties go to the canonical smallest point)."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from sklearn.model_selection import ParameterGrid

from oodbench import Detector
from oodbench.pipeline.tuning import best_point, canonical_key, grid_points, tune
from oodbench.plugins.testing import tiny_views

SPACE = {"t": [1, 10, 100, 1000], "eps": [0.0, 0.05, 0.1], "mode": [None, "fast", 2.5]}


class _Graded(Detector):
    """Scores that separate ID from OOD perfectly when ``grade(point)`` is 0, worse as it grows."""

    name = "graded"
    criterion = "tnr95"

    def __init__(self, t=1, eps=0.0, mode=None):
        self.t, self.eps, self.mode = t, eps, mode

    space = SPACE

    def grade(self) -> int:  # overridden per test
        raise NotImplementedError

    def search_space(self):
        return self.space

    def score_samples(self, data):
        n = len(data)
        base = np.arange(n, dtype=np.float64)
        if bool((data.labels >= 0).all()):  # ID
            return base + n
        return base + n * (1 - 1 / (1 + self.grade()))  # grade 0: all below ID; larger: more overlap


def _choose(cls, space):
    _, id_test, ood_test = tiny_views(n_train=16, n_test=64)
    det = type("Case", (cls,), {"space": space})().fit(None)
    _, result = tune(det, id_test, ood_test, "noise")
    return result


def _shuffled_spaces(space, n=6, seed=0):
    """The same grid with its value lists and its parameters listed in other orders."""
    rng = random.Random(seed)
    yield {k: list(reversed(v)) for k, v in reversed(space.items())}
    for _ in range(n):
        keys = list(space)
        rng.shuffle(keys)
        yield {k: rng.sample(space[k], len(space[k])) for k in keys}


def test_grid_points_are_scikit_learns_parameter_grid():
    points = grid_points(SPACE)
    assert points == list(ParameterGrid(SPACE))
    assert len(points) == math.prod(len(v) for v in SPACE.values()) == len(list(itertools.product(*SPACE.values())))
    assert {tuple(sorted(p.items(), key=str)) for p in points} == {
        tuple(sorted(zip(SPACE, values), key=str)) for values in itertools.product(*SPACE.values())
    }
    assert grid_points({}) == [{}]


def test_ties_go_to_the_canonical_point_whatever_the_grid_order():
    class Ties(_Graded):
        def grade(self):  # perfect for every t >= 10 with eps 0.05 or 0.1 and a numeric or absent mode
            return 0 if self.t >= 10 and self.eps > 0 and not isinstance(self.mode, str) else 3

    reference = _choose(Ties, SPACE)
    assert reference.value == 100.0
    top = [t for t in reference.trials if t["tnr95"] == 100.0]
    assert len(top) == 3 * 2 * 2  # a real tie
    # smallest by parameter name: eps, then mode (None before numbers), then t
    assert reference.params == {"eps": 0.05, "mode": None, "t": 10}
    for space in _shuffled_spaces(SPACE):
        assert _choose(Ties, space).params == reference.params


def test_without_ties_the_best_point_wins_wherever_it_is_listed():
    class One(_Graded):
        def grade(self):
            return abs(math.log10(self.t) - 3) + abs(self.eps - 0.1) * 10 + (0 if self.mode == "fast" else 1)

    for space in [SPACE, *_shuffled_spaces(SPACE, n=3)]:
        result = _choose(One, space)
        assert result.params == {"eps": 0.1, "mode": "fast", "t": 1000}
        assert result.value == max(t["tnr95"] for t in result.trials)


def test_an_ascending_one_parameter_grid_keeps_its_first_tied_value():
    """The builtins' grids (T, epsilon, percentiles, …) list values ascending: on ties the choice is
    the first of them, as it was when the first listed point won."""
    points = [{"temperature": t} for t in [1, 10, 100, 1000]]
    assert best_point(points, [(90.0, 0.9), (95.0, 0.97), (95.0, 0.97), (95.0, 0.97)]) == 1
    points = [{"epsilon": round(0.01 * i, 2)} for i in range(21)]
    assert best_point(points, [(80.0, 0.9)] * 21) == 0
    points = [{"dropout": d, "statistic": s} for d in [0.1, 0.3, 0.5] for s in ["mean", "variance"]]
    assert points[best_point(points, [(1.0, 1.0)] * len(points))] == {"dropout": 0.1, "statistic": "mean"}


def test_the_auroc_breaks_criterion_ties_and_nan_ranks_last():
    points = [{"k": k} for k in [1, 2, 3]]
    assert best_point(points, [(90.0, 0.91), (90.0, 0.95), (90.0, 0.93)]) == 1
    assert best_point(points, [(math.nan, 0.99), (10.0, 0.5), (math.nan, 0.99)]) == 1


def test_canonical_order_handles_mixed_types():
    values = ["b", 2, None, 0.5, "a", (1, 2), True]
    ordered = sorted(values, key=lambda v: canonical_key({"x": v}))
    assert ordered[:5] == [None, 0.5, True, 2, "a"]
    assert ordered[5:] == ["b", (1, 2)]
    with pytest.raises(ValueError, match="non-empty"):
        grid_points({"x": []})


def test_named_grids_are_chosen_recorded_and_checked(tmp_path):
    """Issue 28: ``--grid lee2018`` tunes ODIN on Lee et al.'s grid (11 ε × 4 T) and says so in the record, its
    identity and its table label; a detector without named grids keeps its own; a name no detector has, or a grid
    without tuning, is one line."""
    from oodbench_builtins.detectors._common import LEE2018_ODIN_EPSILONS

    from oodbench.core.errors import UsageError
    from oodbench.pipeline.runner import RunRequest, run
    from oodbench.report.tables import label

    small = dict(oods=["mnist"], epochs=1, train_limit=2000, test_limit=400, n_tune=100, results=str(tmp_path))
    recs = {
        r.detector: r for r in run(RunRequest(["odin", "knn"], "fashionmnist", tune="oracle", grid="lee2018", **small))
    }
    odin = recs["odin"]
    assert odin.tuning["grid"] == "lee2018" and odin.tuning["grid_size"] == 44
    assert odin.tuning["chosen"]["epsilon"] in LEE2018_ODIN_EPSILONS
    assert odin.config["grid"] == "lee2018" and label(odin) == "odin [grid lee2018]"
    assert recs["knn"].tuning["grid"] == "default" and recs["knn"].tuning["grid_size"] == 8
    (default,) = run(RunRequest(["odin"], "fashionmnist", tune="oracle", **small))
    assert default.tuning["grid"] == "default" and default.tuning["grid_size"] == 84
    assert default.record_id != odin.record_id
    with pytest.raises(UsageError, match="no detector of this run has a grid named 'nope'"):
        run(RunRequest(["odin"], "fashionmnist", tune="oracle", grid="nope", **small))
    with pytest.raises(UsageError, match="--grid odin chooses a tuning grid: it needs --tune oracle"):
        run(RunRequest(["odin"], "fashionmnist", grid="odin", **small))
