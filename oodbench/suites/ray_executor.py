"""The Ray executor (``oodbench bench SUITE --executor ray``): every run of a suite is a Ray task (docs/ray.md).

Three kinds of task, plain functions of this module that run on the workers:

1. :func:`model_need`, one per run: the backbone checkpoint the run trains — its cache key, from the run's plan
   exactly as :func:`oodbench.pipeline.supply.backbone_spec` makes it — and whether its detectors train networks
   of their own (``Needs.trains``);
2. :func:`train_model`, one per distinct key: trains the checkpoint (or finds it in the node's cache) and returns
   its bytes, which Ray's object store carries to every node that runs a detector run on it;
3. :func:`run_detectors`, one per run once its checkpoint exists: puts the checkpoint into the node's cache if it
   is not there, runs the pipeline without storing and returns the records with their per-sample scores.

Only the driver writes the results folder (:func:`oodbench.records.store.write_record`, atomically, as the local
executor does); the records already there reach the workers through the object store, so resuming needs no shared disk.
Runs whose detectors train networks of their own wait until no backbone is being trained, so that a model they
share with another run (Deep Ensemble members are other runs' seeds) is found in a node's cache, not trained twice.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oodbench.core.atomic import atomic_path
from oodbench.core.errors import OodbenchError, UsageError, describe
from oodbench.core.progress import SuiteBar, say
from oodbench.pipeline.request import RunRequest, describe_run
from oodbench.pipeline.runner import RunOutcome, run
from oodbench.records.store import read_records, write_record


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError('--executor ray needs Ray: pip install "oodbench[ray]"') from None
    return ray


@dataclass(frozen=True)
class Need:
    """The model a run needs before its detectors can run."""

    key: str | None  # the backbone checkpoint's cache key (None: the run loads --checkpoint FILE)
    file: str | None  # its file name in the cache's checkpoints folder
    trains: bool  # a detector trains networks of its own in fit (Needs.trains)


@contextmanager
def _worker(cpus: int) -> Iterator[None]:
    """Inside a task: quiet (the driver reports) and as many torch threads as the task has CPUs."""
    import torch

    quiet, threads = os.environ.get("OODBENCH_QUIET"), torch.get_num_threads()
    os.environ["OODBENCH_QUIET"] = "1"
    torch.set_num_threads(cpus)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if quiet is None:
            os.environ.pop("OODBENCH_QUIET", None)
        else:
            os.environ["OODBENCH_QUIET"] = quiet


def model_need(req: RunRequest) -> Need:
    """Task 1: which backbone checkpoint ``req`` uses (the key does not depend on the device)."""
    from oodbench.pipeline.planning import make_plan, resolve
    from oodbench.pipeline.supply import backbone_spec

    with _worker(1):
        resolved = resolve(dataclasses.replace(req, device="cpu"))
        trains = any(d.needs.trains for d in resolved.detectors)
        if req.checkpoint is not None:
            return Need(None, None, trains)
        _, spec = backbone_spec(req, make_plan(req, resolved))
        return Need(spec.key(), spec.path().name, trains)


def train_model(req: RunRequest, cpus: int) -> tuple[str, bytes]:
    """Task 2: train (or load from the node's cache) ``req``'s backbone; ("ok", the checkpoint file's bytes)."""
    from oodbench.pipeline.planning import make_plan, resolve
    from oodbench.pipeline.supply import supply_backbone

    with _worker(cpus):
        resolved = resolve(req)
        _, spec, _, _ = supply_backbone(req, make_plan(req, resolved), resolved)
        return "ok", spec.path().read_bytes()


def run_detectors(
    req: RunRequest, checkpoint: bytes | None, file: str | None, known: dict[str, Any], cpus: int
) -> RunOutcome:
    """Task 3: the run, its checkpoint put into the node's cache first; new records name this host and worker."""
    import ray

    from oodbench.data.imageset import cache_dir

    with _worker(cpus):
        if checkpoint is not None and file is not None:
            path = cache_dir() / "checkpoints" / file
            if not path.is_file():
                with atomic_path(path) as tmp:
                    Path(tmp).write_bytes(checkpoint)
        outcome = run(req, skip_existing=True, known=known, store=False)
    ctx = ray.get_runtime_context()
    where = {"executor": "ray", "ray_node": ctx.get_node_id(), "ray_worker": ctx.get_worker_id()}
    tagged = {id(r): dataclasses.replace(r, host={**r.host, **where}) for r, _ in outcome.unsaved}
    outcome.records = [tagged.get(id(r), r) for r in outcome.records]
    outcome.unsaved = [(tagged[id(r)], s) for r, s in outcome.unsaved]
    return outcome


def _one_line(exc: BaseException) -> str:
    """A task's exception as one line (Ray wraps it: name the original)."""
    cause = getattr(exc, "cause", None)
    return describe(cause if isinstance(cause, BaseException) else exc)


class _Scheduler:
    """Submits need → train → run tasks as their inputs become known, at most ``max_parallel`` at once."""

    def __init__(self, ray, ex: RayExecutor, runs: Sequence[tuple[int, RunRequest]], out_dir: Path, total: int):
        self.ray, self.ex, self.out_dir, self.total = ray, ex, out_dir, total
        self.reqs = dict(runs)
        self.needs_q, self.trains_q, self.runs_q = deque(self.reqs), deque(), deque()
        self.held: list[int] = []  # runs that train models of their own: released when no backbone is training
        self.need: dict[int, Need] = {}
        self.waiting: dict[str, list[int]] = {}  # key → runs waiting for its checkpoint
        self.trained: dict[str, Any] = {}  # key → ObjectRef of its bytes, or the one-line reason it failed
        self.inflight: dict[Any, tuple[str, Any]] = {}  # ObjectRef → (need | train | run, run index or key)
        self.known = ray.put({r.record_id: r for r in read_records(out_dir)})
        gpus = ray.cluster_resources().get("GPU", 0)
        self.gpu = lambda req: req.device.startswith("cuda") or (req.device == "auto" and gpus > 0)
        self.tasks = {f.__name__: ray.remote(f) for f in (model_need, train_model, run_detectors)}

    def _options(self, req: RunRequest) -> dict[str, Any]:
        return {"num_cpus": self.ex.cpus_per_run, "num_gpus": 1 if self.gpu(req) else 0}

    def _submit(self) -> None:
        busy = {kind for kind, _ in self.inflight.values()}
        if self.held and not (self.needs_q or self.trains_q or busy & {"need", "train"}):
            self.runs_q.extend(self.held)
            self.held.clear()
        while self.ex.max_parallel is None or len(self.inflight) < self.ex.max_parallel:
            if self.trains_q:
                key, i = self.trains_q.popleft()
                task = self.tasks["train_model"].options(num_returns=2, **self._options(self.reqs[i]))
                status, blob = task.remote(self.reqs[i], self.ex.cpus_per_run)
                self.trained[key], self.inflight[status] = blob, ("train", key)
            elif self.runs_q:
                i = self.runs_q.popleft()
                need, req = self.need[i], self.reqs[i]
                blob = self.trained[need.key] if need.key is not None else None
                task = self.tasks["run_detectors"].options(**self._options(req))
                self.inflight[task.remote(req, blob, need.file, self.known, self.ex.cpus_per_run)] = ("run", i)
            elif self.needs_q:
                i = self.needs_q.popleft()
                task = self.tasks["model_need"].options(num_cpus=1, num_gpus=0)
                self.inflight[task.remote(self.reqs[i])] = ("need", i)
            else:
                break

    def _ready(self, i: int) -> None:
        (self.held if self.need[i].trains else self.runs_q).append(i)

    def _finish(self, ref) -> Iterator[tuple[int, RunOutcome]]:
        kind, what = self.inflight.pop(ref)
        try:
            value, error = self.ray.get(ref), None
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            value, error = None, _one_line(exc)
        if kind == "need":
            yield from self._on_need(what, value, error)
        elif kind == "train":
            if error is not None:
                self.trained[what] = error
            for i in self.waiting.pop(what):
                if error is None:
                    self._ready(i)
                else:
                    yield self._done(i, RunOutcome(error=f"training its backbone failed: {error}"))
        else:
            yield self._done(what, value if error is None else RunOutcome(error=error))

    def _on_need(self, i: int, need: Need | None, error: str | None) -> Iterator[tuple[int, RunOutcome]]:
        if need is None:
            yield self._done(i, RunOutcome(error=error))
            return
        self.need[i] = need
        if need.key is None:
            self._ready(i)
        elif need.key in self.waiting:
            self.waiting[need.key].append(i)
        elif need.key not in self.trained:
            self.waiting[need.key] = [i]
            self.trains_q.append((need.key, i))
        elif isinstance(self.trained[need.key], str):
            yield self._done(i, RunOutcome(error=f"training its backbone failed: {self.trained[need.key]}"))
        else:
            self._ready(i)

    def _done(self, i: int, outcome: RunOutcome) -> tuple[int, RunOutcome]:
        """The driver stores a finished run's new records (atomically) before bench marks the run."""
        for record, scores in outcome.unsaved:
            write_record(self.out_dir, record, **scores)
        if outcome.error:
            return i, outcome  # bench reports it
        hosts = sorted({f"{r.host.get('hostname')}:{r.host.get('pid')}" for r, _ in outcome.unsaved})
        on = f" on {', '.join(hosts)}" if hosts else ""
        say(f"[{i}/{self.total}] finished{on}: {describe_run(self.reqs[i])} ({len(outcome.records)} record(s))")
        return i, outcome

    def _cancel(self) -> None:
        for ref in list(self.inflight):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished or gone: nothing to cancel
                pass
        self.inflight.clear()

    def loop(self) -> Iterator[tuple[int, RunOutcome]]:
        try:
            while True:
                self._submit()
                if not self.inflight:
                    return
                ready, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=1.0)
                for ref in ready:
                    yield from self._finish(ref)
        except KeyboardInterrupt:  # keep what already finished, cancel the rest
            runs = [ref for ref, (kind, _) in self.inflight.items() if kind == "run"]
            try:
                ready = self.ray.wait(runs, num_returns=len(runs), timeout=0)[0] if runs else []
            except Exception:  # Ray itself is going down (its processes got the same SIGINT)
                ready = []
            finished = [(ref, self.inflight.pop(ref)) for ref in ready]
            self._cancel()
            for ref, (_, i) in finished:
                try:
                    outcome = self.ray.get(ref, timeout=10)
                except Exception:  # it failed or was interrupted: nothing to keep
                    continue
                yield self._done(i, outcome)
            raise
        finally:
            self._cancel()


@dataclass(frozen=True)
class RayExecutor:
    """Runs as Ray tasks. ``address``: None starts a local Ray; ``auto`` or ``ray://HOST:PORT`` joins a cluster.
    ``max_parallel``: at most this many tasks at once (default: as many as the cluster's resources allow)."""

    address: str | None = None
    max_parallel: int | None = None
    cpus_per_run: int = 1

    def __post_init__(self) -> None:
        import_ray()

    def run_all(
        self, runs: Sequence[tuple[int, RunRequest]], out_dir: Path, total: int
    ) -> Iterator[tuple[int, RunOutcome]]:
        if not runs:
            return
        ray = import_ray()
        started = not ray.is_initialized()
        if started:
            try:
                fresh = self.address is None and not os.environ.get("RAY_ADDRESS")  # Ray's own variable may name one
                options = {"include_dashboard": False} if fresh else {}
                ray.init(address=self.address, logging_level=logging.WARNING, **options)
            except Exception as exc:
                raise OodbenchError(f"cannot start or join Ray (--address {self.address}): {describe(exc)}") from exc
        res = ray.cluster_resources()
        say(f"ray: {len(runs)} run(s) on {res.get('CPU', 0):g} CPU(s), {res.get('GPU', 0):g} GPU(s)")
        bar = SuiteBar(total, total - len(runs))
        try:
            for i, outcome in _Scheduler(ray, self, runs, out_dir, total).loop():
                bar.advance(bool(outcome.failures or outcome.error))
                yield i, outcome
        finally:
            bar.close()
            if started:
                ray.shutdown()
