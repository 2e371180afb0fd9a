"""``python -m wac_extractor``: the headless command line (plan, run, status)."""

import sys

from .core.cli import main

sys.exit(main())
