"""MediaConvert as the tests hold the program to it: the API model botocore ships and the service's output naming
rules (shared with the local cloud's stand-in: `local/mediaconvert/model.py`, `local/mediaconvert/outputs/naming.py`),
and a fake service behind a real boto3 client.

moto 5.2 has no MediaConvert backend, so `FakeMediaConvert` answers on botocore's `before-send` hook: the client
still validates and serializes every request against the real API model (rest-json, `POST /2017-08-29/jobs`), and
the fake reads the wire body, as a stand-in service would.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse

from local.mediaconvert.model import create_job_errors
from local.mediaconvert.outputs.naming import output_group_details

__all__ = ["FakeMediaConvert", "create_job_errors", "output_group_details", "state_change_event"]

ACCOUNT = "123456789012"
REGION = "us-east-1"
TOKEN_WINDOW_MS = 60_000  # MediaConvert returns the first job for a repeated ClientRequestToken within a minute


def state_change_event(
    request: dict[str, Any], status: str, *, mediaconvert_job_id: str, duration_ms: int = 10_000
) -> dict[str, Any]:
    """A "MediaConvert Job State Change" event, shaped like the fixtures, for a job submitted with `request`."""
    detail: dict[str, Any] = {
        "timestamp": 1_795_000_130_000,
        "accountId": ACCOUNT,
        "queue": request["Queue"],
        "jobId": mediaconvert_job_id,
        "status": status,
        "userMetadata": dict(request["UserMetadata"]),
    }
    if status == "COMPLETE":
        detail["outputGroupDetails"] = output_group_details(request["Settings"], duration_ms)
    return {
        "version": "0",
        "id": secrets.token_hex(8),
        "detail-type": "MediaConvert Job State Change",
        "source": "aws.mediaconvert",
        "account": ACCOUNT,
        "time": "2026-11-22T10:02:10Z",
        "region": REGION,
        "resources": [f"arn:aws:mediaconvert:{REGION}:{ACCOUNT}:jobs/{mediaconvert_job_id}"],
        "detail": detail,
    }


# --- a fake service --------------------------------------------------------------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


@dataclass
class FakeMediaConvert:
    """CreateJob (with ClientRequestToken idempotency), GetJob, ListJobs and CancelJob, in memory, on a real client's
    wire."""

    now_ms: int = 1_795_000_000_000
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    create_requests: list[dict[str, Any]] = field(default_factory=list)
    """Every CreateJob body received, as sent on the wire (camelCase member names)."""
    next_errors: list[tuple[int, str, str]] = field(default_factory=list)
    """(status, error type, message) answered to the next CreateJobs, first in first out."""
    endpoints: list[str] = field(default_factory=list)
    cancel_requests: list[str] = field(default_factory=list)
    """The job of every CancelJob received."""
    _tokens: dict[str, tuple[str, int]] = field(default_factory=dict)

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-send.mediaconvert", self._handle)
        return client

    def _handle(self, request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        self.endpoints.append(f"{url.scheme}://{url.netloc}")
        if request.method == "POST" and url.path == "/2017-08-29/jobs":
            return self._create(request.url, json.loads(request.body))
        if request.method == "GET" and url.path.startswith("/2017-08-29/jobs/"):
            job = self.jobs.get(url.path.rsplit("/", 1)[-1])
            if job is None:
                return _error(request.url, 404, "NotFoundException", "job not found")
            return _answer(request.url, 200, {"job": job})
        if request.method == "GET" and url.path == "/2017-08-29/jobs":
            return _answer(request.url, 200, {"jobs": list(reversed(self.jobs.values()))})
        if request.method == "DELETE" and url.path.startswith("/2017-08-29/jobs/"):
            return self._cancel(request.url, url.path.rsplit("/", 1)[-1])
        return _error(request.url, 400, "BadRequestException", f"the fake does not serve {request.method} {url.path}")

    def _create(self, url: str, body: dict[str, Any]) -> AWSResponse:
        self.create_requests.append(body)
        if self.next_errors:
            status, kind, message = self.next_errors.pop(0)
            return _error(url, status, kind, message)
        token = body.get("clientRequestToken")
        if token in self._tokens and self.now_ms - self._tokens[token][1] < TOKEN_WINDOW_MS:
            return _answer(url, 201, {"job": self.jobs[self._tokens[token][0]]})
        job_id = f"{self.now_ms}-{secrets.token_hex(3)}"
        job = {
            "id": job_id,
            "arn": f"arn:aws:mediaconvert:{REGION}:{ACCOUNT}:jobs/{job_id}",
            "status": "SUBMITTED",
            "role": body["role"],
            "queue": body.get("queue"),
            "settings": body["settings"],
            "userMetadata": body.get("userMetadata", {}),
            "statusUpdateInterval": body.get("statusUpdateInterval"),
            "clientRequestToken": token,
            "createdAt": self.now_ms // 1000,
        }
        self.jobs[job_id] = job
        if token:
            self._tokens[token] = (job_id, self.now_ms)
        return _answer(url, 201, {"job": job})

    def _cancel(self, url: str, job_id: str) -> AWSResponse:
        """CancelJob: a SUBMITTED or PROGRESSING job becomes CANCELED; a finished one is a conflict, as MediaConvert
        answers it."""
        self.cancel_requests.append(job_id)
        job = self.jobs.get(job_id)
        if job is None:
            return _error(url, 404, "NotFoundException", "job not found")
        if job["status"] not in ("SUBMITTED", "PROGRESSING"):
            return _error(url, 409, "ConflictException", f"job {job_id} is {job['status']}")
        job["status"] = "CANCELED"
        return _answer(url, 202, {})


def _answer(url: str, status: int, body: dict[str, Any]) -> AWSResponse:
    headers = {"Content-Type": "application/json", "x-amzn-RequestId": secrets.token_hex(8)}
    return AWSResponse(url, status, headers, _Body(json.dumps(body).encode()))


def _error(url: str, status: int, kind: str, message: str) -> AWSResponse:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": kind, "x-amzn-RequestId": secrets.token_hex(8)}
    return AWSResponse(url, status, headers, _Body(json.dumps({"message": message}).encode()))
