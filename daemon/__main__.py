"""`python -m daemon` runs the meterd command line."""

import sys

from daemon.cli.main import main

sys.exit(main())
