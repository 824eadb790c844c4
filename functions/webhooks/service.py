"""The webhooks function's work, over ports: fan a job outcome out, and make one attempt of a delivery task.

Fan-out turns one job event into one task per subscribed endpoint (one SQS message per job outcome, endpoint and
attempt), so an endpoint's failures and waits only ever hold its own messages. An attempt is three steps so the
slow one can run beside others: `prepare` (read the endpoint and the job, sign, claim the attempt in the delivery
log), the HTTP exchange (adapters.Transport, in a worker thread), and `finish` (log the result, then queue the
retry, disable the endpoint, or note the failure on the job and dead-letter the task). A retry is a new task
(attempt + 1, `notBefore` its due time); a task that arrives early is hidden again.

The retry schedule: after attempt n fails, attempt n+1 is due `delays[n-1]` seconds later (with jitter); after the
last attempt the task is dead-lettered. Each attempt is a new task message, so its receive count starts again at
zero. AWS constraints that shape the waits: SQS delays a sent message by at most 900 s (DelaySeconds), and a
received message can be hidden by ChangeMessageVisibility for at most 12 h from its receipt. A wait longer than
15 minutes is therefore sent with the 15-minute delay and, each time the task arrives early, deferred again by up
to 11 h 45 m (the 12 h limit less a margin for the time between receipt and the deferral). Every deferral is one
more receive, so the queue's maxReceiveCount must exceed the deferrals the longest wait needs
(`receives_for_longest_wait`), or SQS would dead-letter a healthy task before its schedule ends.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from functions.common import job_state
from functions.common.job_state import Transition, WebhookFailure
from functions.common.jobs_table import JobNotFound
from functions.common.webhook_signing import webhook_headers
from functions.common.webhook_tables import SENDING, AttemptAlreadyClaimed, EndpointNotFound, attempt_id
from functions.contracts.job_view import DownloadUrl, SignPlayback, job_view
from functions.contracts.jobs import JobRecord
from functions.contracts.webhooks import Endpoint, is_subscribed, signing_secrets, webhook_id

# --- The retry schedule, and how its waits are laid onto SQS's limits ---

SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_VISIBILITY_SECONDS = 43_200
DEFER_MARGIN_SECONDS = 900
DEFER_STEP_SECONDS = SQS_MAX_VISIBILITY_SECONDS - DEFER_MARGIN_SECONDS
DEFAULT_JITTER = 0.1
MAX_DELAY_SECONDS = 2 * 86_400  # a task must outlive its wait in the queue (retention 4 days)
MAX_RETRIES = 20
STANDARD_DELAYS = (5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400)
"""Standard Webhooks' example: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (about 75 h in all)."""


@dataclass(frozen=True)
class RetrySchedule:
    """Delays between attempts, in seconds; one more attempt than delays."""

    delays: tuple[int, ...] = STANDARD_DELAYS
    """Seconds from a failed attempt to the next one, in order."""
    jitter: float = DEFAULT_JITTER
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1

    @property
    def longest_wait_seconds(self) -> float:
        """The longest any task can wait for its attempt, jitter included."""
        return max(self.delays, default=0) * (1 + self.jitter)

    def delay_after(self, attempt: int, rng: random.Random) -> float | None:
        """Seconds until the attempt after `attempt` (1-based); None when `attempt` was the last."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt}")
        if attempt > len(self.delays):
            return None
        return self.delays[attempt - 1] * (1 + self.jitter * (2 * rng.random() - 1))


def parse_schedule(values: Iterable[object]) -> RetrySchedule:
    """A schedule from config (a list of whole seconds); ValueError naming what is wrong."""
    delays = list(values)
    if not 1 <= len(delays) <= MAX_RETRIES:
        raise ValueError(f"webhook retry schedule has 1 to {MAX_RETRIES} delays, got {len(delays)}")
    for delay in delays:
        if isinstance(delay, bool) or not isinstance(delay, int) or not 1 <= delay <= MAX_DELAY_SECONDS:
            raise ValueError(f"webhook retry delays are whole seconds from 1 to {MAX_DELAY_SECONDS}, got {delay!r}")
    return RetrySchedule(delays=tuple(delays))


def schedule_to_env(schedule: RetrySchedule) -> str:
    return ",".join(str(delay) for delay in schedule.delays)


def schedule_from_env(raw: str) -> RetrySchedule:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not all(item.isascii() and item.isdigit() for item in items):
        raise ValueError(f"webhook retry schedule is a comma list of seconds, got {raw!r}")
    return parse_schedule(int(item) for item in items)


def send_delay(wait_seconds: float) -> int:
    """DelaySeconds for a task due in `wait_seconds`: as much of the wait as SQS allows."""
    return min(max(0, math.ceil(wait_seconds)), SQS_MAX_DELAY_SECONDS)


def defer_seconds(remaining_seconds: float) -> int:
    """Visibility timeout that hides an early task until it is due, or for as long as one deferral may."""
    return min(max(1, math.ceil(remaining_seconds)), DEFER_STEP_SECONDS)


def deferrals_needed(wait_seconds: float) -> int:
    """Early receives a task due in `wait_seconds` goes through: the wait beyond its send delay, in deferral steps."""
    return math.ceil(max(0.0, wait_seconds - SQS_MAX_DELAY_SECONDS) / DEFER_STEP_SECONDS)


def receives_for_longest_wait(schedule: RetrySchedule) -> int:
    """Receives the longest-waiting task uses up before its attempt (add the failures you tolerate)."""
    return deferrals_needed(schedule.longest_wait_seconds)


# --- Delivery tasks and what a webhook says ---

TASK_KIND = "webhook-delivery"
MAX_CONCURRENT_ATTEMPTS = 10
"""Attempts one invocation runs side by side: the delivery queue's batch size may not exceed it."""
EARLY_TOLERANCE_MS = 1000  # a task this close to due is attempted rather than deferred for a second
HTTP_GONE = 410


