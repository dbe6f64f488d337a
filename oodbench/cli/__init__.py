"""The command line (the top stage): thin Typer commands over the stages below and the one error boundary.
May import every other subpackage; nothing imports it."""

from __future__ import annotations

from oodbench.cli.main import app, main

__all__ = ["app", "main"]
