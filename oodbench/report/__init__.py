"""Report (the last stage): tables, leaderboards, the HTML report and plots, from records only — it never runs
a model. Imports :mod:`oodbench.records` and :mod:`oodbench.core`.

``from oodbench.report import render`` keeps working (lazily, from :mod:`.render`)."""

from __future__ import annotations

import importlib

_PUBLIC = {"render": ".render"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """The stage's public names, imported on first use (torch loads only when needed)."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
