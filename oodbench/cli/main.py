"""The ``oodbench`` command line: thin Typer commands over pure functions, one error boundary.

Known errors print one line to stderr (exit 2 for bad input, 1 for run-time failures);
set ``OODBENCH_DEBUG=1`` for the traceback. torch loads only when a command needs it.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import typer

# importing the command modules registers their commands, in this order in --help
from oodbench.cli import run as cli_run, train as cli_train  # noqa: F401, I001  # isort: skip
from oodbench.cli import suites as cli_suites, info as cli_info  # noqa: F401, I001  # isort: skip
from oodbench.cli.app import DISABLE_ENV, app

__all__ = ["app", "main"]


def _one_line_plugin_warnings(show):
    """A ``showwarning`` that prints a PluginLoadWarning as one line (``oodbench: warning: …``)."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        from oodbench.plugins.manager import PluginLoadWarning

        if issubclass(category, PluginLoadWarning):
            print(f"oodbench: warning: {message}", file=file or sys.stderr, flush=True)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def _usage_line(exc: typer.TyperException) -> str:
    """An option-parsing error (bad value, missing argument, unknown option) as one line."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"oodbench: error: {exc.format_message()}{where}"


def _raise(signum, frame) -> None:
    import signal

    from oodbench.core.errors import Interrupted, Terminated

    raise Terminated() if signum == signal.SIGTERM else Interrupted()


@contextmanager
def _signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`~oodbench.core.errors.Interrupted` / ``Terminated`` while a command runs (main
    thread only; a SIGINT that the parent set to be ignored stays ignored)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, handler in previous.items():
        if handler in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """Entry point with the one error boundary: known errors → one line on stderr + exit code.

    Ctrl-C → exit 130, SIGTERM → exit 143 (both one line; temporary files are removed on the way out and
    finished records are kept); a file-system error (permission, disk full) → one line, exit 1."""
    from oodbench.core.errors import Interrupted, OodbenchError

    debug = bool(os.environ.get("OODBENCH_DEBUG"))
    if not debug:
        warnings.filterwarnings("default", category=UserWarning, module="oodbench")
    show, disabled = warnings.showwarning, os.environ.get(DISABLE_ENV)
    warnings.showwarning = _one_line_plugin_warnings(show)
    try:
        with _signals():
            code = app(args=argv, prog_name="oodbench", standalone_mode=False)
        return code if isinstance(code, int) else 0  # typer returns the code of a typer.Exit
    except OodbenchError as exc:
        if debug:
            raise
        hint = " (set OODBENCH_DEBUG=1 for the traceback)" if exc.exit_code == 1 else ""
        typer.echo(f"oodbench: error: {exc}{hint}", err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("oodbench: aborted", err=True)
        return 130
    except Interrupted as exc:
        typer.echo(f"oodbench: {exc.what}; finished records are kept, nothing half-written", err=True)
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors from option parsing (exit 2)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `oodbench` alone: the help text
            exc.show()  # type: ignore[attr-defined]
        else:
            typer.echo(_usage_line(exc), err=True)
        return exc.exit_code
    except OSError as exc:
        if debug:
            raise
        typer.echo(f"oodbench: error: {exc} (set OODBENCH_DEBUG=1 for the traceback)", err=True)
        return 1
    finally:
        warnings.showwarning = show
        if os.environ.get(DISABLE_ENV) != disabled:  # --disable-plugin: undo for in-process callers (tests)
            from oodbench.plugins.manager import reset

            if disabled is None:
                os.environ.pop(DISABLE_ENV, None)
            else:
                os.environ[DISABLE_ENV] = disabled
            reset()


if __name__ == "__main__":
    sys.exit(main())
