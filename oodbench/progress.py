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
