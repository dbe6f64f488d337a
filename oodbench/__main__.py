"""``python -m oodbench``: the same entry point as the ``oodbench`` command."""

import sys

from .cli import main

sys.exit(main())
