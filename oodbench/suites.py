"""Benchmark suites (``benchmarks.yaml``), resumable execution and the leaderboard.

A suite is a list of run entries (the options of ``oodbench run`` as YAML, plus ``seeds`` and
``paper`` — the published numbers to print beside the reproduced ones). ``bench`` expands every
entry (seeds × held-out classes), writes a marker when a run completes and skips marked runs, and
inside a run skips records that already exist: an interrupted suite resumes where it stopped.
``leaderboard`` renders the records only, ranked by AUROC within each (protocol, ID, OOD), each number with
its 95 % bootstrap interval; rows a paired bootstrap cannot tell apart share a rank (:mod:`oodbench.intervals`,
whose ``comparisons.json`` keeps the comparisons for when the per-sample scores are gone).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from . import protocols
from .atomic import atomic_write_bytes
from .claims import claim, owner
from .errors import UnknownNameError, UsageError
from .evaluate import failure_lines
from .executors import Executor, LocalExecutor
from .intervals import MEAN_COVERS, RANK_LEGEND, Intervals, rank_labels
from .metrics import METRIC_LABELS
from .progress import pause_point, say
from .record import Record
from .request import BadValue, RunRequest, check_seeds, describe_run
from .runner import expand, run
from .store import record_files, results_dir
from .suite_config import require_declared
from .tables import CI_LEGEND, group_table, mean_std, over_seeds, tabulate_rows
from .yamlfile import YamlFile


def warn(message: str) -> None:
    """A line on stderr that ``OODBENCH_QUIET`` does not silence (failures)."""
    print(message, file=sys.stderr, flush=True)


SUITE_KEYS = {f.name for f in dataclasses.fields(RunRequest)} | {"seeds", "paper"}


def read_suite_file(path: str | Path = "benchmarks.yaml") -> tuple[dict[str, Any], YamlFile]:
    """(suites, the parsed file) with the file's shape checked: a mistake is one line ``FILE:LINE: …``."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"suite file {str(p)!r} not found (run from the project root or pass --file)")
    f = YamlFile(p)
    top = f.expect(f.data if f.data is not None else {}, dict, (), "a mapping with a 'suites:' key")
    suites = f.expect(top.get("suites") or {}, dict, ["suites"], "a mapping SUITE: {runs: [...]}")
    for name, suite in suites.items():
        f.expect(suite, dict, ["suites", name], "a mapping with 'runs:' (and 'description:')")
        runs = f.expect(suite.get("runs") or [], list, ["suites", name, "runs"], "a list of runs")
        for i, entry in enumerate(runs):
            f.expect(entry, dict, ["suites", name, "runs", i], "a mapping of `oodbench run` options")
            unknown = sorted(set(entry) - SUITE_KEYS)
            if unknown:
                raise f.error(["suites", name, "runs", i, unknown[0]], f"unknown key {unknown[0]!r} in a run")
    return suites, f


def load_suites(path: str | Path = "benchmarks.yaml") -> dict[str, Any]:
    return read_suite_file(path)[0]


def suite_requests(
    suite: dict[str, Any], out_dir: Path, where: tuple[YamlFile, str] | None = None
) -> list[tuple[RunRequest, dict]]:
    """Every (request, entry) of a suite, expanded over seeds and held-out classes. ``where`` (the file and
    the suite's name) puts ``FILE:LINE`` in front of a bad value."""
    out = []
    for i, entry in enumerate(suite.get("runs", [])):
        unknown = set(entry) - SUITE_KEYS
        if unknown:
            raise UsageError(f"suite entry {i} has unknown keys {sorted(unknown)}")
        fields = {k: v for k, v in entry.items() if k not in ("seeds", "paper")}
        if fields.get("checkpoint") is not None:
            fields["checkpoint"] = Path(fields["checkpoint"])  # YAML gives a string; the run loads a Path
        try:
            seeds = check_seeds(entry["seeds"]) if "seeds" in entry else None
            req = RunRequest(**fields, results=str(out_dir))
        except BadValue as exc:
            if where is None:
                raise
            f, name = where
            raise f.error(["suites", name, "runs", i, exc.field], f"run {i + 1} of suite {name!r}: {exc}") from None
        except TypeError as exc:  # a required key missing
            raise UsageError(f"run {i + 1}: {exc}") from None
        for part in expand(req, seeds):
            out.append((part, entry))
    return out


