"""``python -m pft`` is the ``pft`` command."""

import sys

from pft.cli import main

if __name__ == "__main__":
    sys.exit(main())
