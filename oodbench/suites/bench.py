"""Benchmark suites (``benchmarks.yaml``) and their resumable execution.

A suite is a list of run entries (the options of ``oodbench run`` as YAML, plus ``seeds`` and
``paper`` — the published numbers to print beside the reproduced ones). ``bench`` expands every
entry (seeds × held-out classes), writes a marker when a run completes and skips marked runs, and
inside a run skips records that already exist: an interrupted suite resumes where it stopped.
The leaderboard, from the records only, is :mod:`oodbench.suites.leaderboard`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from oodbench.core.atomic import atomic_write_bytes
from oodbench.core.errors import UnknownNameError, UsageError
from oodbench.core.progress import pause_point, say
from oodbench.core.yamlfile import YamlFile
from oodbench.pipeline.evaluate import failure_lines
from oodbench.pipeline.request import BadValue, RunRequest, check_seeds, describe_run
from oodbench.pipeline.runner import expand, run
from oodbench.records.store import results_dir
from oodbench.suites.claims import claim, owner
from oodbench.suites.config import require_declared
from oodbench.suites.executors import Executor, LocalExecutor


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
            if isinstance(entry.get("oods"), dict):  # OpenOOD's groups: {near: [...], far: [...]}
                _flatten_groups(entry, f, ["suites", name, "runs", i, "oods"])
    return suites, f


def _flatten_groups(entry: dict[str, Any], f: YamlFile, where: list) -> None:
    """``oods: {GROUP: [sets]}`` → ``oods: [sets]`` and ``ood_groups: {GROUP: [sets]}`` (what a run takes)."""
    groups = entry["oods"]
    for g, members in groups.items():
        f.expect(members, list, [*where, g], "a list of OOD sets per group")
    entry["ood_groups"] = {g: list(m) for g, m in groups.items()}
    entry["oods"] = [n for m in groups.values() for n in m]


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


#: RunRequest fields added after suites were first run: left out of a marker's name while unset
LATER_FIELDS = (
    *("train_options", "model", "model_layers", "model_head", "input_mean", "input_std", "precision", "grid"),
    *("ood_groups", "models", "model_name"),
)


def request_key(req: RunRequest) -> str:
    """A run's marker name; ``--download`` and ``--max-memory`` do not change what a run computes, so they are not
    part of it, and fields added later (``train_options``, the ``--model`` ones, ``precision``, ``grid``) are left
    out while unset, so that earlier markers still match."""
    fields = dataclasses.asdict(dataclasses.replace(req, download=False))
    del fields["max_memory"]
    for later in LATER_FIELDS:
        if not fields[later]:
            del fields[later]
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
    Each run is claimed while it runs (:mod:`oodbench.suites.claims`): a second process on the same results folder
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
