"""A smoke test of a deployed pipeline, through its public API only: health, a webhook, an upload, the job to its
end, every rendition downloaded and read back with ffprobe, and the job's webhook delivered.

It runs against any `apiUrl` with a real bearer token (`python -m local smoke --api URL --token TOKEN`), the local
cloud's included. A deployed stack refuses webhook URLs on private addresses, so against AWS pass a public receiver
(`--webhook-url`): the pipeline's own delivery log (`GET /webhooks/{id}/deliveries`) then shows whether it got through.
Against a local cloud, a verifying receiver on 127.0.0.1 is started and registered instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local.cli.client import ApiClient, ApiError, download, post_form, request
from local.cli.receiver import WebhookReceiver, deregister, listen_and_register
from local.cli.samples import make_sample_video, probe_media

LOCAL_HOSTS = ("127.0.0.1", "localhost")
DELIVERED = "delivered"
GIVEN_UP = ("dead-lettered", "endpoint-disabled")


class SmokeFailed(RuntimeError):
    """A step did not give what a working deployment gives."""


@dataclass
class Step:
    name: str
    detail: str = ""
    seconds: float = 0.0
    ok: bool = False


@dataclass
class SmokeRun:
    steps: list[Step] = field(default_factory=list)
    echo: Callable[[Step], None] = lambda step: None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step(name)
        started = time.monotonic()
        try:
            yield step
            step.ok = True
        except (SmokeFailed, ApiError, OSError) as err:
            step.detail = f"{step.detail} {err}".strip()
            raise
        finally:
            step.seconds = time.monotonic() - started
            self.steps.append(step)
            self.echo(step)


def _wait_for_delivery(client: ApiClient, endpoint_id: str, job_id: str, timeout: float) -> dict[str, Any]:
    """The pipeline's record of the job's webhook reaching the endpoint (its delivery log)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        attempts = [a for a in client.webhook_deliveries(endpoint_id, limit=20) if a.get("jobId") == job_id]
        if attempts:
            last = attempts[0]
            if any(a["outcome"] == DELIVERED for a in attempts):
                return next(a for a in attempts if a["outcome"] == DELIVERED)
            if last["outcome"] in GIVEN_UP:
                break
        time.sleep(1)
    raise SmokeFailed(f"no delivered webhook for {job_id} (last attempt: {last})")


class _Smoke:
    """The steps, in order, sharing what each learns (the endpoint, the job)."""

    def __init__(self, api_url: str, token: str, work_dir: Path, webhook_url: str | None, seconds: float) -> None:
        self.api_url = api_url
        self.client = ApiClient(api_url, token)
        self.work_dir = work_dir
        self.webhook_url = webhook_url
        self.seconds = seconds
        self.receiver: WebhookReceiver | None = None
        self.endpoint_id: str | None = None
        self.job_id = ""
        self.job: dict[str, Any] = {}

    def health(self, step: Step) -> None:
        answer = request("GET", f"{self.api_url}health")
        step.detail = f"GET /health → {answer.status}"
        if answer.status != 200:
            raise SmokeFailed("the API is not healthy")

    def webhook(self, step: Step) -> None:
        if self.webhook_url:
            self.endpoint_id = self.client.register_webhook(self.webhook_url)["id"]
            step.detail = f"{self.webhook_url} registered as {self.endpoint_id}"
        elif urlsplit(self.api_url).hostname in LOCAL_HOSTS:
            self.receiver = listen_and_register(self.client)
            self.endpoint_id = self.receiver.endpoint_id
            step.detail = f"local receiver {self.receiver.url} registered as {self.endpoint_id}"
        else:
            raise SmokeFailed("a deployed stack needs --webhook-url (a public receiver; private addresses are refused)")

    def upload(self, step: Step) -> None:
        sample = make_sample_video(self.work_dir / "smoke-720p.mp4", width=1280, height=720, seconds=self.seconds)
        created = self.client.create_upload(sample)
        status = post_form(created["upload"]["url"], created["upload"]["fields"], sample)
        self.job_id = str(created["jobId"])
        step.detail = f"job {self.job_id}: the form answered {status}"
        if status not in (200, 201, 204):
            raise SmokeFailed("the upload form was refused")

    def follow(self, step: Step, timeout: float) -> None:
        self.job = job = self.client.follow(self.job_id, timeout_seconds=timeout)
        step.detail = f"{job['status']}: " + ", ".join(f"{r['name']} {r['status']}" for r in job["renditions"])
        if job["status"] != "COMPLETED":
            raise SmokeFailed(f"the job ended {job['status']} ({job.get('error')})")

    def download(self, step: Step) -> None:
        read_back = []
        for rendition in [r for r in self.job["renditions"] if r["status"] == "COMPLETED"]:
            probed = probe_media(download(rendition["url"], self.work_dir / f"{rendition['name']}.mp4"))
            read_back.append(f"{rendition['name']} {probed['width']}x{probed['height']}")
            if probed["height"] != rendition["height"]:
                raise SmokeFailed(f"{rendition['name']}: {probed['height']} lines, the job says {rendition['height']}")
        if not read_back:
            raise SmokeFailed("no rendition to download")
        step.detail = ", ".join(read_back)

    def delivered(self, step: Step) -> None:
        if self.receiver is not None:
            delivery = self.receiver.wait_for(lambda d: d.concerns(self.job_id), 60)
            if delivery is None or not delivery.valid:
                raise SmokeFailed("no verified webhook reached the local receiver")
            step.detail = f"{delivery.event_type}, signature verified"
            return
        assert self.endpoint_id is not None
        attempt = _wait_for_delivery(self.client, self.endpoint_id, self.job_id, 120)
        step.detail = f"{attempt['event']} delivered, attempt {attempt['attempt']}, status {attempt['statusCode']}"

    def clean_up(self) -> None:
        if self.receiver is not None:
            deregister(self.client, self.receiver)
            self.receiver.stop()
        elif self.endpoint_id is not None:
            self.client.delete_webhook(self.endpoint_id)


def run_smoke(
    api_url: str,
    token: str,
    work_dir: Path,
    *,
    webhook_url: str | None = None,
    seconds: float = 2.0,
    timeout: float = 600,
    echo: Callable[[Step], None] = lambda step: None,
) -> SmokeRun:
    """Runs every step in order, stopping at the first that fails; the run says which passed."""
    smoke = _Smoke(api_url if api_url.endswith("/") else f"{api_url}/", token, work_dir, webhook_url, seconds)
    run = SmokeRun(echo=echo)
    steps: list[tuple[str, Callable[[Step], None]]] = [
        ("health", smoke.health),
        ("webhook", smoke.webhook),
        ("upload", smoke.upload),
        ("job", lambda step: smoke.follow(step, timeout)),
        ("download", smoke.download),
        ("webhook delivered", smoke.delivered),
    ]
    try:
        for name, action in steps:
            with run.step(name) as step:
                action(step)
    except (SmokeFailed, ApiError, OSError):
        pass
    finally:
        smoke.clean_up()
    return run
