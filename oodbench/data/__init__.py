"""Data (stage 1's material): :class:`ImageSet` and per-sample provenance, the data root, streamed image
files and corruptions. Imports :mod:`oodbench.core` only.

``from oodbench.data import ImageSet, LoadContext, missing, require_split`` keeps working: the names of
:mod:`oodbench.data.imageset` are re-exported here (lazily)."""

from __future__ import annotations

from oodbench.core.lazy import lazy_getattr

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
__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())
