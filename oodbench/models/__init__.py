"""Models (stage 2's machinery): backbones and their feature layers, the one trainer, cached checkpoints,
pretrained weights, feature extraction (:class:`FeatureView`) and input pre-processing. Imports
:mod:`oodbench.data` and :mod:`oodbench.core`.

``from oodbench.models import ModelProvider, TrainedModel`` keeps working (lazily, from :mod:`.provider`)."""

from __future__ import annotations

import importlib

_PUBLIC = {"ModelProvider": ".provider", "TrainedModel": ".provider"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """The stage's public names, imported on first use (torch loads only when needed)."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
