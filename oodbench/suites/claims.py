"""Per-run claims: two ``oodbench bench`` processes on one results folder never run the same run at once.

A claim is an exclusive ``flock`` on ``RESULTS/SUITE/.claims/KEY.lock`` (the file holds the owner's pid, for
people). The kernel drops the lock when its process ends in any way, ``kill -9`` included, so a dead owner
never leaves a stale claim behind. Lock files are never deleted (deleting a locked file would let a second
process lock a new file of the same name). Where ``fcntl`` is missing (Windows) a claim is an ``O_EXCL``
file holding the pid, taken over when that pid no longer runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def owner(lock: Path) -> str:
    """The pid written in a claim file ("?" if unreadable)."""
    try:
        return lock.read_text().strip() or "?"
    except OSError:
        return "?"


@contextmanager
def claim(lock: Path, wait: bool = False) -> Iterator[bool]:
    """Yield True while this process holds the claim on ``lock``; False (at once) if another process holds it
    and ``wait`` is false. With ``wait`` it blocks until the other process is done."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - Windows
        with _claim_excl(lock) as got:
            yield got
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _claim_excl(lock: Path) -> Iterator[bool]:  # pragma: no cover - Windows
    from oodbench.core.atomic import _alive

    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        pid = owner(lock)
        if pid.isdigit() and _alive(int(pid)):
            yield False
            return
        lock.unlink(missing_ok=True)  # a dead owner's claim
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    try:
        yield True
    finally:
        lock.unlink(missing_ok=True)