class DeliveryTask(BaseModel):
    """One attempt to deliver one job outcome to one endpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    kind: Literal["webhook-delivery"] = TASK_KIND
    webhook_id: str = Field(min_length=1, max_length=100, pattern=r"^msg_[A-Za-z0-9_]+$")
    endpoint_id: str = Field(min_length=1, max_length=100)
    owner_id: str = Field(min_length=1, max_length=1000)
    job_id: str = Field(min_length=1, max_length=100)
    event_type: str = Field(min_length=1, max_length=50)
    occurred_at: str = Field(min_length=1, max_length=50)
    attempt: int = Field(ge=1, le=1000)
    not_before: int = Field(ge=0)
    """Epoch ms before which the attempt is not made."""

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def next_attempt(self, due_ms: int) -> DeliveryTask:
        return self.model_copy(update={"attempt": self.attempt + 1, "not_before": due_ms})


def is_task(message: Any) -> bool:
    return isinstance(message, dict) and message.get("kind") == TASK_KIND


def payload_body(event_type: str, occurred_at: str, job: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact JSON `{"type", "timestamp", "data": <the job as GET /jobs/{id}>}`."""
    payload = {"type": event_type, "timestamp": occurred_at, "data": job}
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass(frozen=True)
class HttpAttempt:
    """What one attempt came to."""

    status_code: int | None
    """The receiver's status, or None when no response arrived."""
    error: str | None
    """Why the attempt failed, as clients read it in the delivery log: a `DeliveryError` or `http_<status>`; None on
    success."""
    duration_ms: int
    """From the first lookup to the status line."""
    detail: str | None = None
    """What happened, in full (the OS error, the address and port tried), for the function's log only: never stored
    where a client reads it."""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == HTTP_GONE


class Outcome(StrEnum):
    """What became of an attempt, as the delivery log shows it."""

    DELIVERED = "delivered"
    RETRYING = "retrying"  # failed; another attempt is scheduled (`nextAttemptAt`)
    DEAD_LETTERED = "dead-lettered"  # failed and it was the last attempt: the task is in the DLQ
    ENDPOINT_DISABLED = "endpoint-disabled"  # the receiver answered 410 Gone


class TaskNotDue(Exception):
    """The task arrived before its attempt is due and was hidden again; SQS keeps it."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"not due; hidden for {seconds} s")
        self.seconds = seconds


class TaskEnqueueFailed(RuntimeError):
    """SQS refused some of the tasks sent; the message that asked for them is retried."""


@dataclass(frozen=True)
class JobOutcome:
    """A job's final state, as the bus announced it."""

    job_id: str
    owner_id: str
    event_type: str
    occurred_at: str
    job_attempt: int = 1
    """Which run of the job ended (a retried or reprocessed job ends again, with a webhook-id of its own)."""


