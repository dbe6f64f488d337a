"""Models (stage 2's machinery): backbones and their feature layers, the one trainer, cached checkpoints,
pretrained weights, feature extraction (:class:`FeatureView`) and input pre-processing. Imports
:mod:`oodbench.data` and :mod:`oodbench.core`.

``from oodbench.models import ModelProvider, TrainedModel`` keeps working (lazily, from :mod:`.provider`)."""

from __future__ import annotations

from oodbench.core.lazy import lazy_getattr

_PUBLIC = {"ModelProvider": ".provider", "TrainedModel": ".provider"}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())
