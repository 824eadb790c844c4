"""One local cloud per test session, run as `python -m local up` in a subprocess on a free port.

A subprocess keeps the cloud's moto server and threads away from the function tests' `mock_aws`, which patches
botocore for the whole process it runs in.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.cli.client import CLOUD_STOP_TIMEOUT_SECONDS, ApiClient, start_cloud_process, stop_cloud_process
from local.cloud import free_port
from local.engine.emulator import Emulator
from local.runtime.auth import AuthorizerSettings, SigningKey, issue_token
from tests.media_samples import make_video

REPO = Path(__file__).resolve().parents[2]
FIXTURE_PROGRAM = Path(__file__).resolve().parent / "fixture_program"
E2E_LAYER = Path(__file__).resolve().parent / "Pulumi.e2e.yaml"
# The e2e layer's ladder (Pulumi.e2e.yaml), display sizes of a 640x360 source.
LADDER = {"240p": (426, 240), "360p": (640, 360)}
# The session's two engine jobs: a Lambda one (under the layer's 45 s MediaConvert threshold) and a MediaConvert one
# (over it; 10 fps keeps the encodes short). Each ends in a tail under 1 s after its last 2 s boundary, which the
# packager appends to the last whole segment.
LAMBDA_SECONDS = 6.5
MEDIACONVERT_SECONDS = 46.6
FPS_BY_ENGINE = {"lambda": 30, "mediaconvert": 10}


@dataclass
class RunningCloud:
    """A local cloud started for the session, and what a test may read about it."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    outputs: dict[str, Any]
    deployment: dict[str, Any]

    @property
    def api_url(self) -> str:
        return str(self.outputs["apiUrl"])

    def token(self, sub: str, ttl: int = 3600) -> str:
        return issue_token(SigningKey.load_or_create(self.state_dir), AuthorizerSettings.load(self.state_dir), sub, ttl)

    def client(self, sub: str) -> ApiClient:
        return ApiClient(self.api_url, self.token(sub))

    def emulator(self) -> Emulator:
        """boto3 clients for the cloud's moto server: for fault injection and for reading state, never for setup."""
        return Emulator.attach(self.deployment["emulatorEndpoint"], self.deployment["region"])

    def workers(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "workers.json").read_text())

    def resource_ids(self, token: str, name_contains: str = "") -> list[str]:
        return [r["id"] for r in self.deployment["resources"] if r["type"] == token and name_contains in r["name"]]

    def log_tail(self, lines: int = 60) -> str:
        log = self.state_dir / "up.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""


def start_cloud(project_dir: Path, state_dir: Path, layers: list[Path]) -> RunningCloud:
    arguments = ["--project-dir", str(project_dir), "--port", str(free_port())]
    for layer in layers:
        arguments += ["--config-file", str(layer)]
    started = start_cloud_process(state_dir, arguments, cwd=REPO)
    return RunningCloud(started.process, started.state_dir, started.outputs, started.deployment)


def stop_cloud(process: subprocess.Popen[bytes], timeout: float = CLOUD_STOP_TIMEOUT_SECONDS) -> None:
    stop_cloud_process(process, timeout)


@pytest.fixture(scope="session")
def pipeline_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    """The media-pipeline program itself, with the e2e config layer."""
    cloud = start_cloud(REPO, tmp_path_factory.mktemp("pipeline-cloud"), [E2E_LAYER])
    yield cloud
    stop_cloud(cloud.process)


@pytest.fixture(scope="session")
def fixture_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    """The engine's own small program (tests/e2e/fixture_program)."""
    cloud = start_cloud(FIXTURE_PROGRAM, tmp_path_factory.mktemp("fixture-cloud"), [])
    yield cloud
    stop_cloud(cloud.process)


def wait_for(condition: Any, timeout: float, interval: float = 0.25, message: str = "condition") -> Any:
    """Polls `condition()` until it returns something truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def long_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source the e2e layer routes to MediaConvert."""
    folder = tmp_path_factory.mktemp("mediaconvert")
    return make_video(folder / "long.mp4", width=640, height=360, seconds=MEDIACONVERT_SECONDS, fps=10)


@pytest.fixture(scope="session")
def engine_jobs(pipeline_cloud: RunningCloud, long_source: Path) -> dict[str, dict[str, Any]]:
    """A clip for each engine uploaded side by side by one user, followed to their final states (shared by the
    engine and playback tests: the MediaConvert encode is the session's longest)."""
    from tests.e2e.test_pipeline import follow, start_upload  # the helpers import this module

    short = make_video(long_source.with_name("short.mp4"), width=640, height=360, seconds=LAMBDA_SECONDS)
    client = pipeline_cloud.client("engines")

    def run(path: Path) -> dict[str, Any]:
        return follow(client, start_upload(client, path))

    with ThreadPoolExecutor(max_workers=2) as pool:
        short_job, long_job = pool.map(run, [short, long_source])
    return {"short": short_job, "long": long_job}