@dataclass(frozen=True)
class PreparedAttempt:
    """A signed request, and the delivery-log entry that claims it."""

    task: DeliveryTask
    url: str
    body: bytes
    headers: dict[str, str]
    entry: dict[str, Any]


@dataclass(frozen=True)
class Skipped:
    """A task that needs no attempt."""

    reason: str


# --- Ports ---


class EndpointStore(Protocol):
    """The endpoints table (functions/common/webhook_tables.py)."""

    def list_for_owner(self, owner_id: str) -> list[Endpoint]: ...

    def get(self, owner_id: str, endpoint_id: str) -> Endpoint:
        """Raises EndpointNotFound."""
        ...

    def disable(self, owner_id: str, endpoint_id: str, *, reason: str, now_ms: int) -> None: ...


class AttemptLog(Protocol):
    """The delivery log: an attempt is claimed before it is made, then logged with its outcome."""

    def claim(self, entry: dict[str, Any], *, lease_ms: int) -> None:
        """Raises AttemptAlreadyClaimed when another task holds, or has finished, the attempt."""
        ...

    def finish(self, entry: dict[str, Any]) -> None: ...


class JobStore(Protocol):
    """The jobs table (functions/common/jobs_table.py)."""

    def get(self, job_id: str) -> JobRecord:
        """Raises JobNotFound."""
        ...

    def change(self, job_id: str, transition: Transition) -> tuple[JobRecord, JobRecord] | None:
        """Raises JobNotFound."""
        ...


class TaskQueue(Protocol):
    """The delivery queue and its DLQ."""

    def send(self, tasks: Sequence[DeliveryTask], delay_seconds: int = 0) -> None:
        """Raises TaskEnqueueFailed when a task was not queued."""
        ...

    def defer(self, receipt_handle: str, seconds: int) -> None:
        """Hide a received task for `seconds` more (it comes back then, one receive later)."""
        ...

    def dead_letter(self, task: DeliveryTask, reason: str) -> None:
        """Park a task whose schedule ended; redriving it to the queue makes one more attempt."""
        ...


# --- The service ---


