"""The tracker's use cases over injected adapters: apply a transition to a job, announce jobs that end, sweep.

A job's outcome is announced at least once: the terminal write comes first, then the event and the metric,
then a bookkeeping write (`outcomeAnnouncedAt`). If the event cannot be put, the invocation fails and is
retried; the retry finds the job terminal but unannounced and announces it then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from functions.common import job_state
from functions.common.events import TERMINAL_DETAIL_TYPES, DetailType, job_outcome_detail, outcome_event
from functions.common.job_state import Job, JobStatus, Transition
from functions.common.jobs_table import ConcurrentUpdate, JobNotFound

logger = Logger(child=True)

# The outcomes the tracker writes, and so announces; REJECTED is ingest's to announce.
OUTCOME_METRICS: dict[str, str] = {
    JobStatus.COMPLETED: "JobsCompleted",
    JobStatus.FAILED: "JobsFailed",
    JobStatus.EXPIRED: "JobsExpired",
}


class JobStore(Protocol):
    def change(self, job_id: str, transition: Transition) -> tuple[Job, Job] | None: ...

    def open_jobs_due(self, now: int) -> Iterable[str]: ...


class OutcomePublisher(Protocol):
    def publish(self, detail_type: Any, detail: dict[str, Any]) -> None: ...


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


@dataclass(frozen=True)
class Applied:
    """What one event did to a job."""

    job: Job
    """The job as written, or as read when the event changed nothing."""
    changed: bool
    """False for a duplicate, stale or out-of-order event."""
    announced: str | None = None
    """The outcome event published by this call (`Job Completed`, ...), if any."""


@dataclass(frozen=True)
class SweepResult:
    examined: int
    """Overdue jobs looked at."""
    closed: int
    """Jobs this sweep expired or failed."""
    truncated: bool
    """True when the sweep stopped at its bound; the next one carries on."""


class JobTracker:
    def __init__(
        self, table: JobStore, publisher: OutcomePublisher, metrics: MetricsSink, clock: Callable[[], int]
    ) -> None:
        self._table = table
        self._publisher = publisher
        self._metrics = metrics
        self._clock = clock

    def apply(self, job_id: str, transition: Transition) -> Applied:
        """Write the transition (conditionally, retried by the table on a lost race) and announce a job that ended.

        Raises JobNotFound, ConcurrentUpdate, EventPublishFailed and botocore errors; the caller decides.
        """
        seen: list[Job] = []

        def observed(job: Job) -> Job | None:
            seen.append(job)
            return transition(job)

        written = self._table.change(job_id, observed)
        if written is None:
            job = seen[-1]
            if not self._unannounced(job):
                return Applied(job=job, changed=False)
            logger.warning("announcing an outcome an earlier attempt wrote but did not publish")
            outcome = (TERMINAL_DETAIL_TYPES[JobStatus(job["status"])], job_outcome_detail(job))
            return Applied(job=job, changed=False, announced=self._announce(job, outcome))
        before, after = written
        outcome = outcome_event(before, after)
        return Applied(job=after, changed=True, announced=self._announce(after, outcome) if outcome else None)

    def sweep(self, *, now: int, max_jobs: int, has_time: Callable[[], bool]) -> SweepResult:
        """Expire uploads that never came and fail processing past its deadline, oldest deadline first, bounded."""
        examined = closed = 0
        truncated = False
        for job_id in self._table.open_jobs_due(now):
            if examined >= max_jobs or not has_time():
                truncated = True
                break
            examined += 1
            logger.append_keys(jobId=job_id)
            try:
                applied = self.apply(job_id, partial(job_state.expire_if_overdue, now=now))
            except JobNotFound:
                logger.warning("overdue job vanished before the sweep reached it")
                continue
            except ConcurrentUpdate:
                logger.warning("overdue job is being written concurrently; the next sweep retries it")
                continue
            finally:
                logger.remove_keys(["jobId"])
            if applied.changed:
                closed += 1
        logger.info("sweep finished", extra={"examined": examined, "closed": closed, "truncated": truncated})
        return SweepResult(examined=examined, closed=closed, truncated=truncated)

    @staticmethod
    def _unannounced(job: Job) -> bool:
        return job["status"] in OUTCOME_METRICS and job.get("outcomeAnnouncedAt") is None

    def _announce(self, job: Job, outcome: tuple[DetailType, dict[str, Any]]) -> str:
        detail_type, detail = outcome
        self._publisher.publish(detail_type, detail)
        metric = OUTCOME_METRICS.get(job["status"])
        if metric:
            self._metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        logger.info("job outcome announced", extra={"status": job["status"], "error": job.get("error")})
        self._table.change(job["jobId"], partial(job_state.mark_outcome_announced, now=self._clock()))
        return str(detail_type)
