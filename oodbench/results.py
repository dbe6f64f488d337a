"""Compatibility module: records, their store and tables now live in :mod:`oodbench.record`,
:mod:`oodbench.store` and :mod:`oodbench.tables` (and the protocol-specific tables in
:mod:`oodbench.protocols`). These names keep working for one release."""

from __future__ import annotations

from .metrics import METRIC_LABELS
from .protocols import corruption_table
from .record import IDENTITY_KEYS, Record, identity_hash
from .report import render
from .store import (
    RESULTS_ENV,
    read_record,
    read_records,
    record_files,
    record_path,
    results_dir,
    scores_of,
    write_record,
    write_scores,
)
from .tables import DEFAULT_COLUMNS, RUN_KEY, label, mean_rows, mean_std, over_seeds, seed_table, tabulate_rows, variant

__all__ = [
    "DEFAULT_COLUMNS",
    "IDENTITY_KEYS",
    "METRIC_LABELS",
    "RESULTS_ENV",
    "RUN_KEY",
    "Record",
    "corruption_table",
    "identity_hash",
    "label",
    "mean_rows",
    "mean_std",
    "over_seeds",
    "read_record",
    "read_records",
    "record_files",
    "record_path",
    "render",
    "results_dir",
    "scores_of",
    "seed_table",
    "tabulate_rows",
    "variant",
    "write_record",
    "write_scores",
]
