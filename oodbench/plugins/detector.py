"""The detector API every built-in and third-party detector implements.

scikit-learn's estimator contract (``sklearn.base.BaseEstimator``): ``__init__`` only stores
its keyword parameters; ``fit(train)`` learns state in attributes ending with ``_`` and returns
``self``; ``score_samples(data)`` returns one float per sample, **higher = more
in-distribution** (SPEC.md), as a 1-D tensor (on the features' device: the pipeline moves it to the
CPU for the metrics) or a numpy array; ``get_params``/``set_params``/``clone`` come for free.

``train`` and ``data`` are :class:`oodbench.models.features.FeatureView` objects: a detector asks
them for the layers it needs (``data.features(["logits"])``, tensors on the model's device: compute
there and return the scores as a tensor), for input batches when it needs
gradients (``data.batches()``), and for the model (``data.model``). The runner extracts the
union of all detectors' :meth:`Detector.required_layers` once and every detector reuses it.

Tuning: :meth:`search_space` returns the grid (SPEC.md's where it names one). Grid parameters
must act at score time only (changing them needs no refit), so the tuner scores every grid
point on the cached features of one fitted detector.

What a detector needs beyond features is *declared* in :attr:`Detector.needs` (a :class:`Needs`):
the pipeline reads it to supply a model provider and training-time outliers (:class:`Supplies`,
the second argument of ``fit``), to save embeddings and to relax the batch-independence check.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from oodbench.core.errors import DetectorError
from oodbench.models.features import FeatureView

if TYPE_CHECKING:  # pragma: no cover
    from oodbench.data.imageset import ImageSet
    from oodbench.models.provider import ModelProvider


@dataclass(frozen=True)
class Needs:
    """What a detector needs besides the backbone's features (read by the pipeline, never probed).

    - ``trains``: it trains (or loads) its own networks through ``supplies.models`` in ``fit``.
    - ``outliers``: training-time outliers — ``"none"``, ``"optional"`` (used when the protocol has
      them: the novelty ``seen:`` classes or ``--train-out``), or ``"required"`` (the run fails in one line
      unless they exist or :meth:`Detector.default_outliers` names a dataset).
    - ``embedding``: it implements ``embed(data) -> N×d array`` (saved beside the scores for plots).
    - ``stochastic``: a sample's score may depend on its batch or on random draws (MC Dropout).
    - ``fits_on``: ``"train"`` (ID train, the default) or ``"validation"``: ``fit`` sees the ID validation split
      instead — the ID test samples held out for tuning (SPEC.md "Splits"), never evaluated and never seen by a
      backbone oodbench trains — as calibration needs data the classifier did not fit (Guo et al. 2017 §4.2;
      OpenOOD fits its calibration-style postprocessors on its ID val split).
    - ``gradients``: ``"inputs"`` if it back-propagates to the input images (ODIN-style pre-processing, at least in
      its grid), ``"network"`` if it needs gradients of its score with respect to the network's weights or
      activations (computed or in closed form from the head); ``"none"``: forward passes only. Shown by
      ``oodbench list detectors`` so a user can tell which methods suit a model that cannot back-propagate.
    - ``feature_maps``: it reads un-pooled feature maps through ``data.model`` itself (Gram's per-channel statistics),
      beyond the pooled layers :meth:`Detector.required_layers` declares.

    The feature layers it reads are declared by :meth:`Detector.required_layers` (they depend on the model).
    """

    trains: bool = False
    outliers: Literal["none", "optional", "required"] = "none"
    embedding: bool = False
    stochastic: bool = False
    fits_on: Literal["train", "validation"] = "train"
    gradients: Literal["none", "network", "inputs"] = "none"
    feature_maps: bool = False

    @property
    def supplies(self) -> bool:
        """Whether ``fit`` takes a :class:`Supplies` as its second argument."""
        return self.trains or self.outliers != "none"


@dataclass(frozen=True)
class Supplies:
    """What the pipeline hands to ``fit(train, supplies)`` of a detector whose :class:`Needs` ask for it."""

    models: ModelProvider  # builds, trains through the one trainer, caches and loads networks
    outliers: ImageSet | None = None  # training-time outliers (when needs.outliers is not "none")
    seed: int = 0


def state_key(*tensors: torch.Tensor) -> str:
    """A content key for fitted state (memo keys that stay valid whatever object holds the tensors)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


_LEGACY = ("needs_outliers", "uses_outliers", "deterministic")


def _legacy_needs(cls: type) -> Needs | None:
    """Needs from the pre-0.2 class attributes (``needs_outliers``, ``uses_outliers``, ``deterministic``)."""
    found = {k: cls.__dict__[k] for k in _LEGACY if k in cls.__dict__}
    if not found or "needs" in cls.__dict__:
        return None
    warnings.warn(
        f"detector {cls.__name__}: class attributes {sorted(found)} are deprecated; declare "
        "`needs = oodbench.Needs(...)` instead (removed in 0.3)",
        DeprecationWarning,
        stacklevel=3,
    )
    base: Needs = cls.needs  # type: ignore[attr-defined]
    outliers = base.outliers
    if found.get("needs_outliers"):
        outliers = "required"
    elif found.get("uses_outliers"):
        outliers = "optional"
    stochastic = not found["deterministic"] if "deterministic" in found else base.stochastic
    return Needs(base.trains or outliers != "none", outliers, base.embedding, stochastic)


class Detector(BaseEstimator):
    """Base class for OOD detectors (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    #: "tnr95" (paper 003 / Lee et al. code) or "auroc" (OpenOOD-style search)
    criterion: ClassVar[str] = "tnr95"
    #: grid parameters that change fitted state (the tuner refits for each value); all others act at score time
    fit_params: ClassVar[frozenset[str]] = frozenset()
    #: what the detector needs besides features (see :class:`Needs`)
    needs: ClassVar[Needs] = Needs()
    #: types and ranges of its parameters beyond :data:`oodbench.plugins.constraints.COMMON` (checked before any
    #: data is read), e.g. ``{"variant": [Options("s", "p", "b")], "k": [Interval(int, 1)]}``
    parameter_constraints: ClassVar[dict[str, list]] = {}
    #: named search spaces a run can pick with ``--grid NAME`` (e.g. a paper's own grid); :meth:`search_space` is
    #: the default one. The record says which grid was used (``tuning.grid``).
    grids: ClassVar[dict[str, dict[str, list[Any]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        legacy = _legacy_needs(cls)
        if legacy is not None:
            cls.needs = legacy

    @property
    def deterministic(self) -> bool:
        """Deprecated spelling of ``not needs.stochastic``."""
        return not self.needs.stochastic

    def required_layers(self, model) -> list[str]:
        """Feature layers this detector reads (the runner extracts their union once)."""
        return ["logits"]

    def default_outliers(self, shape: tuple[int, int, int]) -> str | None:
        """Dataset to train with when ``needs.outliers == "required"`` and the run names none (or None)."""
        return None

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> Detector:
        """Learn from ID training data (``supplies`` only when :attr:`needs` asks for it).
        Detectors without state just mark themselves fitted."""
        self.fitted_ = True
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor | np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def search_space(self) -> dict[str, list[Any]]:
        """Hyperparameter grid for ``--tune oracle|heldout`` (empty: nothing to tune)."""
        return {}

    def named_search_space(self, grid: str | None) -> dict[str, list[Any]]:
        """The grid ``--grid NAME`` asks for (:attr:`grids`), else :meth:`search_space`."""
        return dict(self.grids[grid]) if grid in self.grids else self.search_space()

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

    Subclasses implement :meth:`layer_scores` (an N×K tensor, each column higher = more ID) and set
    ``layers_`` in ``fit``. Without OOD data (``--tune none``) the score is the deepest layer's
    alone (no weights can be learned without OOD samples; paper 003 Fig. 2 and Lee et al.'s
    single-layer baselines use the last layers). After :meth:`fit_ensemble` it is the
    logistic-regression layer ensemble of Lee et al. 2018 / paper 003 (SPEC.md). One layer is
    no ensemble: its score is used as is, with no regression and no sign learned from OOD labels.
    """

    def layer_names(self, model) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def required_layers(self, model) -> list[str]:
        return self.layer_names(model)

    def layer_scores(self, data: FeatureView) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def combines_layers(self) -> bool:
        """Whether the fitted detector has more than one layer to weight (one layer: no ensemble)."""
        self.check_fitted()
        return len(self.layers_) > 1

    def fit_ensemble(self, id_data: FeatureView, ood_data: FeatureView, seed: int = 0) -> LayerwiseDetector:
        """Fit the logistic-regression layer weights on ID (label 1) vs OOD (label 0) samples
        (with one layer there is nothing to weight: no regression is fitted)."""
        from oodbench.plugins.ensemble import LayerEnsemble

        if not self.combines_layers():
            self.ensemble_ = None
            return self
        scores = np.concatenate([_host(self.layer_scores(id_data)), _host(self.layer_scores(ood_data))])
        y = np.r_[np.ones(len(id_data)), np.zeros(len(ood_data))]
        self.ensemble_ = LayerEnsemble(seed=seed).fit(scores, y)
        return self

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        """The fitted ensemble's decision function, or the deepest layer's column, where the scores are."""
        ensemble = getattr(self, "ensemble_", None)
        if ensemble is not None:
            return ensemble.decision_function(scores)
        return scores[:, -1]

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        return self.combine(self.layer_scores(data))

    def describe_fit(self) -> dict[str, Any]:
        layers = list(getattr(self, "layers_", []))
        facts: dict[str, Any] = {"layers": layers}
        ensemble = getattr(self, "ensemble_", None)
        if ensemble is not None:
            facts["ensemble"] = ensemble.describe(layers)
        elif len(layers) == 1:
            facts["combination"] = f"one layer ({layers[0]}): its score as is; no ensemble fitted"
        else:
            facts["combination"] = f"deepest layer only ({layers[-1] if layers else '?'}); no OOD data to weight layers"
        return facts


def _host(scores: torch.Tensor | np.ndarray) -> np.ndarray:
    """Scores as a float64 numpy array on the CPU (for scikit-learn and the metrics)."""
    if isinstance(scores, torch.Tensor):
        return scores.detach().double().cpu().numpy()
    return np.asarray(scores, dtype=np.float64)


def fit_detector(detector: Detector, train: FeatureView, supplies: Supplies | None) -> Detector:
    """``fit`` as the detector's :class:`Needs` declare it: with supplies only when it asks for them."""
    if detector.needs.supplies:
        if supplies is None:
            raise DetectorError(f"detector {detector.name!r} trains its own networks: run it through the pipeline")
        return detector.fit(train, supplies)
    return detector.fit(train)


def validate_scores(detector: Detector, scores: Any, n: int) -> np.ndarray:
    """Scores must be a finite float vector of length n (SPEC.md: NaN/inf is an error)."""
    arr = _host(scores)
    if arr.shape != (n,):
        raise DetectorError(f"detector {detector.name!r} returned scores of shape {arr.shape}, expected ({n},)")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DetectorError(f"detector {detector.name!r} produced {int(bad.sum())} non-finite scores (NaN/inf)")
    return arr
