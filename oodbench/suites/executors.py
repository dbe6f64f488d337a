"""Executors: how ``oodbench bench`` runs the runs of a suite that are not done yet.

:func:`oodbench.suites.bench` expands a suite, skips the runs it has markers for and hands the rest to an
executor's ``run_all(runs, out_dir, total)``, which yields ``(index, RunOutcome)`` as each run finishes, its
records already written under ``out_dir``; ``bench`` writes the markers and counts. ``local`` runs them one after
another in this process (the default, no extra packages); ``ray`` submits each run as a Ray task
(:mod:`oodbench.suites.ray_executor`, ``pip install "oodbench[ray]"``, docs/ray.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from oodbench.core.errors import UsageError
from oodbench.core.progress import say
from oodbench.pipeline.request import RunRequest, describe_run
from oodbench.pipeline.runner import RunOutcome, run

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    """Runs (index, request) pairs; yields (index, outcome) as they finish, the records already stored."""

    def run_all(
        self, runs: Sequence[tuple[int, RunRequest]], out_dir: Path, total: int
    ) -> Iterator[tuple[int, RunOutcome]]: ...


@dataclass(frozen=True)
class LocalExecutor:
    """One run after another in this process; each run writes its records as they finish (``runner.run``)."""

    def run_all(
        self, runs: Sequence[tuple[int, RunRequest]], out_dir: Path, total: int
    ) -> Iterator[tuple[int, RunOutcome]]:
        for i, req in runs:
            say(f"[{i}/{total}] run: {describe_run(req)}")
            yield i, run(req, skip_existing=True)


def make_executor(
    name: str = "local", address: str | None = None, max_parallel: int | None = None, cpus_per_run: int = 1
) -> Executor:
    """The executor called ``name``; ``address``, ``max_parallel`` and ``cpus_per_run`` are Ray's options."""
    if name not in EXECUTORS:
        raise UsageError(f"unknown executor {name!r} ({' | '.join(EXECUTORS)})")
    if max_parallel is not None and max_parallel < 1:
        raise UsageError(f"--max-parallel takes a positive number, got {max_parallel}")
    if cpus_per_run < 1:
        raise UsageError(f"--cpus-per-run takes a positive number, got {cpus_per_run}")
    if name == "local":
        if address is not None or max_parallel is not None or cpus_per_run != 1:
            raise UsageError("--address, --max-parallel and --cpus-per-run go with --executor ray")
        return LocalExecutor()
    from oodbench.suites.ray_executor import RayExecutor

    return RayExecutor(address, max_parallel, cpus_per_run)