@dataclass
class WebhookService:
    endpoints: EndpointStore
    log: AttemptLog
    jobs: JobStore
    queue: TaskQueue
    download_url: DownloadUrl
    """Fresh download links for the job's renditions, as `GET /jobs/{id}` shows them."""
    sign_playback: SignPlayback
    """Fresh CDN links to a completed video's playback package, as `GET /jobs/{id}` shows them."""
    schedule: RetrySchedule
    clock_ms: Callable[[], int]
    rng: random.Random
    log_retention_seconds: int
    lease_ms: int
    """A claim left SENDING this long belongs to an invocation that died."""

    def fan_out(self, outcome: JobOutcome) -> list[DeliveryTask]:
        """One task per endpoint of the job's owner that wants this event; nobody else's endpoints are read."""
        now = self.clock_ms()
        tasks = [
            DeliveryTask(
                webhook_id=webhook_id(outcome.job_id, outcome.event_type, outcome.job_attempt),
                endpoint_id=endpoint["endpointId"],
                owner_id=outcome.owner_id,
                job_id=outcome.job_id,
                event_type=outcome.event_type,
                occurred_at=outcome.occurred_at,
                attempt=1,
                not_before=now,
            )
            for endpoint in self.endpoints.list_for_owner(outcome.owner_id)
            if is_subscribed(endpoint, outcome.event_type)
        ]
        self.queue.send(tasks)
        return tasks

    def prepare(self, task: DeliveryTask, receipt_handle: str) -> PreparedAttempt | Skipped:
        now = self.clock_ms()
        if task.not_before - now > EARLY_TOLERANCE_MS:
            seconds = defer_seconds((task.not_before - now) / 1000)
            self.queue.defer(receipt_handle, seconds)
            raise TaskNotDue(seconds)
        try:
            endpoint = self.endpoints.get(task.owner_id, task.endpoint_id)
        except EndpointNotFound:
            return Skipped("endpoint deleted")
        if not is_subscribed(endpoint, task.event_type):
            return Skipped("endpoint disabled")
        try:
            job = self.jobs.get(task.job_id)
        except JobNotFound:
            return Skipped("job no longer exists")
        if job.ownerId != task.owner_id:
            return Skipped("job belongs to another owner")
        data = job_view(job, self.download_url, self.sign_playback).model_dump(mode="json")
        body = payload_body(task.event_type, task.occurred_at, data)
        headers = webhook_headers(signing_secrets(endpoint, now), task.webhook_id, now // 1000, body)
        entry = {
            "endpointId": task.endpoint_id,
            "attemptId": attempt_id(task.webhook_id, task.attempt),
            "attemptedAt": now,
            "webhookId": task.webhook_id,
            "eventType": task.event_type,
            "jobId": task.job_id,
            "attempt": task.attempt,
            "expiresAt": now // 1000 + self.log_retention_seconds,
        }
        try:
            self.log.claim(entry, lease_ms=self.lease_ms)
        except AttemptAlreadyClaimed as err:
            return self._resume(task, err.existing)
        return PreparedAttempt(task=task, url=endpoint["url"], body=body, headers=headers, entry=entry)

    def finish(self, prepared: PreparedAttempt, result: HttpAttempt) -> dict[str, Any]:
        """Log the attempt, then act on it; returns the delivery-log entry."""
        entry: dict[str, Any] = {
            **prepared.entry,
            "statusCode": result.status_code,
            "error": result.error,
            "durationMs": result.duration_ms,
        }
        if result.delivered:
            entry["outcome"] = str(Outcome.DELIVERED)
        elif result.gone:
            entry["outcome"] = str(Outcome.ENDPOINT_DISABLED)
        else:
            delay = self.schedule.delay_after(prepared.task.attempt, self.rng)
            if delay is None:
                entry["outcome"] = str(Outcome.DEAD_LETTERED)
            else:
                entry["outcome"] = str(Outcome.RETRYING)
                entry["nextAttemptAt"] = self.clock_ms() + int(delay * 1000)
        # Logged before acting: if acting fails, the redelivered task finds this entry and acts again (_resume).
        self.log.finish(entry)
        self._act_on(prepared.task, entry)
        return entry

    def _act_on(self, task: DeliveryTask, entry: dict[str, Any]) -> None:
        outcome = entry.get("outcome")
        if outcome == Outcome.RETRYING:
            due = int(entry["nextAttemptAt"])
            wait_seconds = (due - self.clock_ms()) / 1000
            self.queue.send([task.next_attempt(due)], delay_seconds=send_delay(wait_seconds))
        elif outcome == Outcome.DEAD_LETTERED:
            # Noted on the job before the task is parked: a crash in between leaves the task to be redelivered.
            self._note_on_job(task, entry)
            # The parked task is the next attempt, due at once: redriving it from the DLQ makes one more try.
            self.queue.dead_letter(task.next_attempt(0), reason=str(entry.get("error") or "delivery failed"))
        elif outcome == Outcome.ENDPOINT_DISABLED:
            self.endpoints.disable(task.owner_id, task.endpoint_id, reason="HTTP 410 Gone", now_ms=self.clock_ms())

    def _note_on_job(self, task: DeliveryTask, entry: dict[str, Any]) -> None:
        """The job shows the dead-lettered delivery (once; a job deleted since is no error)."""
        failure = WebhookFailure(
            owner_id=task.owner_id,
            endpoint_id=task.endpoint_id,
            event_type=task.event_type,
            webhook_id=task.webhook_id,
            attempts=int(entry.get("attempt") or task.attempt),
            status_code=entry.get("statusCode"),
            error=entry.get("error"),
        )
        now = self.clock_ms()
        try:
            self.jobs.change(task.job_id, lambda job: job_state.note_webhook_failure(job, failure, now=now))
        except JobNotFound:
            return

    def _resume(self, task: DeliveryTask, existing: dict[str, Any]) -> Skipped:
        """A task whose attempt was claimed before: in flight elsewhere, or done by an invocation that then failed.

        Acting again on a finished attempt is safe: a duplicate retry task meets this same claim one attempt later.
        A claim still SENDING is an invocation making the attempt now, or one that died making it (a crash, a
        timeout) and cannot be told from it: the task comes back once the claim's lease has run out, and then either
        finds the attempt's outcome or takes the abandoned claim over. Acknowledging it instead would lose the
        webhook whenever the claimer had died.
        """
        if existing.get("outcome") in (None, SENDING):
            claimed_at = int(existing.get("attemptedAt") or self.clock_ms())
            wait_seconds = (claimed_at + self.lease_ms - self.clock_ms()) / 1000 + 1
            self.queue.send([task], delay_seconds=send_delay(wait_seconds))
            return Skipped("attempt in flight; the task comes back when its claim's lease ends")
        self._act_on(task, existing)
        return Skipped(f"attempt already {existing.get('outcome')}")
