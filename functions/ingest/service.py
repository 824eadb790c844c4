"""Ingest's use case over injected adapters: an upload arrived for a job; accept it with a plan, or reject it.

Writes come before announcements, and every write is a conditional state transition:

1. AWAITING_UPLOAD -> VALIDATING (`begin_validation`). A no-op means the job is already past that point: the
   notification is a duplicate (S3 and SQS both deliver at least once) or a retry of this one.
2. HEAD, size checks, download, probe, limits, decode check, plan, engine. A broken rule raises `UploadRejected`.
3. VALIDATING -> PROCESSING with the plan, then the fan-out message to SNS, then `Job Accepted`;
   or VALIDATING -> REJECTED with the reason, then `Job Rejected`.

What a repeated notification does is decided by the job's status and by whether SQS is redelivering *this*
message (its receive count is above 1), which is what happens when an earlier attempt raised or timed out:

| job status   | first delivery (a duplicate event) | redelivery (an earlier attempt failed)              |
|--------------|------------------------------------|-----------------------------------------------------|
| VALIDATING   | nothing: another attempt is on it  | validate again (the attempt stopped mid-way)        |
| PROCESSING   | nothing                            | publish the fan-out and `Job Accepted` again        |
| REJECTED     | nothing                            | publish `Job Rejected` again                        |
| anything else| nothing                            | nothing                                             |

So a duplicate S3 event never publishes twice, and a publish that failed after its write is made good by the
redelivery. The price is at-least-once: an attempt that published and then timed out publishes again on
redelivery, which consumers must (and, given SNS and SQS, already have to) tolerate. Two attempts validating at
once are harmless: the conditional write lets one decide, and the other stops without publishing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from aws_lambda_powertools import Logger

from functions.common import job_state
from functions.common.events import DetailType, EventPublisher, job_outcome_detail
from functions.common.job_state import Job, JobStatus
from functions.common.jobs_table import JobNotFound, JobsTable
from functions.ingest.engine import estimated_encode_seconds, route
from functions.ingest.fanout import MEDIA_TYPE_VIDEO, FanoutPublisher, accepted_detail, fanout_message
from functions.ingest.limits import check_media, check_size
from functions.ingest.notifications import Upload
from functions.ingest.planning import plan_renditions, queued_names
from functions.ingest.probe import check_decodes_to_end, probe_media
from functions.ingest.rejections import UploadRejected
from functions.ingest.settings import IngestSettings
from functions.ingest.storage import SourceStore

logger = Logger(child=True)


class Outcome(StrEnum):
    ACCEPTED = "ACCEPTED"
    """Validated: PROCESSING, fan-out published, `Job Accepted` put."""
    REJECTED = "REJECTED"
    """A rule was broken: REJECTED, `Job Rejected` put."""
    REANNOUNCED = "REANNOUNCED"
    """Redelivery: what an earlier attempt wrote was published again."""
    DUPLICATE = "DUPLICATE"
    """The job was already past this point; nothing done."""
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    """No such job (never created, or deleted after retention); nothing done."""


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    status: str | None = None
    """The job's status afterwards, when known."""
    code: str | None = None
    """The rejection code, for REJECTED."""
    engine: str | None = None
    renditions: tuple[str, ...] = ()
    """QUEUED renditions, for ACCEPTED."""
    duration_ms: int | None = None


@dataclass(frozen=True)
class Inspection:
    """A valid upload: what it is, and what will be made of it."""

    probe: dict[str, Any]
    planned: list[dict[str, Any]]
    engine: str