def request_key(req: RunRequest) -> str:
    """A run's marker name; ``--download`` does not change what a run computes, so it is not part of it, and
    an empty ``train_options`` (added later) is left out so that earlier markers still match."""
    fields = dataclasses.asdict(dataclasses.replace(req, download=False))
    if not fields["train_options"]:
        del fields["train_options"]
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _run_one(req: RunRequest, marker: Path, tag: str, counts: dict[str, int], wait: bool) -> bool:
    """Run ``req`` under its claim unless done; False if another process holds the claim (and not ``wait``)."""
    lock = marker.parent.parent / ".claims" / f"{marker.name}.lock"
    with claim(lock, wait=wait) as mine:
        if not mine:
            say(f"{tag} busy (another oodbench process, pid {owner(lock)}, is running it): {describe_run(req)}")
            return False
        if marker.is_file():  # finished by another process meanwhile
            counts["skipped"] += 1
            say(f"{tag} skip (done): {describe_run(req)}")
            return True
        pause_point("bench-claimed")
        say(f"{tag} run: {describe_run(req)}")
        outcome = run(req, skip_existing=True)
        if outcome.failures:
            counts["failed"] += 1
            for line in failure_lines(outcome.failures):
                warn(f"{tag} {line}")
            return True
        atomic_write_bytes(marker, json.dumps(dataclasses.asdict(req), default=str).encode())
        counts["done"] += 1
        return True


def bench(
    name: str,
    path: str | Path = "benchmarks.yaml",
    results: str | None = None,
    executor: Executor | None = None,
    download: bool = False,
) -> dict[str, int]:
    """Run suite ``name``; returns counts of runs done now, skipped as already done, and failed.
    A run whose detectors failed gets no marker: the next call retries it (its finished records are kept).
    Each run is claimed while it runs (:mod:`oodbench.claims`): a second process on the same results folder
    passes over runs the first is running, and at the end waits for them and counts them as done there.
    Another ``executor`` (Ray) runs the runs not done yet as tasks; only this process writes records and markers."""
    suites, f = read_suite_file(path)
    if name not in suites:
        raise UnknownNameError("suite", name, suites)
    require_declared(suites[name], name)
    out_dir = results_dir(results) / name
    todo = suite_requests(suites[name], out_dir, (f, name))
    if download:  # datasets that can be fetched are (a machine with internet builds the data it needs)
        todo = [(dataclasses.replace(req, download=True), entry) for req, entry in todo]
    markers = out_dir / ".done"
    markers.mkdir(parents=True, exist_ok=True)
    counts = {"done": 0, "skipped": 0, "failed": 0, "total": len(todo)}
    if executor is None or isinstance(executor, LocalExecutor):
        _bench_here(todo, markers, counts)
    else:
        _bench_with(executor, todo, markers, out_dir, counts)
    say(
        f"suite {name}: {counts['done']} run(s) done now, {counts['skipped']} skipped as already done, "
        f"{counts['failed']} failed" + (" — nothing to do" if counts["done"] + counts["failed"] == 0 else "")
    )
    return counts


def _bench_here(todo: list, markers: Path, counts: dict[str, int]) -> None:
    """One run after another in this process, each under its claim (runs another process holds: waited for)."""
    busy = []
    for i, (req, _) in enumerate(todo, 1):
        marker, tag = markers / request_key(req), f"[{i}/{len(todo)}]"
        if marker.is_file():
            counts["skipped"] += 1
            say(f"{tag} skip (done): {describe_run(req)}")
        elif not _run_one(req, marker, tag, counts, wait=False):
            busy.append((req, marker, tag))
    for req, marker, tag in busy:  # runs another process had: wait for it, then skip (or run if it failed)
        _run_one(req, marker, tag, counts, wait=True)


def _bench_with(executor: Executor, todo: list, markers: Path, out_dir: Path, counts: dict[str, int]) -> None:
    """The runs not done yet through ``executor``; records and markers are written here as runs finish."""
    pending = []
    for i, (req, _) in enumerate(todo, 1):
        if (markers / request_key(req)).is_file():
            counts["skipped"] += 1
            say(f"[{i}/{len(todo)}] skip (done): {describe_run(req)}")
            continue
        pending.append((i, req))
    with closing(executor.run_all(pending, out_dir, len(todo))) as finished:
        for i, outcome in finished:
            req = todo[i - 1][0]
            if outcome.failures or outcome.error:
                counts["failed"] += 1
                lines = [f"run failed ({describe_run(req)}): {outcome.error}"] if outcome.error else []
                for line in lines + failure_lines(outcome.failures):
                    warn(f"[{i}/{len(todo)}] {line}")
                continue
            atomic_write_bytes(markers / request_key(req), json.dumps(dataclasses.asdict(req), default=str).encode())
            counts["done"] += 1


