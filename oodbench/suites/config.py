"""Suites that read datasets the user declares (``config:`` in benchmarks.yaml names the template to copy)."""

from __future__ import annotations

from typing import Any

from oodbench.core.errors import UsageError
from oodbench.core.userconfig import DECLARE


def require_declared(suite: dict[str, Any], name: str) -> None:
    """One line, before any run, when a suite with a ``config:`` template names datasets nobody declared
    (the imagenet suite without an ``oodbench.yaml``): which ones, and how to declare them."""
    template = suite.get("config")
    if not template:
        return
    from oodbench.plugins.manager import registries

    known = {entry.name for entry in registries().datasets}
    wanted = {n for e in suite.get("runs", []) for n in (e["id"], *e.get("oods", []), e.get("tune_out")) if n}
    missing = sorted(wanted - known)
    if missing:
        raise UsageError(
            f"suite {name!r} reads datasets you declare, and {', '.join(missing)} are not declared: copy {template} "
            + DECLARE
        )
