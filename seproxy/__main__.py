"""``python -m seproxy`` runs the command line."""

import sys

from seproxy.cli import main

sys.exit(main())
