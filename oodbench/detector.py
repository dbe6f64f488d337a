"""The detector API every built-in and third-party detector implements.

scikit-learn's estimator contract (``sklearn.base.BaseEstimator``): ``__init__`` only stores
its keyword parameters; ``fit(train)`` learns state in attributes ending with ``_`` and returns
``self``; ``score_samples(data)`` returns one float per sample, **higher = more
in-distribution** (SPEC.md); ``get_params``/``set_params``/``clone`` come for free.

``train`` and ``data`` are :class:`oodbench.features.FeatureView` objects: a detector asks
them for the layers it needs (``data.features(["logits"])``), for input batches when it needs
gradients (``data.batches()``), and for the model (``data.model``). The runner extracts the
union of all detectors' :meth:`Detector.required_layers` once and every detector reuses it.

Tuning: :meth:`search_space` returns the grid (SPEC.md's where it names one). Grid parameters
must act at score time only (changing them needs no refit), so the tuner scores every grid
point on the cached features of one fitted detector.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .errors import DetectorError
from .features import FeatureView


class Detector(BaseEstimator):
    """Base class for OOD detectors (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    #: "tnr95" (paper 003 / Lee et al. code) or "auroc" (OpenOOD-style search)
    criterion: ClassVar[str] = "tnr95"
    #: grid parameters that change fitted state (the tuner refits for each value); all others act at score time
    fit_params: ClassVar[frozenset[str]] = frozenset()
    #: False for stochastic detectors (MC Dropout): a sample's score may depend on its batch
    deterministic: ClassVar[bool] = True

    def required_layers(self, model) -> list[str]:
        """Feature layers this detector reads (the runner extracts their union once)."""
        return ["logits"]

    def fit(self, train: FeatureView) -> Detector:
        """Learn from ID training data. Detectors without state just mark themselves fitted."""
        self.fitted_ = True
        return self

    def score_samples(self, data: FeatureView) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def search_space(self) -> dict[str, list[Any]]:
        """Hyperparameter grid for ``--tune oracle|heldout`` (empty: nothing to tune)."""
        return {}

    def tuned_copy(self, **params: Any) -> Detector:
        """A shallow copy sharing fitted state, with score-time parameters changed."""
        other = copy.copy(self)
        other.set_params(**params)
        return other

    def describe_fit(self) -> dict[str, Any]:
        """Extra facts for the result record (chosen layers, ensemble weights, …)."""
        return {}

    def check_fitted(self) -> None:
        """Raise ``NotFittedError`` unless ``fit`` has set a learned (trailing-underscore) attribute."""
        check_is_fitted(self)


class LayerwiseDetector(Detector):
    """A detector with one score per feature layer, combined into one.

    Subclasses implement :meth:`layer_scores` (N×K, each column higher = more ID) and set
    ``layers_`` in ``fit``. Without OOD data (``--tune none``) the score is the deepest layer's
    alone (no weights can be learned without OOD samples; paper 003 Fig. 2 and Lee et al.'s
    single-layer baselines use the last layers). After :meth:`fit_ensemble` it is the
    logistic-regression layer ensemble of Lee et al. 2018 / paper 003 (SPEC.md).
    """

    def layer_names(self, model) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def required_layers(self, model) -> list[str]:
        return self.layer_names(model)

    def layer_scores(self, data: FeatureView) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit_ensemble(self, id_data: FeatureView, ood_data: FeatureView, seed: int = 0) -> LayerwiseDetector:
        """Fit the logistic-regression layer weights on ID (label 1) vs OOD (label 0) samples."""
        from .ensemble import LayerEnsemble

        scores = np.concatenate([self.layer_scores(id_data), self.layer_scores(ood_data)])
        y = np.r_[np.ones(len(id_data)), np.zeros(len(ood_data))]
        self.ensemble_ = LayerEnsemble(seed=seed).fit(scores, y)
        return self

    def combine(self, scores: np.ndarray) -> np.ndarray:
        ensemble = getattr(self, "ensemble_", None)
        if ensemble is not None:
            return ensemble.decision_function(scores)
        return scores[:, -1]

    def score_samples(self, data: FeatureView) -> np.ndarray:
        return self.combine(self.layer_scores(data))

    def describe_fit(self) -> dict[str, Any]:
        layers = list(getattr(self, "layers_", []))
        facts: dict[str, Any] = {"layers": layers}
        ensemble = getattr(self, "ensemble_", None)
        if ensemble is not None:
            facts["ensemble"] = ensemble.describe(layers)
        else:
            facts["combination"] = f"deepest layer only ({layers[-1] if layers else '?'}); no OOD data to weight layers"
        return facts


def validate_scores(detector: Detector, scores: Any, n: int) -> np.ndarray:
    """Scores must be a finite float vector of length n (SPEC.md: NaN/inf is an error)."""
    arr = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    if arr.shape != (n,):
        raise DetectorError(f"detector {detector.name!r} returned scores of shape {arr.shape}, expected ({n},)")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DetectorError(f"detector {detector.name!r} produced {int(bad.sum())} non-finite scores (NaN/inf)")
    return arr
