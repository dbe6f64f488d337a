"""Module paths from before the stage layout (December 2026), kept importable for one release.

``oodbench.testing``, ``oodbench.errors``, ``oodbench.train`` … were flat modules; they now live in the
stage subpackages. Importing an old path gives the *same* module object as the new path (so attributes,
``isinstance`` and monkeypatching agree) and emits one :class:`DeprecationWarning` naming the new path.
``oodbench.results`` (records, store and tables) was itself a compatibility module: its names resolve
lazily from their homes. Only paths the README or docs/plugins.md named to users are kept; the rest of the
old modules were internals and moved without an alias. ``oodbench.data``, ``oodbench.models``,
``oodbench.plugins``, ``oodbench.report`` and ``oodbench.cli`` are stage packages that re-export their old
names, so they import without a warning.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: old module path → its home now
MOVED = {
    "oodbench.errors": "oodbench.core.errors",
    "oodbench.precision": "oodbench.core.precision",
    "oodbench.detector": "oodbench.plugins.detector",
    "oodbench.testing": "oodbench.plugins.testing",
    "oodbench.hookspecs": "oodbench.plugins.hookspecs",
    "oodbench.features": "oodbench.models.features",
    "oodbench.backbones": "oodbench.models.backbones",
    "oodbench.checkpoints": "oodbench.models.checkpoints",
    "oodbench.train": "oodbench.models.train",
    "oodbench.train_config": "oodbench.models.train_config",
    "oodbench.record": "oodbench.records.record",
    "oodbench.store": "oodbench.records.store",
    "oodbench.metrics": "oodbench.records.metrics",
    "oodbench.tables": "oodbench.report.tables",
    "oodbench.supply": "oodbench.pipeline.supply",
    "oodbench.runner": "oodbench.pipeline.runner",
    "oodbench.protocols": "oodbench.pipeline.protocols",
}

#: ``oodbench.results`` (the old compatibility module): name → the module that defines it now
RESULTS = {
    **dict.fromkeys(("IDENTITY_KEYS", "Record", "identity_hash"), "oodbench.records.record"),
    **dict.fromkeys(
        (
            "RESULTS_ENV",
            "read_record",
            "read_records",
            "record_files",
            "record_path",
            "results_dir",
            "scores_of",
            "write_record",
            "write_scores",
        ),
        "oodbench.records.store",
    ),
    "METRIC_LABELS": "oodbench.records.metrics",
    "render": "oodbench.report.render",
    "corruption_table": "oodbench.report.protocol_tables",
    **dict.fromkeys(
        (
            "DEFAULT_COLUMNS",
            "RUN_KEY",
            "label",
            "mean_rows",
            "mean_std",
            "over_seeds",
            "seed_table",
            "tabulate_rows",
            "variant",
        ),
        "oodbench.report.tables",
    ),
}


def _results_module() -> types.ModuleType:
    module = types.ModuleType("oodbench.results", "Deprecated: records, their store and tables (see MOVED).")

    def __getattr__(name: str):
        if name not in RESULTS:
            raise AttributeError(f"module 'oodbench.results' has no attribute {name!r}")
        return getattr(importlib.import_module(RESULTS[name]), name)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__all__ = sorted(RESULTS)  # type: ignore[attr-defined]
    return module


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths and loads each as its new module (or the ``results`` facade), with a warning."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED or fullname == "oodbench.results":
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        home = MOVED.get(spec.name, "oodbench.records, oodbench.report")
        warnings.warn(
            f"{spec.name} is deprecated and will be removed in the next release: import from {home} "
            "(the names a plugin author needs also import from oodbench itself)",
            DeprecationWarning,
            stacklevel=2,
        )
        if spec.name == "oodbench.results":
            return _results_module()
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        """Nothing to run: the module was imported under its new name."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (``import oodbench`` does this)."""
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())
