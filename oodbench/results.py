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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .atomic import atomic_path
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
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True, default=str)
    return path


def write_scores(root: Path, record: dict[str, Any], **scores) -> Path:
    """Per-sample scores beside the record (``.npz``, atomic), for plots and re-analysis."""
    import numpy as np

    path = record_path(root, record).with_suffix(".npz")
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **{k: np.asarray(v, dtype=np.float32) for k, v in scores.items()})
    return path


def scores_of(record_file: Path) -> dict[str, Any] | None:
    """The per-sample scores saved beside a record file (None for records without them)."""
    import numpy as np

    path = Path(record_file).with_suffix(".npz")
    return dict(np.load(path)) if path.is_file() else None


def record_files(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, record) for every record under ``root`` (suites keep theirs in ``root/SUITE``)."""
    return [(p, json.loads(p.read_text())) for p in sorted(Path(root).rglob("*.json"))]


def read_records(root: Path) -> list[dict[str, Any]]:
    return [r for _, r in record_files(root)]


def table_rows(records: Iterable[dict[str, Any]], columns: Iterable[str] = DEFAULT_COLUMNS) -> tuple[list[str], list[list[Any]]]:
    columns = list(columns)
    headers = ["Detector", "Backbone", "ID", "OOD", "Tune", *(METRIC_LABELS.get(c, c) for c in columns)]
    rows = []
    for r in records:
        m = r.get("metrics", {})
        rows.append([label(r), r["backbone"], r["id"], r["ood"], r["tune"], *(m.get(c) for c in columns)])
    return headers, rows


def tabulate_rows(headers: list[str], rows: list[list[Any]], fmt: str) -> str:
    from tabulate import tabulate

    tablefmt = {"github": "github", "markdown": "pipe", "latex": "latex_booktabs", "html": "html"}.get(fmt)
    if tablefmt is None:
        raise ValueError(f"unknown table format {fmt!r}")
    return tabulate(rows, headers=headers, tablefmt=tablefmt, floatfmt=".1f")


def mean_rows(records: list[dict[str, Any]], columns: Iterable[str] = DEFAULT_COLUMNS) -> list[list[Any]]:
    """One 'mean' row per (detector, backbone, tune) over several records (e.g. leave-one-class-out)."""
    import numpy as np

    columns = list(columns)
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((label(r), r["backbone"], r["tune"]), []).append(r)
    rows = []
    for (det, bb, tune), rs in groups.items():
        if len(rs) < 2:
            continue
        vals = [float(np.mean([r["metrics"][c] for r in rs])) if all(c in r["metrics"] for r in rs) else None
                for c in columns]
        rows.append([det, bb, "mean", f"{len(rs)} sets", tune, *vals])
    return rows


RUN_KEY = ("detector", "backbone", "id", "ood", "tune")


def variant(record: dict[str, Any]) -> str:
    """What else set this run apart (detector parameters, training outliers, contamination), or ""."""
    cfg = record.get("config", {})
    parts = [f"{k}={v}" for k, v in sorted((cfg.get("detector_params") or {}).items())]
    if cfg.get("train_out"):
        parts.append(f"train-out {cfg['train_out']['name']}")
    if cfg.get("contaminate"):
        parts.append(f"contaminated {cfg['contaminate']['rate']:g} {cfg['contaminate']['with']}")
    return f" [{'; '.join(parts)}]" if parts else ""


def label(record: dict[str, Any]) -> str:
    """The detector name as tables show it: with its :func:`variant`."""
    return record["detector"] + variant(record)


def over_seeds(records: list[dict[str, Any]], metrics: Iterable[str]) -> list[tuple[dict, list[dict], dict, dict]]:
    """Group records by (detector, backbone, ID, OOD, tune) and :func:`variant` — runs that differ in
    anything but the seed are never averaged together: (key, group, mean, std) per metric that every
    record of the group has — the aggregation behind seed tables and the leaderboard."""
    import numpy as np

    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((*(r[k] for k in RUN_KEY), variant(r)), []).append(r)
    out = []
    for key, grp in groups.items():
        vals = {m: [g["metrics"][m] for g in grp] for m in metrics if all(m in g["metrics"] for g in grp)}
        out.append((dict(zip((*RUN_KEY, "variant"), key)), grp, {m: float(np.mean(v)) for m, v in vals.items()},
                    {m: float(np.std(v)) for m, v in vals.items()}))
    return out


def mean_std(mean: dict, std: dict, m: str, spread: bool) -> str:
    return "" if m not in mean else f"{mean[m]:.1f}" + (f" ± {std[m]:.1f}" if spread else "")


def seed_table(records: list[dict[str, Any]], fmt: str = "github", columns: Iterable[str] = DEFAULT_COLUMNS) -> str:
    """mean ± std over seeds for each (detector, backbone, ID, OOD, tune) (SPEC.md "repeats")."""
    columns = list(columns)
    rows = [[key["detector"] + key["variant"], *(key[k] for k in RUN_KEY[1:]), ",".join(str(r["seed"]) for r in grp), *(mean_std(mean, std, c, True) for c in columns)]
            for key, grp, mean, std in over_seeds(records, columns)]
    headers = ["Detector", "Backbone", "ID", "OOD", "Tune", "Seeds", *(METRIC_LABELS.get(c, c) for c in columns)]
    return tabulate_rows(headers, rows, fmt)


def corruption_table(records: list[dict[str, Any]], fmt: str = "github", metric: str = "auroc") -> str:
    """AUROC per corruption type × severity, with the mean per severity (protocol corruption, mode a)."""
    import numpy as np

    cells: dict[tuple, dict[int, float]] = {}
    for r in records:
        kind, _, sev = r["ood"].partition("@")
        if not sev.isdigit():
            continue
        cells.setdefault((r["detector"], kind), {})[int(sev)] = r["metrics"][metric]
    sevs = sorted({s for v in cells.values() for s in v})
    rows = [[det, kind, *(v.get(s) for s in sevs)] for (det, kind), v in sorted(cells.items())]
    for det in sorted({d for d, _ in cells}):
        per = [[v[s] for (d, _), v in cells.items() if d == det and s in v] for s in sevs]
        rows.append([det, "mean", *(float(np.mean(p)) if p else None for p in per)])
    return tabulate_rows(["Detector", "Corruption", *(f"{METRIC_LABELS.get(metric, metric)} s{s}" for s in sevs)], rows, fmt)


def misclassification_table(records: list[dict[str, Any]], fmt: str = "github") -> str:
    cols = ["auroc_err", "aupr_succ", "aupr_err", "mean_msp_wrong", "mean_msp_right", "id_acc"]
    rows = [[r["detector"], r["backbone"], r["id"], r["seed"], *(r["metrics"].get(c) for c in cols)] for r in records]
    return tabulate_rows(["Detector", "Backbone", "ID", "Seed", "AUROC-Err", "AUPR-Succ", "AUPR-Err",
                      "mean MSP wrong", "mean MSP right", "ID acc"], rows, fmt)


def render(records: list[dict[str, Any]], fmt: str = "github", columns: Iterable[str] | None = None) -> str:
    """The table that fits the records' protocol (and repeats), from records only.
    ``columns``: metric keys to show (default: AUROC, AUPR-In/Out, FPR95, FPR80, ID accuracy)."""
    columns = list(columns or DEFAULT_COLUMNS)
    if fmt == "json":
        return json.dumps(records, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    if not records:
        return "(no records)"
    protocol = records[0].get("protocol", "anomaly")
    if protocol == "misclassification":
        return misclassification_table(records, fmt)
    parts = []
    if protocol == "corruption" and all("@" in r["ood"] for r in records) and len({r["seed"] for r in records}) == 1:
        return corruption_table(records, fmt)  # every row is in the pivot; --format json has the rest
    if len({r["seed"] for r in records}) > 1:
        parts.append(seed_table(records, fmt, columns))
        return "\n\n".join(parts)
    headers, rows = table_rows(records, columns)
    rows += mean_rows(records, columns) if protocol == "novelty" else []
    parts.append(tabulate_rows(headers, rows, fmt))
    return "\n\n".join(parts)
