"""Suites that read datasets the user declares (``config:`` in benchmarks.yaml names the template to copy)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from .errors import UnknownNameError, UsageError

#: how a user declares the datasets a suite's ``config:`` template names
DECLARE = "to ./oodbench.yaml (or point $OODBENCH_CONFIG at it) and set OODBENCH_DATA to the data it names"


def require_declared(suite: dict[str, Any], name: str) -> None:
    """One line, before any run, when a suite with a ``config:`` template names datasets nobody declared
    (the imagenet suite without an ``oodbench.yaml``): which ones, and how to declare them."""
    template = suite.get("config")
    if not template:
        return
    from .plugins import registries

    known = {entry.name for entry in registries().datasets}
    wanted = {n for e in suite.get("runs", []) for n in (e["id"], *e.get("oods", []), e.get("tune_out")) if n}
    missing = sorted(wanted - known)
    if missing:
        raise UsageError(
            f"suite {name!r} reads datasets you declare, and {', '.join(missing)} are not declared: copy {template} "
            + DECLARE
        )


def _declared_by_templates(path: Path) -> dict[str, tuple[str, str]]:
    """{dataset: (suite, template)} for every dataset a suite's ``config:`` template in ``path`` declares
    (nothing when the files are absent or unreadable: this only adds a hint to an error)."""
    import yaml

    try:
        suites = (yaml.safe_load(path.read_text()) or {}).get("suites") or {}
        found: dict[str, tuple[str, str]] = {}
        for suite, body in suites.items():
            template = (body or {}).get("config")
            if template and (path.parent / template).is_file():
                declared = (yaml.safe_load((path.parent / template).read_text()) or {}).get("datasets") or {}
                found |= {name: (suite, template) for name in declared if name not in found}
        return found
    except (OSError, yaml.YAMLError, AttributeError):
        return {}


def explain_unknown_dataset(exc: UnknownNameError, path: Path = Path("benchmarks.yaml")) -> UsageError:
    """``exc`` with a way out when a suite's template declares the name (or one close to it): the datasets of
    the imagenet suite exist only once the user declares them in ``oodbench.yaml``."""
    templates = _declared_by_templates(path)
    how = f"copy it {DECLARE}"
    if exc.name in templates:
        suite, template = templates[exc.name]
        return UsageError(f"unknown dataset {exc.name!r}: the {suite!r} suite's template {template} declares it; {how}")
    close = difflib.get_close_matches(exc.name, list(templates), n=1, cutoff=0.6)
    if close:
        suite, template = templates[close[0]]
        return UsageError(f"{exc} — or {close[0]!r}, which the {suite!r} suite's template {template} declares: {how}")
    return exc
