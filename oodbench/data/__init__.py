"""Data (stage 1's material): :class:`ImageSet` and per-sample provenance, the data root, streamed image
files and corruptions. Imports :mod:`oodbench.core` only.

``from oodbench.data import ImageSet, LoadContext, missing, require_split`` keeps working: the names of
:mod:`oodbench.data.imageset` are re-exported here (lazily)."""

from __future__ import annotations

import importlib

_PUBLIC = {
    name: ".imageset"
    for name in (
        "CACHE_ENV",
        "DATA_ENV",
        "Dataset",
        "ImageSet",
        "LoadContext",
        "cache_dir",
        "missing",
        "require_split",
        "resolve_data_root",
        "to_float",
    )
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """The stage's public names, imported on first use (torch loads only when needed)."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
