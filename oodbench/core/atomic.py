"""Atomic file writes and checked cache entries: a reader never sees half a record, checkpoint or score file.

Every write goes to a hidden temporary file beside the target (``.NAME.PID.XXXX.tmp``) and is renamed onto it
(``os.replace``); an exception, Ctrl-C or SIGTERM removes the temporary file on the way out. A process killed
with ``kill -9`` leaves its temporary file behind: the next write into that folder removes temporary files whose
process is gone. Cache entries (:func:`atomic_torch_save`) also get a ``NAME.sha256`` file holding the entry's
hash and size; :func:`load_checked` verifies it, and a damaged entry is reported in one line, removed and
rebuilt by the caller.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from oodbench.core.progress import pause_point, warn

TMP_SUFFIX = ".tmp"
_swept: set[Path] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_temps(folder: Path) -> list[Path]:
    """Remove the temporary files in ``folder`` left by processes that no longer run (``kill -9``)."""
    removed = []
    for p in folder.glob(f".*{TMP_SUFFIX}"):
        parts = p.name.rsplit(".", 3)  # ["." + target name, pid, random, "tmp"]
        if len(parts) == 4 and parts[1].isdigit() and int(parts[1]) != os.getpid() and not _alive(int(parts[1])):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


@contextmanager
def atomic_path(path: Path, stage: str | None = None) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on any exit it is gone.
    ``stage`` names the moment for :func:`oodbench.core.progress.pause_point` (tests)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent not in _swept:  # once per folder and process
        sweep_temps(path.parent)
        _swept.add(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would make records unreadable to the rest of a team
    os.close(fd)
    try:
        yield tmp
        if stage:
            pause_point(stage)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes, stage: str | None = None) -> None:
    with atomic_path(path, stage) as tmp, open(tmp, "wb") as f:
        f.write(data)


def hash_path(path: Path) -> Path:
    """The file that holds a cache entry's hash and size."""
    return path.with_name(path.name + ".sha256")


def _digest(data: bytes) -> str:
    return f"{hashlib.sha256(data).hexdigest()} {len(data)}"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` as a checked cache entry: the file (atomic), then its hash file (atomic).
    A crash between the two leaves an entry without a hash, which :func:`load_checked` verifies by loading."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data, stage="write-cache")
    atomic_write_bytes(hash_path(path), (_digest(data) + "\n").encode())


def _problem(path: Path, data: bytes) -> str | None:
    """Why ``data`` (read from ``path``) does not match its hash file, or None."""
    side = hash_path(path)
    if not side.is_file():
        return None
    expected = side.read_text().split()
    if len(expected) != 2 or not expected[1].isdigit():
        return f"unreadable hash file {side.name}"
    if int(expected[1]) != len(data):
        return f"{len(data)} bytes, expected {expected[1]}"
    if hashlib.sha256(data).hexdigest() != expected[0]:
        return "content hash does not match"
    return None


def load_checked(path: Path, what: str) -> Any | None:
    """A cache entry written by :func:`atomic_torch_save`, or None when there is none. An entry whose size or
    hash does not match (or that does not load) gets a one-line warning, is deleted, and None is returned so
    that the caller rebuilds it. An entry without a hash file (written before hashes, or cut between the two
    renames) is accepted if it loads, and its hash file is written."""
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    data = path.read_bytes()
    problem = _problem(path, data)
    if problem is not None:  # a writer may be between its two renames: read once more
        data = path.read_bytes() if path.is_file() else b""
        problem = _problem(path, data)
    obj = None
    if problem is None:
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any decoding error means a damaged entry
            problem = f"does not load: {type(exc).__name__}"
    if problem is not None:
        warn(f"{what} cache entry {path} is damaged ({problem}); rebuilding it")
        path.unlink(missing_ok=True)
        hash_path(path).unlink(missing_ok=True)
        return None
    if not hash_path(path).is_file():
        atomic_write_bytes(hash_path(path), (_digest(data) + "\n").encode())
    return obj
