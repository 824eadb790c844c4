"""The webhooks function's work, over injected adapters: fan a job outcome out, and make one attempt of a task.

An attempt is three steps so the slow one can run beside others: `prepare` (read the endpoint and the job, sign,
claim the attempt in the delivery log), the HTTP exchange (transport.py, in a worker thread), and `finish`
(log the result, then queue the retry, disable the endpoint, or note the failure on the job and dead-letter the task).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from functions.common import job_state
from functions.common.job_state import Job, WebhookFailure
from functions.common.jobs_table import JobNotFound, JobsTable
from functions.contracts.webhooks import is_subscribed, signing_secrets
from functions.contracts.webhooks import webhook_id
from functions.webhooks.payload import payload_body
from functions.webhooks.schedule import RetrySchedule, defer_seconds, send_delay
from functions.common.webhook_signing import webhook_headers
from functions.common.webhook_tables import AttemptAlreadyClaimed, DeliveryLog, EndpointNotFound, EndpointsTable, attempt_id
from functions.webhooks.tasks import DeliveryTask, TaskQueue
from functions.webhooks.transport import HttpAttempt

EARLY_TOLERANCE_MS = 1000  # a task this close to due is attempted rather than deferred for a second


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


@dataclass(frozen=True)
class JobOutcome:
    """A job's final state, as the bus announced it."""

    job_id: str
    owner_id: str
    event_type: str
    occurred_at: str


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


@dataclass
class WebhookService:
    endpoints: EndpointsTable
    log: DeliveryLog
    jobs: JobsTable
    queue: TaskQueue
    render_job: Callable[[Job], dict[str, Any]]
    """The job as `GET /jobs/{id}` shows it (functions/api/job_view.py), with fresh download links."""
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
                webhook_id=webhook_id(outcome.job_id, outcome.event_type),
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
        if job.get("ownerId") != task.owner_id:
            return Skipped("job belongs to another owner")
        body = payload_body(task.event_type, task.occurred_at, self.render_job(job))
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
        """
        self._act_on(task, existing)
        return Skipped(f"attempt already {existing.get('outcome') or 'claimed'}")
