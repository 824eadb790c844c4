"""Entry point of `python -m local`."""

import sys

from local.cli.commands import main

sys.exit(main())
