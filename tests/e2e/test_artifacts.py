"""The local cloud runs exactly what `pulumi up` ships: each function from its own artifact, on an isolated
interpreter, so a handler that needs something its artifact lacks fails here as it would in Lambda."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.cli.client import request
from local.cloud import free_port
from tests.e2e.conftest import E2E_LAYER, REPO, RunningCloud, wait_for

pytestmark = pytest.mark.e2e

CHECK_TIMEOUT_SECONDS = 900  # a first run installs the layer, the SDK and the image's requirements


def test_every_function_imports_and_answers_from_its_own_artifact(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "local", "check-artifacts", "--state-dir", str(tmp_path)]
    command += ["--config-file", str(E2E_LAYER), "--port", str(free_port())]
    result = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_SECONDS,
        env={**os.environ},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.split()[-1:] == ["ok"]}
    kinds = {name.split("-")[0]: row[1] for name, row in rows.items()}
    assert kinds == {"api": "GET", "ingest": "sqs", "transcode": "sqs", "tracker": "schedule"} | {
        "mediaconvert": "sqs",
        "webhooks": "sqs",
        "images": "sqs",
        "audio": "sqs",
        "packager": "sqs",
    }, result.stdout
    assert "10 of 10 functions answered from their own artifacts" in result.stdout


def test_a_handler_importing_what_only_the_virtualenv_has_fails_as_lambda_would(fixture_cloud: RunningCloud) -> None:
    response = request("GET", f"{fixture_cloud.api_url}isolated")
    assert (response.status, response.body) == (500, {"message": "Internal Server Error"})
    log = (
        fixture_cloud.state_dir
        / "logs"
        / f"{fixture_cloud.resource_ids('aws:lambda/function:Function', 'isolated-fn')[0]}.log"
    )
    expected = "Runtime.ImportModuleError: Unable to import module 'fixture_handlers.isolation': No module named 'yaml'"
    wait_for(lambda: log.exists() and expected in log.read_text(), 10, message="the import error in the function's log")
