"""Errors oodbench reports as one line (the CLI's error boundary turns them into exit codes)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OodbenchError(Exception):
    """A known failure at run time: printed as one line, exit code 1."""

    exit_code = 1


class UsageError(OodbenchError):
    """Bad input from the user (unknown name, missing path, bad option): exit code 2."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A name that no registered plugin provides; the message lists the closest valid choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        choices = sorted(choices)
        close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
        hint = close or choices[:8]
        more = "" if close or len(choices) <= 8 else ", …"
        lead = "did you mean" if close else "choose from"
        super().__init__(
            f"unknown {kind} {name!r}; {lead}: {', '.join(hint)}{more} "
            f"(see `oodbench list {kind}s`)"
        )
        self.kind, self.name, self.choices = kind, name, choices


class DataNotFoundError(UsageError):
    """A dataset whose files are not under the data root (and may not be downloaded)."""


class PluginError(OodbenchError):
    """A plugin that breaks the registry (e.g. two plugins registering one name)."""


class DetectorError(OodbenchError):
    """A detector that produced invalid output (NaN/inf scores, wrong shape)."""


class RunFailed(OodbenchError):
    """Some detectors of a run failed; the others' records were written and printed (exit code 1)."""
