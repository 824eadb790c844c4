"""Entry point of `python -m local`."""

import sys

from local.cli import main

sys.exit(main())
