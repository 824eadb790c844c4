"""A client of the public API, as a user's program would be: create an upload, send the file to the
presigned form, follow the job to a final state, download renditions. Standard library HTTP only."""

from __future__ import annotations

import http.client
import json
import mimetypes
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "REJECTED", "EXPIRED", "CANCELED", "DELETED"})
CHUNK_BYTES = 256 * 1024
CLOUD_START_TIMEOUT_SECONDS = 600  # a first start installs the layer, the SDK and the image requirements (cached after)
CLOUD_STOP_TIMEOUT_SECONDS = 30


@dataclass
class CloudProcess:
    """A local cloud running in a subprocess (tests and benchmarks start one so its moto server and threads stay
    apart from theirs), and what it wrote in its state directory once it was up."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    outputs: dict[str, Any]
    deployment: dict[str, Any]


def start_cloud_process(
    state_dir: Path,
    arguments: list[str],
    *,
    launcher: str = "local",
    cwd: Path | None = None,
    timeout_seconds: float = CLOUD_START_TIMEOUT_SECONDS,
) -> CloudProcess:
    """`python -m {launcher} up --state-dir {state_dir} {arguments}`, its output appended to `up.log` there; returns
    once it wrote `outputs.json`. RuntimeError with the log's end when it exits or does not come up in time."""
    state_dir.mkdir(parents=True, exist_ok=True)
    outputs_file = state_dir / "outputs.json"
    # A cloud killed on a slow stop leaves its outputs behind: read before the new one replaced them, they would
    # name the dead one's ports.
    outputs_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", launcher, "up", "--state-dir", str(state_dir), *arguments]
    log_path = state_dir / "up.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_seconds
    while not outputs_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_cloud_process(process)
            raise RuntimeError(f"the local cloud did not start ({process.returncode}):\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)
    outputs = json.loads(outputs_file.read_text())
    deployment = json.loads((state_dir / "deployment.json").read_text())
    return CloudProcess(process, state_dir, outputs, deployment)


def stop_cloud_process(process: subprocess.Popen[bytes], timeout: float = CLOUD_STOP_TIMEOUT_SECONDS) -> None:
    """Stop it as Ctrl-C does (it stops every worker and ffmpeg it started); killed if it takes over `timeout` s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Any
    headers: dict[str, str]


def request(method: str, url: str, token: str | None = None, payload: Any = None, timeout: float = 30) -> HttpResponse:
    """One JSON request; never raises on an HTTP status (callers assert on it)."""
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {"content-type": "application/json"} if data is not None else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            raw, status, response_headers = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as err:
        raw, status, response_headers = err.read(), err.code, dict(err.headers)
    try:
        body: Any = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        body = raw.decode(errors="replace")
    return HttpResponse(status, body, {k.lower(): v for k, v in response_headers.items()})


def content_type_of(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def post_form(
    url: str, fields: dict[str, str], path: Path, on_progress: Callable[[int, int], None] | None = None
) -> int:
    """multipart/form-data POST of every field, then `file`, streamed in chunks; returns the HTTP status."""
    boundary = uuid.uuid4().hex
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        f"Content-Type: {fields.get('Content-Type', content_type_of(path))}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size
    total = len(head) + size + len(tail)
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"the local client only posts to http:// URLs, got {url}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.putrequest("POST", parts.path or "/")
        connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        connection.putheader("Content-Length", str(total))
        connection.endheaders()
        connection.send(head)
        sent = len(head)
        with path.open("rb") as source:
            while chunk := source.read(CHUNK_BYTES):
                connection.send(chunk)
                sent += len(chunk)
                if on_progress:
                    on_progress(sent, total)
        connection.send(tail)
        response = connection.getresponse()
        response.read()
        if on_progress:
            on_progress(total, total)
        return response.status
    finally:
        connection.close()


class ApiClient:
    def __init__(self, api_url: str, token: str) -> None:
        self.api_url = api_url.rstrip("/") + "/"
        self.token = token

    def call(self, method: str, path: str, payload: Any = None) -> HttpResponse:
        return request(method, self.api_url + path.lstrip("/"), self.token, payload)

    def create_upload(self, path: Path, content_type: str | None = None) -> dict[str, Any]:
        body = {
            "filename": path.name,
            "contentType": content_type or content_type_of(path),
            "size": path.stat().st_size,
        }
        response = self.call("POST", "uploads", body)
        if response.status != 201:
            raise ApiError(response.status, response.body)
        return response.body

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.call("GET", f"jobs/{job_id}")
        if response.status != 200:
            raise ApiError(response.status, response.body)
        return response.body

    def register_webhook(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        """`POST /webhooks`: the endpoint, with its secret (shown only in this answer)."""
        response = self.call("POST", "webhooks", {"url": url, **({"events": events} if events else {})})
        if response.status != 201:
            raise ApiError(response.status, response.body)
        return response.body

    def delete_webhook(self, endpoint_id: str) -> None:
        response = self.call("DELETE", f"webhooks/{endpoint_id}")
        if response.status != 204:
            raise ApiError(response.status, response.body)

    def webhook_deliveries(self, endpoint_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """`GET /webhooks/{id}/deliveries`: recent attempts, newest first."""
        response = self.call("GET", f"webhooks/{endpoint_id}/deliveries?limit={limit}")
        if response.status != 200:
            raise ApiError(response.status, response.body)
        return list(response.body["deliveries"])

    def follow(
        self,
        job_id: str,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        timeout_seconds: float = 300,
        interval_seconds: float = 0.5,
    ) -> dict[str, Any]:
        """Polls GET /jobs/{id} until the job is final or the timeout passes; returns the last job read."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            job = self.job(job_id)
            if on_update:
                on_update(job)
            if job["status"] in FINAL_STATUSES or time.monotonic() > deadline:
                return job
            time.sleep(interval_seconds)


def download(url: str, destination: Path) -> Path:
    with urllib.request.urlopen(url, timeout=60) as response, destination.open("wb") as sink:
        while chunk := response.read(CHUNK_BYTES):
            sink.write(chunk)
    return destination
