"""bench/api_speed.py's in-process phase runs the api handler as the bench measures it (a run that broke unnoticed
once: the handler's metrics had no namespace). In a subprocess: the phase sets the handler's environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PHASE = """
import json
from bench.api_speed import handler_phase
run = handler_phase(5, "WARNING", False)
print(json.dumps({route: len(samples.seconds) for route, samples in run.samples.items()}))
"""


def test_the_handler_phase_times_each_route() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PHASE], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"POST /uploads": 5, "GET /jobs/{id}": 5}
