"""Where records live: one JSON file per record identity, written atomically, with the per-sample scores
beside it (``.npz``), under the results folder (``--results``, ``$OODBENCH_RESULTS`` or ``./results``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from oodbench.core.atomic import atomic_path
from oodbench.records.record import Record

RESULTS_ENV = "OODBENCH_RESULTS"
COMPARISONS = (
    "comparisons.json"  # paired-bootstrap results of a results folder (oodbench.records.intervals), not a record
)


def results_dir(value: str | os.PathLike | None = None) -> Path:
    return Path(value or os.environ.get(RESULTS_ENV) or "results").expanduser()


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_")[:60]


def record_path(root: Path, r: Record) -> Path:
    """``root/PROTOCOL/DETECTOR__ID__OOD__TUNE__sSEED__RECORDID.json``."""
    name = "__".join(_slug(v) for v in (r.detector, r.id, r.ood, r.tune)) + f"__s{r.seed}__{r.record_id}.json"
    return Path(root) / _slug(r.protocol) / name


def write_scores(root: Path, record: Record, **scores: Any) -> Path:
    """Per-sample scores beside the record (``.npz``, atomic), for plots and re-analysis."""
    import numpy as np

    path = record_path(root, record).with_suffix(".npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy adds no ".npz" to it
        np.savez_compressed(f, **{k: np.asarray(v, dtype=np.float32) for k, v in scores.items()})
    return path


def write_record(root: Path, record: Record, **scores: Any) -> Path:
    """Scores first, then the record (temp file + rename): a record never lacks its scores, a reader never
    sees half a record, and a write that is interrupted leaves neither."""
    scores_file = write_scores(root, record, **scores) if scores else None
    path = record_path(root, record)
    try:
        with atomic_path(path, stage="write-record") as tmp, open(tmp, "w") as f:
            json.dump(record.to_dict(), f, indent=2, sort_keys=True, default=str)
    except BaseException:  # interrupted or failed: no scores file without its record
        if scores_file is not None and not path.is_file():
            scores_file.unlink(missing_ok=True)
        raise
    return path


def _parse(path: Path) -> Record | None:
    """The record in ``path``; a file that is not a record gets a one-line warning and None (it is never
    deleted: records are results)."""
    try:
        return Record.from_json(path.read_text())
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        from oodbench.core.errors import describe
        from oodbench.core.progress import warn

        warn(f"skipping {path}: not a readable record ({describe(exc)})")
        return None


def read_record(path: Path) -> Record | None:
    """The record at ``path``, or None if there is none (or it cannot be read: then it is recomputed)."""
    return _parse(path) if path.is_file() else None


def scores_of(record_file: Path) -> dict[str, Any] | None:
    """The per-sample scores saved beside a record file (None for records without them)."""
    import numpy as np

    path = Path(record_file).with_suffix(".npz")
    return dict(np.load(path)) if path.is_file() else None


def record_files(root: Path) -> list[tuple[Path, Record]]:
    """(file, record) for every record under ``root`` (suites keep theirs in ``root/SUITE``)."""
    files = (p for p in sorted(Path(root).rglob("*.json")) if p.name != COMPARISONS and not p.name.startswith("."))
    found = ((p, _parse(p)) for p in files)
    return [(p, r) for p, r in found if r is not None]


def read_records(root: Path) -> list[Record]:
    return [r for _, r in record_files(root)]
