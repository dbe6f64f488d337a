"""``oodbench report SUITE -o report.html``: one self-contained HTML page of a suite's records.

Built from the records and the per-sample scores saved beside them (never by re-running anything):

- a sortable leaderboard table per protocol (mean ± std over seeds, ranked by the protocol's first metric
  within each (ID, OOD); click a header to sort),
- per (protocol, ID, OOD) pair the ROC curves and score histograms of its detectors
  (:func:`oodbench.report.figures.pair_figure`),
- the AUROC-against-severity curves of corruption sweeps (paper 003 Fig. 4),
- every record's configuration and timing in a ``<details>`` element (a click opens it).

Pictures are base64 PNG data URIs (matplotlib, the ``plot`` extra); no file, CDN or font is fetched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from html import escape
from pathlib import Path

from oodbench import __version__
from oodbench.core.atomic import atomic_path
from oodbench.records.metrics import METRIC_LABELS
from oodbench.records.record import Record
from oodbench.records.store import scores_of
from oodbench.report.ood_groups import by_protocol, group_means, group_title, record_groups
from oodbench.report.page import page
from oodbench.report.protocol_tables import is_sweep, leaderboard_metrics
from oodbench.report.tables import label, over_seeds

LEAD = ("#", "ID", "OOD", "Detector", "Backbone", "Tune", "Seeds")
EXTRA_LABELS = {"auroc_err": "AUROC-Err", "aupr_succ": "AUPR-Succ", "aupr_err": "AUPR-Err"}


#: stages one run does once for all its detectors (runner.py, supply.py); the rest (fit, tune, score) are the detector's
SHARED_STAGES = ("load_data", "backbone", "extract_features")


def seconds_total(record: Record) -> float:
    return float(sum(record.seconds.values()))


def seconds_own(record: Record) -> float:
    """The detector's own wall time: every stage but the ones its run shares with the other detectors."""
    return float(sum(v for k, v in record.seconds.items() if k not in SHARED_STAGES))


def anchor(record: Record) -> str:
    return f"run-{record.record_id}"


def _num(value: float | None, text: str | None = None) -> str:
    if value is None:
        return "<td class='num' data-v=''>—</td>"
    return f"<td class='num' data-v='{value:.6g}'>{escape(text if text is not None else f'{value:.1f}')}</td>"


def table_html(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "sortable") -> str:
    """A table whose rows are already ``<td>`` cells (see :func:`_num`)."""
    head = "".join(f"<th scope='col'>{escape(h)}</th>" for h in headers)
    body = "\n".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return f"<table class='{cls}'>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def leaderboard_table(records: list[Record], metrics: Sequence[str]) -> str:
    """One row per (detector, backbone, ID, OOD, tune, variant): mean ± std over seeds, ranked by the first
    metric within each (ID, OOD), the detector's mean wall time (:func:`seconds_own`); the detector links to
    the first seed's run details."""
    rows = []
    for key, grp, means, stds in over_seeds(records, metrics):
        spread = len(grp) > 1
        cells = [
            *(f"<td>{escape(str(key[k]))}</td>" for k in ("id", "ood")),
            f"<td><a href='#{anchor(grp[0])}'>{escape(key['detector'] + key['variant'])}</a></td>",
            *(f"<td>{escape(str(key[k]))}</td>" for k in ("backbone", "tune")),
            _num(len(grp), str(len(grp))),
            *(
                _num(means.get(m), f"{means[m]:.1f}" + (f" ± {stds[m]:.1f}" if spread else "") if m in means else None)
                for m in metrics
            ),
            _num(sum(seconds_own(r) for r in grp) / len(grp)),
        ]
        rows.append(((key["id"], key["ood"]), -means.get(metrics[0], float("-inf")), cells))
    rows.sort(key=lambda r: (r[0], r[1]))
    ranked, last, rank = [], None, 0
    for pair, _, cells in rows:
        rank = rank + 1 if pair == last else 1
        last = pair
        ranked.append([_num(rank, str(rank)), *cells])
    headers = [*LEAD, *(EXTRA_LABELS.get(m, METRIC_LABELS.get(m, m)) for m in metrics), "Detector s"]
    return table_html(headers, ranked)


def leaderboard_section(records: list[Record]) -> str:
    parts = [
        "<h2 id='leaderboard'>Leaderboard</h2>",
        "<p>Click a column header to sort; click a detector for its run. Detector s: its fit, tuning and "
        "scoring time (loading, backbone and features are shared by a run's detectors: see each run).",
    ]
    for name in sorted({r.protocol for r in records}):
        metrics = leaderboard_metrics(name)
        rs = [r for r in records if r.protocol == name]
        parts += [f"<h3>{escape(name)}</h3>", leaderboard_table(rs, metrics)]
    return "\n".join(parts)


def groups_section(records: list[Record], groups: dict[str, list[str]] | None) -> str:
    """OpenOOD's summary (:mod:`oodbench.report.ood_groups`): AUROC per OOD set and the mean of each group, one
    table per protocol."""
    if not groups:
        return ""
    sets = [s for members in groups.values() for s in members]
    headers = ["ID", "Detector", "Backbone", "Tune", *sets, *(f"{g} mean AUROC" for g in groups)]
    parts = by_protocol(records)
    out = []
    for i, (protocol, rs) in enumerate(parts.items()):
        rows = [
            [*(f"<td>{escape(str(v))}</td>" for v in row), *(_mean_cell(values.get(k)) for k in [*sets, *groups])]
            for row, values in sorted(group_means(rs, groups).items())
        ]
        anchor = " id='groups'" if i == 0 else ""
        title = group_title(protocol, len(parts) > 1)
        out.append(f"<h3{anchor}>{escape(title)} (AUROC per set, mean per group)</h3>\n" + table_html(headers, rows))
    return "\n".join(out)


