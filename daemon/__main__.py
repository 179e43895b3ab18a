"""`python -m daemon` runs the meterd command line."""

import sys

from daemon.cli import main

sys.exit(main())
