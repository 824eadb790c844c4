"""`python -m tests.e2e.faulty_cloud up ...`: the local cloud's own `up`, with the test-only fault injector installed.

The injector wraps the local cloud's runtime classes in this process before `local`'s normal entry point runs, so no
production code path changes; the faults to inject are read at run time from `faults.json` in the state directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from local.cli.commands import main
from tests.e2e.faults import install


def state_dir_of(argv: list[str]) -> Path:
    """The `--state-dir` the command line gives (the cloud's default, `.local`, otherwise)."""
    for index, argument in enumerate(argv):
        if argument == "--state-dir" and index + 1 < len(argv):
            return Path(argv[index + 1])
        if argument.startswith("--state-dir="):
            return Path(argument.split("=", 1)[1])
    return Path(".local")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    install(state_dir_of(arguments))
    sys.exit(main(arguments))
