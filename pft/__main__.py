"""``python -m pft`` is the ``pft`` command."""

import sys

from pft.cli import main

sys.exit(main())
