"""Before a long training run on a CPU: the time it will take, the ways out, and consent (issue 23).

A CIFAR ResNet-18 trains at ~30 img/s on a 2-core CPU: 30 epochs are most of a day. Before training on a CPU,
:func:`probe_seconds_per_image` times a forward and backward pass of a few images on a copy of the network
(after one untimed pass, the fastest of three; the random state is restored, so training is unchanged), and the
whole run is estimated from it. A run over a minute prints one line with the estimate and the ways out; over
:data:`LIMIT_S` it goes on only with consent — ``--yes`` (:func:`allow_long_training`) or ``OODBENCH_YES=1``;
in a terminal it asks — and is otherwise refused in one line (exit 2) before a checkpoint or record is written.
"""

from __future__ import annotations

import contextvars
import copy
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from oodbench.core.errors import UsageError
from oodbench.core.progress import warn
from oodbench.data.streams import is_streamed

LIMIT_S = 3600.0
YES_ENV = "OODBENCH_YES"
WAYS_OUT = "--model FILE or --checkpoint FILE (a trained model), fewer --epochs, --train-limit N, or a GPU"
_consent: contextvars.ContextVar[bool] = contextvars.ContextVar("oodbench_long_training", default=False)


class TrainingTooLong(UsageError):
    """A CPU training run estimated above :data:`LIMIT_S` without consent."""


@contextmanager
def allow_long_training() -> Iterator[None]:
    """``--yes``: long CPU training goes ahead in this context (the API and the CLI's ``run``)."""
    token = _consent.set(True)
    try:
        yield
    finally:
        _consent.reset(token)


def consented() -> bool:
    return _consent.get() or os.environ.get(YES_ENV, "").lower() in {"1", "true", "yes"}


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def probe_seconds_per_image(model: torch.nn.Module, images: object, n: int = 32, repeats: int = 3) -> float:
    """Seconds per image of a training step (forward, backward) on a copy of ``model``, from ``n`` images: the
    fastest of ``repeats`` timed steps (as :mod:`timeit` advises), so that one step the OS preempted on a busy
    machine does not turn a LeNet's minutes into hours."""
    if is_streamed(images) or len(images) == 0:  # type: ignore[arg-type]
        return 0.0
    x = images[: min(n, len(images))]  # type: ignore[index]
    x = x.float().div(255.0) if not x.is_floating_point() else x.float()
    try:
        probe = copy.deepcopy(model).train()
        with torch.random.fork_rng(devices=[]):
            _backward(probe, x)  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                _backward(probe, x)
                times.append(time.perf_counter() - start)
    except Exception:  # noqa: BLE001 - a model the probe cannot run (a task's own inputs): no estimate
        return 0.0
    return min(times) / len(x)


def _backward(net: torch.nn.Module, x: torch.Tensor) -> None:
    out = net(x)
    out = out if isinstance(out, torch.Tensor) else out[0]
    if out.requires_grad:  # a frozen network trains nothing through this input: its forward is the cost
        out.float().sum().backward()


def check_training_time(seconds: float) -> None:
    """One line with the estimate when it is over a minute; above an hour, consent or :class:`TrainingTooLong`."""
    if seconds < 60:
        return
    line = f"training on this CPU will take about {duration(seconds)} (from a timed step); ways out: {WAYS_OUT}"
    if seconds <= LIMIT_S or consented():
        warn(line)
        return
    if sys.stdin.isatty() and sys.stderr.isatty():
        warn(line)
        if input(f"train for about {duration(seconds)}? [y/N] ").strip().lower() in {"y", "yes"}:
            return
    raise TrainingTooLong(f"{line} — over an hour: pass --yes (or set {YES_ENV}=1) to train anyway")
