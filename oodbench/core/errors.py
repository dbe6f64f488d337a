"""Errors oodbench reports as one line (the CLI's error boundary turns them into exit codes)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


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
        super().__init__(f"unknown {kind} {name!r}; {lead}: {', '.join(hint)}{more} (see `oodbench list {kind}s`)")
        self.kind, self.name, self.choices = kind, name, choices


class DataNotFoundError(UsageError):
    """A dataset whose files are not under the data root (and may not be downloaded)."""


class ConfigError(UsageError):
    """A malformed file the user wrote (``benchmarks.yaml``, ``oodbench.yaml``): the message starts ``FILE:LINE:``."""


class CorruptFileError(UsageError):
    """A file oodbench reads (dataset file, checkpoint) that is damaged, cut short or of the wrong kind."""

    def __init__(self, what: str, path: object, exc: BaseException | str, hint: str):
        problem = exc if isinstance(exc, str) else describe(exc)
        super().__init__(f"{what} {str(path)!r} is damaged or not what it should be ({problem}); {hint}")
        self.path = path


class Interrupted(BaseException):
    """Ctrl-C (SIGINT), raised by the CLI's signal handler (exit 130). A ``BaseException`` like
    ``KeyboardInterrupt``, so no ``except Exception`` swallows it and ``finally`` blocks remove temporary files;
    a class of its own, so that no library turns it into something else on the way up."""

    exit_code = 130
    what = "interrupted (Ctrl-C)"


class Terminated(Interrupted):
    """SIGTERM, raised by the CLI's signal handler (exit 143)."""

    exit_code = 143
    what = "terminated (SIGTERM)"


class NameConflictError(UsageError):
    """A name that two or more plugins register: using it is an error until all but one are disabled."""

    def __init__(self, kind: str, name: str, owners: Iterable[str]):
        owners = list(owners)
        count = "two" if len(owners) == 2 else str(len(owners))
        named = ", ".join(repr(o) for o in owners[:-1]) + f" and {owners[-1]!r}"
        super().__init__(
            f"{kind} {name!r} is registered by {count} plugins: {named}; disable one with --disable-plugin NAME"
        )
        self.kind, self.name, self.owners = kind, name, owners


class PluginError(OodbenchError):
    """A plugin that breaks the registry (e.g. registers an object without a name)."""


class PluginFault(OodbenchError):
    """Plugin code (a dataset's ``load``, a backbone's ``build``, ``resolve``) raised an ordinary exception.

    Raised by :func:`oodbench.plugins.plugin_code`, chained to the original exception.
    """

    def __init__(self, message: str, kind: str = "", name: str = "", owner: str = ""):
        super().__init__(message)
        self.kind, self.name, self.owner = kind, name, owner


class DetectorError(OodbenchError):
    """A detector that produced invalid output (NaN/inf scores, wrong shape)."""


class RunFailed(OodbenchError):
    """Some detectors of a run failed; the others' records were written and printed (exit code 1)."""


def describe(exc: BaseException) -> str:
    """``ExcType: message`` on one line (only the message's first line)."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" + (" …" if len(lines) > 1 else "")


@contextmanager
def plugin_code(kind: str, name: str, owner: str) -> Iterator[None]:
    """Run plugin code: an ordinary exception becomes a one-line :class:`PluginFault` (chained).

    ``OodbenchError`` (a plugin's own one-line error) and ``KeyboardInterrupt`` pass through.
    """
    try:
        yield
    except OodbenchError:
        raise
    except Exception as exc:
        raise PluginFault(f"{kind} {name!r} (plugin {owner}) failed: {describe(exc)}", kind, name, owner) from exc
