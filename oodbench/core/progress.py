"""Progress bars (rich) for long work; silent when ``OODBENCH_QUIET`` is set or output is not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    return not os.environ.get("OODBENCH_QUIET") and sys.stderr.isatty()


def track(items: Iterable[T], description: str | None, total: int | None = None) -> Iterator[T]:
    """Iterate with a transient rich progress bar on stderr (:func:`rich.progress.track`)."""
    if not enabled():
        return iter(items)
    from rich.console import Console
    from rich.progress import track as rich_track

    return iter(rich_track(items, description or "", total=total, console=Console(stderr=True), transient=True))


def say(message: str) -> None:
    """A status line on stderr (kept out of stdout, which carries tables and JSON)."""
    if not os.environ.get("OODBENCH_QUIET"):
        print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """A one-line warning on stderr (``oodbench: warning: …``) that ``OODBENCH_QUIET`` does not silence."""
    print(f"oodbench: warning: {message}", file=sys.stderr, flush=True)


PAUSE_ENV, RESUME_ENV = "OODBENCH_TEST_PAUSE", "OODBENCH_TEST_RESUME"
_paused: set[str] = set()


def pause_point(stage: str) -> None:
    """Test hook (tests/test_bad_inputs.py): with ``OODBENCH_TEST_PAUSE=STAGE[:SECONDS]`` the first time this
    process reaches ``stage`` it prints ``oodbench: test-pause STAGE`` and waits (default 60 s, or until the file
    named by ``OODBENCH_TEST_RESUME`` exists), so that a test can act at exactly that moment.
    Stages: train, extract, write-cache, write-record, bench-claimed."""
    want = os.environ.get(PAUSE_ENV)
    if not want or stage in _paused:
        return
    name, _, seconds = want.partition(":")
    if name == stage:
        import time

        _paused.add(stage)
        print(f"oodbench: test-pause {stage}", file=sys.stderr, flush=True)
        end, resume = time.monotonic() + float(seconds or 60), os.environ.get(RESUME_ENV)
        while time.monotonic() < end and not (resume and os.path.exists(resume)):
            time.sleep(0.05)


class SuiteBar:
    """One bar for a suite (runs done / total, failures), from ``done`` already done; silent like :func:`track`."""

    def __init__(self, total: int, done: int):
        self.progress, self.failed = None, 0
        if enabled():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self.progress = Progress(*columns, console=Console(stderr=True), transient=True)
            self.task = self.progress.add_task("runs (0 failed)", total=total, completed=done)
            self.progress.start()

    def advance(self, failed: bool) -> None:
        self.failed += failed
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=f"runs ({self.failed} failed)")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