class UploadIngest:
    def __init__(
        self,
        *,
        settings: IngestSettings,
        jobs: JobsTable,
        store: SourceStore,
        fanout: FanoutPublisher,
        events: EventPublisher,
        clock: Callable[[], int],
        scratch_dir: Path | None = None,
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._store = store
        self._fanout = fanout
        self._events = events
        self._clock = clock
        self._scratch_dir = scratch_dir

    def ingest(self, upload: Upload, *, redelivered: bool) -> IngestResult:
        """Handle one upload notification; raises only for infrastructure errors (the message is then retried)."""
        now = self._clock()
        deadline = now + self._settings.processing_deadline_seconds * 1000
        try:
            moved = self._jobs.change(
                upload.job_id, lambda job: job_state.begin_validation(job, now=now, deadline=deadline)
            )
            if moved is not None:
                return self._validate(upload)
            job = self._jobs.get(upload.job_id)
        except JobNotFound:
            logger.warning("upload for a job that does not exist; dropped")
            return IngestResult(Outcome.JOB_NOT_FOUND)
        return self._repeat(job, upload, redelivered=redelivered)

    def _repeat(self, job: Job, upload: Upload, *, redelivered: bool) -> IngestResult:
        status = job["status"]
        if not redelivered:
            logger.info(
                "duplicate upload notification; the job is already past AWAITING_UPLOAD", extra={"status": status}
            )
            return IngestResult(Outcome.DUPLICATE, status=status)
        if status == JobStatus.VALIDATING:
            logger.warning("redelivered while VALIDATING: an earlier attempt stopped mid-way; validating again")
            return self._validate(upload)
        if status == JobStatus.PROCESSING:
            logger.warning("redelivered while PROCESSING: publishing the fan-out an earlier attempt may have missed")
            self._announce_acceptance(job, upload)
            return IngestResult(Outcome.REANNOUNCED, status=status, engine=job["engine"])
        if status == JobStatus.REJECTED:
            logger.warning("redelivered while REJECTED: announcing the rejection an earlier attempt may have missed")
            self._events.publish(DetailType.JOB_REJECTED, job_outcome_detail(job))
            return IngestResult(Outcome.REANNOUNCED, status=status, code=(job.get("error") or {}).get("code"))
        logger.info("redelivered, but the job has moved on; nothing to do", extra={"status": status})
        return IngestResult(Outcome.DUPLICATE, status=status)

    def _validate(self, upload: Upload) -> IngestResult:
        try:
            inspection = self._inspect(upload)
        except UploadRejected as rejection:
            return self._reject(upload, rejection)
        now = self._clock()
        moved = self._jobs.change(
            upload.job_id,
            lambda job: job_state.begin_processing(
                job,
                media_type=MEDIA_TYPE_VIDEO,
                engine=inspection.engine,
                probe=inspection.probe,
                planned=inspection.planned,
                now=now,
            ),
        )
        if moved is None:
            logger.info("another attempt decided this job first; not publishing")
            return IngestResult(Outcome.DUPLICATE)
        job = moved[1]
        self._announce_acceptance(job, upload)
        queued = tuple(queued_names(inspection.planned))
        logger.info("upload accepted", extra={"engine": inspection.engine, "renditions": list(queued)})
        return IngestResult(
            Outcome.ACCEPTED,
            status=job["status"],
            engine=inspection.engine,
            renditions=queued,
            duration_ms=inspection.probe["durationMs"],
        )

    def _inspect(self, upload: Upload) -> Inspection:
        """Everything that can reject an upload, cheapest first; raises `UploadRejected`."""
        settings = self._settings
        stored = self._store.head(upload.bucket, upload.key, etag=upload.etag)
        check_size(stored.size, settings.limits)
        with TemporaryDirectory(prefix="ingest-", dir=self._scratch_dir) as workdir:
            local = Path(workdir) / "source"  # no extension: nothing may guess the type from a name
            self._store.download(upload.bucket, upload.key, stored, local, max_bytes=settings.limits.max_upload_bytes)
            media = probe_media(local, size_bytes=stored.size)
            check_media(media.probe, settings.limits)
            check_decodes_to_end(local, media)
        probe = media.probe
        planned = plan_renditions(probe["width"], probe["height"], settings.renditions)
        capacity = settings.lambda_capacity
        estimate = estimated_encode_seconds(
            duration_ms=probe["durationMs"],
            frame_rate=probe.get("frameRate"),
            source_pixels=(probe.get("codedWidth") or probe["width"]) * (probe.get("codedHeight") or probe["height"]),
            planned=planned,
            megapixels_per_second=capacity.megapixels_per_second,
        )
        engine = route(
            settings.engine,
            duration_ms=probe["durationMs"],
            threshold_seconds=settings.mediaconvert_threshold_seconds,
            estimate_seconds=estimate,
            capacity=capacity,
            probe=probe,
        )
        logger.info(
            "engine chosen",
            extra={
                "engine": engine.value,
                "lambdaEstimateSeconds": round(estimate, 1),
                "lambdaBudgetSeconds": capacity.budget_seconds,
            },
        )
        return Inspection(probe=probe, planned=planned, engine=engine.value)

    def _reject(self, upload: Upload, rejection: UploadRejected) -> IngestResult:
        logger.info(
            "upload rejected",
            extra={"code": rejection.code.value, "reason": rejection.message, "detail": rejection.detail},
        )
        now = self._clock()
        moved = self._jobs.change(
            upload.job_id,
            lambda job: job_state.reject(
                job, code=rejection.code.value, message=rejection.message, now=now, probe=rejection.probe
            ),
        )
        if moved is None:
            logger.info("another attempt decided this job first; not announcing the rejection")
            return IngestResult(Outcome.DUPLICATE)
        self._events.publish(DetailType.JOB_REJECTED, job_outcome_detail(moved[1]))
        return IngestResult(Outcome.REJECTED, status=moved[1]["status"], code=rejection.code.value)

    def _announce_acceptance(self, job: Job, upload: Upload) -> None:
        message = fanout_message(job, bucket=upload.bucket, key=upload.key, etag=_unquoted(upload.etag))
        message_id = self._fanout.publish(message)
        self._events.publish(DetailType.JOB_ACCEPTED, accepted_detail(job))
        logger.info("fan-out published", extra={"messageId": message_id, "attributes": message.attributes})


def _unquoted(etag: str | None) -> str | None:
    return etag.strip('"') or None if etag else None
