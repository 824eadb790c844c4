"""Whether work is still wanted: a worker asks before it starts and between its steps.

A job its owner deleted is CANCELED at once, and a retried or reprocessed job runs a new attempt; messages already
queued for it (and invocations already running) are not recalled. So a worker reads the job's status, attempt and
deletion (one consistent GetItem of three attributes) before it downloads the source, before it stores an output,
and while a long encode runs, and stops as soon as the answer is no: it reports nothing and its message is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from functions.common.clients import dynamodb_resource
from functions.common.jobs_table import from_dynamo
from functions.common.observability import logger, metrics
from functions.contracts.jobs import TERMINAL_JOB_STATUSES, JobStatus

GATE_CHECK_SECONDS = 5.0
"""How often a long step (an ffmpeg run) asks again: one read every few seconds, and a cancel stops it within them."""
WORK_WITHDRAWN_METRIC = "WorkWithdrawn"


class WorkWithdrawn(RuntimeError):
    """The job was canceled, deleted or moved to another attempt: the work in hand is dropped, not failed."""

    def __init__(self, job_id: str, attempt: int, reason: str) -> None:
        super().__init__(f"job {job_id} attempt {attempt}: {reason}")
        self.job_id = job_id
        self.attempt = attempt
        self.reason = reason


def withdrawal_reason(item: dict[str, Any] | None, attempt: int) -> str | None:
    """Why work of `attempt` is no longer wanted, from the job's item; None when it still is."""
    if item is None:
        return "the job no longer exists"
    if item.get("deletion") is not None:
        return "the job was deleted"
    status = JobStatus(item["status"])
    current = int(item.get("attempt", 1))
    if current != attempt:
        return f"the job runs attempt {current} now"
    if status in TERMINAL_JOB_STATUSES:
        return f"the job is {status.value}"
    return None


class JobGate(Protocol):
    def check(self, job_id: str, attempt: int) -> None:
        """Raises WorkWithdrawn when the work is no longer wanted."""
        ...


class DynamoJobGate:
    """The jobs table read as the gate: GetItem of `status`, `attempt` and `deletion`, strongly consistent, so a
    cancel written a moment ago is seen."""

    def __init__(self, table_name: str, resource: Any | None = None) -> None:
        self._table = (resource or dynamodb_resource()).Table(table_name)

    def check(self, job_id: str, attempt: int) -> None:
        response = self._table.get_item(
            Key={"jobId": job_id},
            ConsistentRead=True,
            ProjectionExpression="#status, attempt, deletion",
            ExpressionAttributeNames={"#status": "status"},
        )
        item = response.get("Item")
        reason = withdrawal_reason(from_dynamo(item) if item is not None else None, attempt)
        if reason is not None:
            raise WorkWithdrawn(job_id, attempt, reason)


class OpenGate:
    """A gate that never withdraws (tests of a worker's own logic, and tools that run one unit by hand)."""

    def check(self, job_id: str, attempt: int) -> None:
        return None


class AttemptWatch:
    """The gate, asked about one piece of work (a job's attempt) by a worker that goes on until it is told to stop.

    `check()` asks now: before the source is read, before an output is stored, before a result is announced.
    `check_if_due()` asks only when `every_seconds` passed since the last answer: from ffmpeg's progress, or between
    short steps, so a long run costs a read every few seconds rather than one per progress line.
    """

    def __init__(
        self,
        gate: JobGate,
        job_id: str,
        attempt: int,
        *,
        every_seconds: float = GATE_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gate = gate
        self.job_id = job_id
        self.attempt = attempt
        self._every_seconds = every_seconds
        self._clock = clock
        self._checked_at: float | None = None

    def check(self) -> None:
        """Raises WorkWithdrawn when the work is no longer wanted."""
        self._gate.check(self.job_id, self.attempt)
        self._checked_at = self._clock()

    def check_if_due(self) -> None:
        """`check()`, unless the last answer is younger than `every_seconds`. Only a withdrawal stops the work here: a
        read that fails is logged and the work goes on (the check before its output is stored asks again)."""
        if self._checked_at is not None and self._clock() - self._checked_at < self._every_seconds:
            return
        try:
            self.check()
        except (ClientError, BotoCoreError) as err:
            self._checked_at = self._clock()
            logger.warning("could not ask whether the work is still wanted; going on", extra={"error": str(err)})


def drop_withdrawn(withdrawn: WorkWithdrawn) -> str:
    """Log (INFO, with the reason) and count (`WorkWithdrawn`) work dropped because it is no longer wanted; returns
    the record's result. The record succeeds: SQS neither delivers it again nor dead-letters it."""
    logger.info("work withdrawn; dropped", extra={"reason": withdrawn.reason, "attempt": withdrawn.attempt})
    metrics.add_metric(name=WORK_WITHDRAWN_METRIC, unit=MetricUnit.Count, value=1)
    return "WITHDRAWN"
