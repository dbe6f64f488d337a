"""Peak resident memory (RSS) per stage of a run, and the memory budget (issue 31).

Each stage (``plan``, ``backbone``, ``extract <set>``, ``fit``, ``tune``, ``score``) starts by resetting the kernel's
peak-RSS mark (``/proc/self/clear_refs``, Linux ≥ 4.0) and ends by reading it (``VmHWM``), so a record says which
stage held the most memory, not only that the process did. Where the mark cannot be reset (other systems) each
figure is the peak since the process started (``getrusage``), which is still an upper bound.

A budget (``--max-memory GB`` or ``$OODBENCH_MAX_MEMORY``) starts a watchdog thread that samples the RSS every
20 ms; over the budget it signals the main thread (``SIGUSR1``, whose handler raises :class:`OverBudget`, a
``BaseException`` that plugin code's ``except Exception`` does not swallow), and :func:`guarded` turns that into one
line naming the stage, before the machine swaps. One large allocation made in one call is seen when that call
returns. A run outside the main thread (signals reach only that one) measures its stages but enforces no budget.

:func:`return_freed_memory` fixes glibc's mmap threshold at its 128 KiB default (``M_MMAP_THRESHOLD``), which turns
off glibc's dynamic threshold: otherwise, once torch frees a large activation, glibc raises the threshold up to
32 MiB and later batches' buffers come from heaps that keep their freed pages, so the resident memory of a long
extraction grows batch after batch (on the issue-31 command, 0.18 GiB less peak RSS with the fix, measured).
"""

from __future__ import annotations

import _thread
import os
import resource
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oodbench.core.errors import UsageError

BUDGET_ENV = "OODBENCH_MAX_MEMORY"
_MB = 1 << 20
_peaks: dict[str, int] = {}
_state: dict = {"stage": None, "over": None, "budget": None}


class OverBudget(BaseException):
    """Raised in the main thread when the resident memory went over the budget."""


def _raise_over_budget(signum, frame) -> None:
    raise OverBudget


def current_rss() -> int:
    """This process's resident set size in bytes (``/proc/self/statm``; the peak where that is absent)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss()


def peak_rss() -> int:
    """The peak RSS in bytes since the last :func:`reset_peak` (``VmHWM``), else since the process started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark to the current RSS, where the system allows it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold at 128 KiB (see the module doc); False where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024))
    except (OSError, AttributeError):
        return False


def enter(stage: str) -> None:
    """Close the current stage (its peak kept, the largest over the run for that name) and start ``stage``."""
    close()
    _state["stage"] = stage
    reset_peak()


def close() -> None:
    stage = _state["stage"]
    if stage is not None:
        _peaks[stage] = max(_peaks.get(stage, 0), peak_rss())


@contextmanager
def stage(name: str) -> Iterator[None]:
    """``name`` as the current stage for the block; the stage around it continues after."""
    outer = _state["stage"]
    enter(name)
    try:
        yield
    finally:
        close()
        _state["stage"] = outer


def peaks_mb() -> dict[str, float]:
    """Each stage's peak RSS so far in MB (what a record keeps), the largest as ``run``."""
    close()
    out = {k: round(v / _MB, 1) for k, v in _peaks.items()}
    return {**out, "run": max(out.values())} if out else {}


def budget_from(max_memory_gb: float | None) -> int | None:
    """The budget in bytes: ``--max-memory`` (GB), else ``$OODBENCH_MAX_MEMORY`` (GB), else none."""
    value = max_memory_gb if max_memory_gb is not None else os.environ.get(BUDGET_ENV)
    if value in (None, ""):
        return None
    try:
        gb = float(value)
    except ValueError:
        raise UsageError(f"${BUDGET_ENV} takes a number of GB, got {value!r}") from None
    if gb <= 0:
        raise UsageError(f"--max-memory takes a positive number of GB, got {value}")
    return int(gb * (1 << 30))


def _watch(budget: int, stop: threading.Event) -> None:
    while not stop.wait(0.02):
        rss = current_rss()
        if rss > budget and _state["stage"] is not None:
            _state["over"] = (_state["stage"], rss)
            _thread.interrupt_main(signal.SIGUSR1)
            return


@contextmanager
def guarded(max_memory_gb: float | None = None) -> Iterator[None]:
    """Run the block under the budget (see the module doc); stage peaks start afresh."""
    _peaks.clear()
    _state.update(stage=None, over=None)
    return_freed_memory()
    budget = budget_from(max_memory_gb)
    stop = threading.Event()
    enforced = budget is not None and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGUSR1, _raise_over_budget) if enforced else None
    if enforced:
        threading.Thread(target=_watch, args=(budget, stop), daemon=True, name="oodbench-memory").start()
    try:
        yield
    except OverBudget:
        over = _state["over"] or ("?", current_rss())
        raise UsageError(
            f"memory budget exceeded in stage {over[0]!r}: {over[1] / (1 << 30):.2f} GB resident > "
            f"{budget / (1 << 30):.2f} GB (--max-memory / ${BUDGET_ENV}); lower --test-limit or raise the budget"
        ) from None
    finally:
        stop.set()
        if enforced:
            signal.signal(signal.SIGUSR1, previous)
        close()
        _state["stage"] = None
