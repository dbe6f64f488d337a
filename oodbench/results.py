"""Result records (one JSON file per run identity, written atomically) and tables rendered from them.

A record's identity is (detector, backbone + checkpoint hash, ID, OOD, protocol, tuning mode,
seed, and the data limits that change what was evaluated); its file name carries a hash of
that identity, so a suite can skip finished work and an interrupted one loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .metrics import METRIC_LABELS

IDENTITY_KEYS = ("detector", "backbone", "checkpoint", "id", "ood", "protocol", "tune", "tune_out", "seed", "config")
RESULTS_ENV = "OODBENCH_RESULTS"
DEFAULT_COLUMNS = ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr80", "id_acc")


def results_dir(value: str | os.PathLike | None = None) -> Path:
    return Path(value or os.environ.get(RESULTS_ENV) or "results").expanduser()


def identity(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in IDENTITY_KEYS}


def record_id(record: dict[str, Any]) -> str:
    blob = json.dumps(identity(record), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_")[:60]


def record_path(root: Path, record: dict[str, Any]) -> Path:
    name = "__".join(_slug(record[k]) for k in ("detector", "id", "ood", "tune")) + f"__s{record['seed']}__{record_id(record)}.json"
    return root / _slug(record.get("protocol", "anomaly")) / name


def write_record(root: Path, record: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename): a reader never sees half a record."""
    path = record_path(root, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True, default=str)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_records(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(root).rglob("*.json"))]


def table_rows(records: Iterable[dict[str, Any]], columns: Iterable[str] = DEFAULT_COLUMNS) -> tuple[list[str], list[list[Any]]]:
    columns = list(columns)
    headers = ["Detector", "Backbone", "ID", "OOD", "Tune", *(METRIC_LABELS.get(c, c) for c in columns)]
    rows = []
    for r in records:
        m = r.get("metrics", {})
        rows.append([r["detector"], r["backbone"], r["id"], r["ood"], r["tune"], *(m.get(c) for c in columns)])
    return headers, rows


def render_table(records: list[dict[str, Any]], fmt: str = "github", columns: Iterable[str] = DEFAULT_COLUMNS) -> str:
    """Render records as a table (github | markdown | latex | json) — from records only."""
    if fmt == "json":
        return json.dumps(records, indent=2, sort_keys=True, default=str)
    from tabulate import tabulate

    headers, rows = table_rows(records, columns)
    tablefmt = {"github": "github", "markdown": "pipe", "latex": "latex_booktabs"}.get(fmt)
    if tablefmt is None:
        raise ValueError(f"unknown table format {fmt!r}")
    return tabulate(rows, headers=headers, tablefmt=tablefmt, floatfmt=".1f")
