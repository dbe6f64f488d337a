"""C libraries' own complaints kept off the terminal while image files are decoded."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def c_stderr_silenced() -> Iterator[None]:
    """libpng/libjpeg print their complaints about a broken file straight to file descriptor 2; the one-line
    warning about skipped files says it instead (``OODBENCH_DEBUG=1`` keeps the decoders' own lines)."""
    if os.environ.get("OODBENCH_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
