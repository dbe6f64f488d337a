"""Report (the last stage): tables, leaderboards, the HTML report and plots, from records only — it never runs
a model. Imports :mod:`oodbench.records` and :mod:`oodbench.core`.

``from oodbench.report import render`` keeps working (lazily, from :mod:`.render`)."""

from __future__ import annotations

from oodbench.core.lazy import lazy_getattr

_PUBLIC = {"render": ".render"}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())
