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