def _paper_numbers(suite: dict[str, Any]) -> dict[tuple, dict[str, float]]:
    """(protocol, detector, base ID, OOD or "*", tune) → {metric: value} from the entries' ``paper`` mappings
    (``{det: {auroc: N}}`` for every OOD of the entry, or ``{det: {OOD: {auroc: N}}}`` per OOD set).
    A published number sits only beside rows run the way the declaring entry runs them."""
    out: dict[tuple, dict[str, float]] = {}
    for entry in suite.get("runs", []):
        tune, protocol = entry.get("tune", "none"), entry.get("protocol", "anomaly")
        for det, spec in (entry.get("paper") or {}).items():
            if spec and all(isinstance(v, dict) for v in spec.values()):
                for ood, metrics in spec.items():
                    out[(protocol, det, entry["id"], ood, tune)] = metrics
            else:
                for ood in entry.get("oods") or ["*"]:
                    out[(protocol, det, entry["id"], ood, tune)] = spec
    return out


def ranked_table(
    records: list[Record], metrics: tuple[str, ...], paper: dict, fmt: str, ci: Intervals | None = None
) -> str:
    """Rows ranked by the first metric within each (ID, OOD), mean ± std over seeds, paper AUROC beside; with
    ``ci`` each number's interval beside it and ties from the paired bootstrap (:func:`rank_labels`)."""
    rows = []
    for key, grp, means, stds in over_seeds(records, metrics):
        id_, ood, det, tune, protocol = key["id"], key["ood"], key["detector"], key["tune"], grp[0].protocol
        base_id = re.split(r"-\{|\[", id_)[0]
        ref = paper.get((protocol, det, base_id, ood, tune)) or paper.get((protocol, det, base_id, "*", tune)) or {}
        found = (ci(grp) or {}) if ci is not None else {}
        row = [
            id_,
            ood,
            det + key["variant"],
            key["backbone"],
            tune,
            len({g.seed for g in grp}),
            *(mean_std(means, stds, m, len(grp) > 1, found.get(m)) for m in metrics),
            ref.get("auroc", "—"),
        ]
        rows.append((row, grp, means.get(metrics[0], 0.0)))
    rows.sort(key=lambda r: (r[0][0], r[0][1], -r[2]))
    ranked = []
    for section in dict.fromkeys((row[0], row[1]) for row, _, _ in rows):
        part = [(row, grp) for row, grp, _ in rows if (row[0], row[1]) == section]
        labels = rank_labels([grp for _, grp in part], metrics[0], ci)
        ranked += [[label, *row] for label, (row, _) in zip(labels, part)]
    headers = [
        "#",
        "ID",
        "OOD",
        "Detector",
        "Backbone",
        "Tune",
        "Seeds",
        *(METRIC_LABELS.get(m, m) for m in metrics),
        "paper AUROC",
    ]
    return tabulate_rows(headers, ranked, fmt)


def leaderboard(
    name: str, path: str | Path = "benchmarks.yaml", results: str | None = None, fmt: str = "github"
) -> str:
    """Ranked tables (sections chosen by each protocol) from the suite's records, paper numbers beside rows."""
    suite, root = load_suites(path).get(name, {}), results_dir(results) / name
    found = record_files(root)
    if not found:
        raise UsageError(f"no records for suite {name!r} under {root}; run `oodbench bench {name}` first")
    records, ci = [r for _, r in found], Intervals(root, {r.record_id: p for p, r in found})
    paper, fmt = _paper_numbers(suite), fmt if fmt != "json" else "github"
    sections: list[str] = []
    for protocol in sorted({r.protocol for r in records}):
        rs = [r for r in records if r.protocol == protocol]
        sections += protocols.get(protocol).leaderboard(
            rs, fmt, lambda recs, m: ranked_table(recs, m, paper, fmt, ci), ci=ci
        )
    if suite.get("groups"):  # OpenOOD's near-/far-OOD means (e.g. the imagenet suite)
        sections.append(
            "**OOD groups** (mean AUROC over each group's sets)\n\n" + group_table(records, suite["groups"], fmt)
        )
    try:
        ci.save()
    except OSError as exc:  # a read-only results folder still renders (from the stored comparisons)
        warn(f"could not keep the comparisons in {root}: {exc}")
    return "\n\n".join([*sections, f"Intervals {CI_LEGEND}; {MEAN_COVERS}. Ranks: {RANK_LEGEND}."])


def write_section(path: str | Path, name: str, text: str) -> Path:
    """Replace the marked leaderboard section of a Markdown file in place (append it if absent)."""
    p = Path(path)
    start, end = f"<!-- oodbench:leaderboard {name} -->", f"<!-- /oodbench:leaderboard {name} -->"
    block = f"{start}\n{text}\n{end}"
    old = p.read_text() if p.is_file() else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else (old.rstrip() + "\n\n" + block + "\n").lstrip()
    p.write_text(new)
    return p
