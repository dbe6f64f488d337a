"""oodbench: a plugin-based harness for out-of-distribution detection on image classifiers.

What a plugin author imports::

    from oodbench import hookimpl, Detector, LayerwiseDetector, Needs, Supplies
    from oodbench import Dataset, ImageSet, Backbone, BackboneFactory

Heavy modules (torch) load on first use of these names, so ``oodbench --help`` stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("oodbench")

_LAZY = {
    "Detector": "detector",
    "LayerwiseDetector": "detector",
    "Needs": "detector",
    "Supplies": "detector",
    "ModelProvider": "models",
    "TrainTask": "train",
    "Record": "record",
    "Dataset": "data",
    "ImageSet": "data",
    "LoadContext": "data",
    "Backbone": "backbones",
    "BackboneFactory": "backbones",
    "FeatureView": "features",
    "TrainConfig": "train",
    "run": "runner",
    "RunRequest": "runner",
}

__all__ = ["hookimpl", "__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from .backbones import Backbone, BackboneFactory
    from .data import Dataset, ImageSet, LoadContext
    from .detector import Detector, LayerwiseDetector, Needs, Supplies
    from .features import FeatureView
    from .models import ModelProvider
    from .record import Record
    from .runner import RunRequest, run
    from .train import TrainConfig, TrainTask


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'oodbench' has no attribute {name!r}")
