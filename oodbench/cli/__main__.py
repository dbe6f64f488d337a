"""``python -m oodbench.cli``: the same entry point as the ``oodbench`` command."""

import sys

from oodbench.cli.main import main

if __name__ == "__main__":  # not when a DataLoader worker (forkserver/spawn) imports it as __mp_main__
    sys.exit(main())
