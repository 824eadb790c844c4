"""The deploy guide's smoke test, run against the local cloud through its public API, in both of its modes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.conftest import REPO, RunningCloud

pytestmark = pytest.mark.e2e

STEPS = ("health", "webhook", "upload", "job", "download", "webhook delivered")


def smoke(cloud: RunningCloud, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "local", "smoke", "--api", cloud.api_url, "--token", cloud.token("smoke-user")]
    return subprocess.run(
        [*command, *extra], cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ}, check=False
    )


def passed_steps(output: str) -> list[str]:
    return [
        line.split()[1] if line.split()[1:3] != ["webhook", "delivered"] else "webhook delivered"
        for line in output.splitlines()
        if line.startswith("ok ")
    ]


def test_the_smoke_test_passes_with_its_own_verifying_receiver(pipeline_cloud: RunningCloud) -> None:
    result = smoke(pipeline_cloud)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert tuple(passed_steps(result.stdout)) == STEPS, result.stdout
    assert "signature verified" in result.stdout and result.stdout.rstrip().endswith("passed")


def test_the_smoke_test_reads_the_delivery_log_for_a_receiver_it_does_not_run(pipeline_cloud: RunningCloud) -> None:
    class Accepting(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads the pipeline's delivery log, not this server's."""

    # Stands for a public receiver the operator gives: it accepts anything, the pipeline's log says it got through.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accepting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = smoke(pipeline_cloud, "--webhook-url", f"http://127.0.0.1:{server.server_address[1]}/hook")
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert tuple(passed_steps(result.stdout)) == STEPS, result.stdout
    assert "job.completed delivered, attempt 1, status 204" in result.stdout


def test_the_smoke_test_fails_at_the_first_step_that_does_not_work(pipeline_cloud: RunningCloud) -> None:
    command = [sys.executable, "-m", "local", "smoke", "--api", pipeline_cloud.api_url, "--token", "not-a-token"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "failed at: webhook" in result.stdout and "ok   health" in result.stdout
