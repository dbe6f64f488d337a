"""oodbench: a plugin-based harness for out-of-distribution detection on image classifiers.

This module is the public face (as ``pytest`` is pytest's): what a plugin author imports::

    from oodbench import hookimpl, Detector, LayerwiseDetector, Needs, Supplies
    from oodbench import Dataset, ImageSet, Backbone, BackboneFactory, UsageError, registries

The implementation lives in subpackages that are the pipeline's stages, lowest first: ``core`` (errors,
progress, atomic writes, config files) · ``data`` and ``records`` · ``models`` · ``plugins`` (the extension
API) · ``pipeline`` (plan → supply → evaluate) and ``report`` · ``suites`` · ``cli``. A lower one never
imports a higher one (``tests/test_shape.py``). Module paths from before that layout still import, with a
``DeprecationWarning``, for one release (:mod:`oodbench._compat`).

Heavy modules (torch) load on first use of these names, so ``oodbench --help`` stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import pluggy

from oodbench import _compat

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("oodbench")

_LAZY = {
    "Detector": "plugins.detector",
    "LayerwiseDetector": "plugins.detector",
    "Needs": "plugins.detector",
    "Supplies": "plugins.detector",
    "state_key": "plugins.detector",
    "registries": "plugins.manager",
    "Interval": "plugins.constraints",
    "Options": "plugins.constraints",
    "ModelProvider": "models.provider",
    "TrainedModel": "models.provider",
    "TrainTask": "models.train",
    "TrainConfig": "models.train",
    "Backbone": "models.backbones",
    "BackboneFactory": "models.backbones",
    "FeatureView": "models.features",
    "Record": "records.record",
    "Dataset": "data.imageset",
    "ImageSet": "data.imageset",
    "LoadContext": "data.imageset",
    "missing": "data.imageset",
    "require_split": "data.imageset",
    "OodbenchError": "core.errors",
    "UsageError": "core.errors",
    "DataNotFoundError": "core.errors",
    "evaluate": "api.evaluator",
    "Evaluation": "api.evaluator",
    "run": "pipeline.runner",
    "RunRequest": "pipeline.runner",
}

__all__ = ["hookimpl", "__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from oodbench.api.evaluator import Evaluation, evaluate
    from oodbench.core.errors import DataNotFoundError, OodbenchError, UsageError
    from oodbench.data.imageset import Dataset, ImageSet, LoadContext, missing, require_split
    from oodbench.models.backbones import Backbone, BackboneFactory
    from oodbench.models.features import FeatureView
    from oodbench.models.provider import ModelProvider, TrainedModel
    from oodbench.models.train import TrainConfig, TrainTask
    from oodbench.pipeline.runner import RunRequest, run
    from oodbench.plugins.constraints import Interval, Options
    from oodbench.plugins.detector import Detector, LayerwiseDetector, Needs, Supplies, state_key
    from oodbench.plugins.manager import registries
    from oodbench.records.record import Record

_compat.install()


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"oodbench.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'oodbench' has no attribute {name!r}")
