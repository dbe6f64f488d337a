"""The ``oodbench`` command line: thin Typer commands over pure functions, one error boundary.

Known errors print one line to stderr (exit 2 for bad input, 1 for run-time failures);
set ``OODBENCH_DEBUG=1`` for the traceback. torch loads only when a command needs it.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer

# importing the command modules registers their commands, in this order in --help
from . import cli_run, cli_suites, cli_info  # noqa: F401, I001  # isort: skip
from .cli_app import DISABLE_ENV, app

__all__ = ["app", "main"]


def _one_line_plugin_warnings(show):
    """A ``showwarning`` that prints a PluginLoadWarning as one line (``oodbench: warning: …``)."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        from .plugins import PluginLoadWarning

        if issubclass(category, PluginLoadWarning):
            print(f"oodbench: warning: {message}", file=file or sys.stderr, flush=True)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def main(argv: list[str] | None = None) -> int:
    """Entry point with the one error boundary: known errors → one line on stderr + exit code."""
    from .errors import OodbenchError

    debug = bool(os.environ.get("OODBENCH_DEBUG"))
    if not debug:
        warnings.filterwarnings("default", category=UserWarning, module="oodbench")
    show, disabled = warnings.showwarning, os.environ.get(DISABLE_ENV)
    warnings.showwarning = _one_line_plugin_warnings(show)
    try:
        rc = app(args=argv, standalone_mode=False)  # a command's typer.Exit(n) comes back as n
    except OodbenchError as exc:
        if debug:
            raise
        hint = " (set OODBENCH_DEBUG=1 for the traceback)" if exc.exit_code == 1 else ""
        typer.echo(f"oodbench: error: {exc}{hint}", err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted (finished records are kept)", err=True)
        return 130
    except typer.TyperException as exc:  # usage errors from option parsing (exit 2)
        exc.show()  # type: ignore[attr-defined]
        return exc.exit_code
    finally:
        warnings.showwarning = show
        if os.environ.get(DISABLE_ENV) != disabled:  # --disable-plugin: undo for in-process callers (tests)
            from .plugins import reset

            if disabled is None:
                os.environ.pop(DISABLE_ENV, None)
            else:
                os.environ[DISABLE_ENV] = disabled
            reset()
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
