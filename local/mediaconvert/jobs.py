"""The local MediaConvert's queues and jobs, in memory: what CreateJob, GetJob, ListJobs and CancelJob read and change,
and the states a job moves through while it runs (SUBMITTED → PROGRESSING → COMPLETE | ERROR | CANCELED).

- A repeated `ClientRequestToken` within a minute of the job it created answers with that job, whatever the body.
- Jobs go to the queue CreateJob names (by name or ARN; `Default` when none), which must exist: the program's
  `aws:mediaconvert/queue:Queue` resources and the account's `Default` queue.
- ListJobs pages newest first by default, at most 20 a page, with an opaque NextToken.

Every change and every read happens under one lock, so the HTTP threads and the job runners see whole states.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from local.mediaconvert.model import bad_request, conflict, not_found
from local.mediaconvert.settings import JobSpec

TOKEN_WINDOW_SECONDS = 60.0
DEFAULT_QUEUE = "Default"
MAX_RESULTS = 20
DEFAULT_STATUS_UPDATE_INTERVAL = "SECONDS_60"
_ID_ALPHABET = string.ascii_lowercase + string.digits


class JobStatus(StrEnum):
    SUBMITTED = "SUBMITTED"
    PROGRESSING = "PROGRESSING"
    COMPLETE = "COMPLETE"
    CANCELED = "CANCELED"
    ERROR = "ERROR"


FINISHED = frozenset({JobStatus.COMPLETE, JobStatus.CANCELED, JobStatus.ERROR})


@dataclass(frozen=True)
class Queue:
    name: str
    arn: str
    status: str = "ACTIVE"
    """ACTIVE queues run their jobs; a PAUSED queue keeps them SUBMITTED."""


@dataclass
class Job:
    """One MediaConvert job. Read and change it only through JobStore, which holds the lock."""

    id: str
    arn: str
    sequence: int
    role: str
    queue: Queue
    settings: dict[str, Any]
    spec: JobSpec
    user_metadata: dict[str, str]
    status_update_interval: str
    client_request_token: str | None
    submitted_at: float
    status: JobStatus = JobStatus.SUBMITTED
    started_at: float | None = None
    finished_at: float | None = None
    percent: int | None = None
    phase: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    output_group_details: list[dict[str, Any]] | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def status_update_seconds(self) -> int:
        return int(self.status_update_interval.rsplit("_", 1)[1])

    def describe(self) -> dict[str, Any]:
        """The `Job` shape (member names) GetJob, ListJobs and CreateJob answer with."""

        def stamp(seconds: float | None) -> datetime | None:
            return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None

        return {
            "Id": self.id,
            "Arn": self.arn,
            "Role": self.role,
            "Queue": self.queue.arn,
            "Settings": self.settings,
            "UserMetadata": self.user_metadata,
            "StatusUpdateInterval": self.status_update_interval,
            "ClientRequestToken": self.client_request_token,
            "CreatedAt": stamp(self.submitted_at),
            "Status": self.status.value,
            "CurrentPhase": self.phase,
            "JobPercentComplete": self.percent,
            "ErrorCode": self.error_code,
            "ErrorMessage": self.error_message,
            "OutputGroupDetails": self.output_group_details,
            "RetryCount": 0,
            "Priority": 0,
            "Timing": {
                "SubmitTime": stamp(self.submitted_at),
                "StartTime": stamp(self.started_at),
                "FinishTime": stamp(self.finished_at),
            },
        }


def _exported(job: Job) -> dict[str, Any]:
    fields = (
        "id", "arn", "sequence", "role", "settings", "user_metadata", "status_update_interval", "client_request_token",
        "submitted_at", "started_at", "finished_at", "percent", "phase", "error_code", "error_message",
        "output_group_details",
    )  # fmt: skip
    return {"queue": job.queue.name, "status": job.status.value, **{name: getattr(job, name) for name in fields}}


def _encode_token(sequence: int) -> str:
    return base64.urlsafe_b64encode(f"after:{sequence}".encode()).decode()


def _decode_token(token: str) -> int:
    try:
        prefix, _, sequence = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if prefix != "after":
            raise ValueError(prefix)
        return int(sequence)
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise bad_request("NextToken is not one this service issued") from err


class JobStore:
    def __init__(self, region: str, account_id: str, clock: Callable[[], float] = time.time) -> None:
        self._region = region
        self._account = account_id
        self._clock = clock
        self._lock = threading.Lock()
        self._queues: dict[str, Queue] = {}
        self._jobs: dict[str, Job] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._sequence = itertools.count(1)
        self.add_queue(DEFAULT_QUEUE)

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:mediaconvert:{self._region}:{self._account}:queues/{name}"

    def add_queue(self, name: str, arn: str | None = None, status: str = "ACTIVE") -> Queue:
        queue = Queue(name=name, arn=arn or self.queue_arn(name), status=status)
        with self._lock:
            self._queues[name] = queue
        return queue

    def _queue(self, reference: str | None) -> Queue:
        name = reference.rsplit("queues/", 1)[-1] if reference else DEFAULT_QUEUE
        queue = self._queues.get(name)
        if queue is None or (reference and reference.startswith("arn:") and reference != queue.arn):
            raise not_found(f"queue {reference!r} does not exist")
        return queue

    # --- the API --------------------------------------------------------------------------------------------

    def create(
        self, params: dict[str, Any], spec: JobSpec, admit: Callable[[Job], None]
    ) -> tuple[Job, bool, dict[str, Any]]:
        """The job for a CreateJob request (the one a repeated token made within a minute, else a new one), whether it
        is new, and its `Job` shape as of now (a new job reads SUBMITTED, whenever a worker picks it up).

        `admit` is called with a new job before it is stored (to enqueue it); whatever it raises refuses the request.
        """
        now = self._clock()
        token = params.get("ClientRequestToken")
        with self._lock:
            if token and token in self._tokens:
                job_id, created_at = self._tokens[token]
                if now - created_at < TOKEN_WINDOW_SECONDS:
                    return self._jobs[job_id], False, self._jobs[job_id].describe()
            queue = self._queue(params.get("Queue"))
            job_id = f"{int(now * 1000)}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(6))}"
            job = Job(
                id=job_id,
                arn=f"arn:aws:mediaconvert:{self._region}:{self._account}:jobs/{job_id}",
                sequence=next(self._sequence),
                role=params["Role"],
                queue=queue,
                settings=params["Settings"],
                spec=spec,
                user_metadata=dict(params.get("UserMetadata") or {}),
                status_update_interval=params.get("StatusUpdateInterval") or DEFAULT_STATUS_UPDATE_INTERVAL,
                client_request_token=token,
                submitted_at=now,
            )
            admit(job)
            self._jobs[job_id] = job
            if token:
                self._tokens[token] = (job_id, now)
            return job, True, job.describe()

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise not_found(f"job {job_id} does not exist")
        return job

    def describe(self, job: Job) -> dict[str, Any]:
        with self._lock:
            return job.describe()

    def list(
        self,
        *,
        queue: str | None = None,
        status: str | None = None,
        order: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of jobs (Job shapes) and the token of the next page, if any."""
        descending = (order or "DESCENDING") == "DESCENDING"
        limit = max_results or MAX_RESULTS
        after = _decode_token(next_token) if next_token else None
        with self._lock:
            wanted_queue = self._queue(queue) if queue else None
            jobs = sorted(self._jobs.values(), key=lambda j: j.sequence, reverse=descending)
            if wanted_queue is not None:
                jobs = [j for j in jobs if j.queue.name == wanted_queue.name]
            if status:
                jobs = [j for j in jobs if j.status.value == status]
            if after is not None:
                jobs = [j for j in jobs if (j.sequence < after if descending else j.sequence > after)]
            page = jobs[:limit]
            token = _encode_token(page[-1].sequence) if len(jobs) > limit else None
            return [j.describe() for j in page], token

    def cancel(self, job_id: str) -> tuple[Job, bool]:
        """Cancels a SUBMITTED job at once (True); asks a PROGRESSING one's runner to stop (False)."""
        job = self.get(job_id)
        with self._lock:
            if job.status in FINISHED:
                raise conflict(
                    f"job {job_id} is {job.status.value}; only SUBMITTED or PROGRESSING jobs can be canceled"
                )
            job.cancel_requested.set()
            if job.status is JobStatus.SUBMITTED:
                self._finish(job, JobStatus.CANCELED)
                return job, True
            return job, False

    # --- the local cloud's snapshot -------------------------------------------------------------------------

    def export(self) -> list[dict[str, Any]]:
        """Every job as JSON, oldest first (request tokens are not kept: their minute is over by the next start)."""
        with self._lock:
            return [_exported(job) for job in sorted(self._jobs.values(), key=lambda j: j.sequence)]

    def restore(self, saved: dict[str, Any], spec: JobSpec) -> Job | None:
        """A job from `export`, in its queue (None if that queue is gone). One that had not finished comes back
        SUBMITTED: its run ended with the process that ran it, and it runs again from the start."""
        with self._lock:
            queue = self._queues.get(saved["queue"])
            if queue is None:
                return None
            job = Job(spec=spec, queue=queue, **{k: v for k, v in saved.items() if k not in ("queue", "status")})
            job.status = JobStatus(saved["status"])
            if job.status not in FINISHED:
                job.status, job.started_at, job.phase, job.percent = JobStatus.SUBMITTED, None, None, None
            self._jobs[job.id] = job
            self._sequence = itertools.count(max(j.sequence for j in self._jobs.values()) + 1)
            return job

    # --- the runner's transitions ---------------------------------------------------------------------------

    def start(self, job: Job) -> bool:
        """SUBMITTED → PROGRESSING; False when the job was canceled while it waited."""
        with self._lock:
            if job.status is not JobStatus.SUBMITTED:
                return False
            job.status, job.started_at, job.phase, job.percent = JobStatus.PROGRESSING, self._clock(), "PROBING", 0
            return True

    def progress(self, job: Job, *, phase: str, percent: int) -> None:
        with self._lock:
            if job.status is JobStatus.PROGRESSING:
                job.phase, job.percent = phase, percent

    def complete(self, job: Job, output_group_details: list[dict[str, Any]]) -> None:
        with self._lock:
            job.output_group_details = output_group_details
            job.percent = 100
            self._finish(job, JobStatus.COMPLETE)

    def fail(self, job: Job, code: int, message: str) -> None:
        with self._lock:
            job.error_code, job.error_message = code, message
            self._finish(job, JobStatus.ERROR)

    def canceled(self, job: Job) -> None:
        with self._lock:
            self._finish(job, JobStatus.CANCELED)

    def _finish(self, job: Job, status: JobStatus) -> None:
        job.status, job.finished_at, job.phase = status, self._clock(), None