def _mean_cell(value: tuple[float, float] | None) -> str:
    return (
        _num(None) if value is None else _num(value[0], f"{value[0]:.1f}" + (f" ± {value[1]:.1f}" if value[1] else ""))
    )


def pairs_section(found: list[tuple[Path, Record]]) -> str:
    """Per (protocol, ID, OOD): ROC curves and score histograms of every detector with saved scores."""
    from oodbench.report.figures import curve_of, pair_figure

    groups: dict[tuple[str, str, str], list[tuple[Path, Record]]] = {}
    for path, r in found:
        groups.setdefault((r.protocol, r.id, r.ood), []).append((path, r))
    parts = ["<h2 id='pairs'>ROC curves and score histograms per (ID, OOD) pair</h2>"]
    for (protocol, id_, ood), items in sorted(groups.items()):
        seeds = len({r.seed for _, r in items})
        items = sorted(items, key=lambda pr: (label(pr[1]), pr[1].tune, pr[1].seed))
        curves = [c for c in (curve_of(r, scores_of(p), seeds) for p, r in items) if c is not None]
        title = f"{id_} → {ood} ({protocol})"
        if not curves:
            parts.append(f"<p>{escape(title)}: no per-sample scores saved.</p>")
            continue
        parts.append(
            f"<figure><figcaption>{escape(title)}</figcaption>"
            f"<img alt='ROC curves and score histograms, {escape(title)}' src='{pair_figure(curves, title)}'></figure>"
        )
    return "\n".join(parts)


def corruption_section(records: list[Record]) -> str:
    """AUROC against severity per corruption type, one figure per (ID, seed) of the sweep records."""
    from oodbench.report.figures import corruption_figure

    sweep = [r for r in records if is_sweep(r)]
    if not sweep:
        return ""
    parts = ["<h2 id='corruption'>Corruption curves</h2>"]
    for id_, seed in sorted({(r.id, r.seed) for r in sweep}):
        rs = [r for r in sweep if r.id == id_ and r.seed == seed]
        title = f"{id_} test set corrupted as OOD, seed {seed}"
        parts.append(
            f"<figure><figcaption>{escape(title)}</figcaption>"
            f"<img alt='AUROC against severity, {escape(title)}' src='{corruption_figure(rs)}'></figure>"
        )
    return "\n".join(parts)


def run_details(record: Record) -> str:
    """One record's configuration, timing and provenance, folded into a ``<details>`` element."""
    timing = table_html(
        ["Stage", "Seconds"],
        [[f"<td>{escape(k)}</td>", _num(v, f"{v:.2f}")] for k, v in record.seconds.items()],
        cls="timing",
    )
    rest = {
        k: getattr(record, k)
        for k in ("backbone", "checkpoint", "tune_out", "target", "plugin", "params", "tuning", "fit", "extra_models")
        + ("n_eval", "model", "data", "device", "versions", "created")
    }
    summary = (
        f"{record.protocol}: {label(record)} · {record.id} → {record.ood} · tune {record.tune} · "
        f"seed {record.seed} · detector {seconds_own(record):.1f} s of {seconds_total(record):.1f} s"
    )
    return (
        f"<details id='{anchor(record)}'><summary>{escape(summary)}</summary>\n"
        f"<h4>Timing</h4>{timing}\n<h4>Configuration</h4><pre>{escape(_json(record.config))}</pre>\n"
        f"<h4>Metrics</h4><pre>{escape(_json(record.metrics))}</pre>\n"
        f"<h4>Detector, tuning, data, versions</h4><pre>{escape(_json(rest))}</pre>\n</details>"
    )


def _json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def runs_section(records: list[Record]) -> str:
    ordered = sorted(records, key=lambda r: (r.protocol, r.id, r.ood, label(r), r.tune, r.seed))
    return "\n".join(["<h2 id='runs'>Runs: configuration and timing</h2>", *map(run_details, ordered)])


def report(name: str, suite: dict, found: list[tuple[Path, Record]], where: Path) -> str:
    """The whole HTML page of suite ``name`` (its definition ``suite``) from its (record file, record) pairs
    ``found`` under ``where``; the suites stage finds them (:func:`oodbench.suites.bench.suite_records`)."""
    records = [r for _, r in found]
    header = (
        f"<h1>oodbench report: {escape(name)}</h1>\n"
        f"<p>{escape(str(suite.get('description', '')))}</p>\n"
        f"<p class='meta'>{len(records)} records under {escape(str(where))} · "
        f"oodbench {__version__} · written {time.strftime('%Y-%m-%d %H:%M:%S')}</p>\n"
        "<p><a href='#leaderboard'>Leaderboard</a> · <a href='#pairs'>ROC curves and histograms</a>"
        + (" · <a href='#corruption'>Corruption curves</a>" if any(map(is_sweep, records)) else "")
        + " · <a href='#runs'>Runs</a></p>"
    )
    groups = groups_section(records, record_groups(records) or suite.get("groups"))
    body = [header, leaderboard_section(records), groups, pairs_section(found), corruption_section(records)]
    return page(f"oodbench report: {name}", "\n".join([*body, runs_section(records)]))


def write_report(name: str, suite: dict, found: list[tuple[Path, Record]], where: Path, out: str | Path) -> Path:
    """Render :func:`report` into ``out`` (written atomically)."""
    text, out = report(name, suite, found, where), Path(out)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
        Path(tmp).chmod(0o644)  # a page to share, not mkstemp's private 0600
    return out
