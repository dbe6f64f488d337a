"""Leaderboards CI can check: a suite's records (JSON only, no per-sample scores) committed under
``leaderboards/<suite>/`` beside LEADERBOARD.md, and ``oodbench leaderboard SUITE --check FILE``, which
renders the section from them — no run, nothing that depends on the CPU — and says which section is stale,
as ``black --check`` does (issue 13)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from oodbench.core.atomic import atomic_path

BOARDS = Path("leaderboards")
KEPT = ("*.json",)  # records and the persisted comparisons; never the per-sample scores


def markers(name: str) -> tuple[str, str]:
    return f"<!-- oodbench:leaderboard {name} -->", f"<!-- /oodbench:leaderboard {name} -->"


def section_of(text: str, name: str) -> str | None:
    """The body between a suite's markers in a Markdown text (None when the section is absent)."""
    start, end = markers(name)
    m = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    return m.group(1) if m else None


def publish(results: Path, name: str, boards: Path = BOARDS) -> Path:
    """Copy suite ``name``'s record files from ``results/name`` to ``boards/name`` (replacing what was there)."""
    src, dst = Path(results) / name, Path(boards) / name
    files = sorted(p for pattern in KEPT for p in src.rglob(pattern))
    staging = dst.with_name(dst.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    for p in files:
        target = staging / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(p, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    staging.rename(dst)
    return dst


def stale(path: Path, name: str, rendered: str) -> str | None:
    """None when ``path``'s section for suite ``name`` equals ``rendered``; else one line saying what differs
    and the command that regenerates it."""
    regenerate = f"oodbench leaderboard {name} --results {BOARDS} --write {path}"
    if not Path(path).is_file():
        return f"{path} not found; write it with `{regenerate}`"
    body = section_of(Path(path).read_text(), name)
    if body is None:
        return f"{path} has no `{name}` section; add it with `{regenerate}`"
    if body.strip() != rendered.strip():
        old, new = body.strip().splitlines(), rendered.strip().splitlines()
        first = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        return (
            f"{path}: section `{name}` is stale (differs from its committed records from line {first + 1} of the "
            f"section); regenerate it with `{regenerate}`"
        )
    return None
