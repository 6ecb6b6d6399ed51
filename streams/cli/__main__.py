"""`python -m streams.cli`: the command line, as the `ceasefire-monitor` script runs it."""

import sys

from streams.cli import main

sys.exit(main())
