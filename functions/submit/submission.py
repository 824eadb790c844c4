"""Submit one MediaConvert job per pipeline job, whatever SQS and SNS deliver: the use case over injected adapters.

Order: read the job, pin the validated upload (functions/submit/source.py), CreateJob, then record it (submit
first, record second). Two guards make that exactly once:

- `ClientRequestToken` = the pipeline's jobId. MediaConvert answers a repeated token with the job the first request
  made, for a minute after it. That covers what happens within seconds: botocore retrying a CreateJob whose answer
  was lost, and two deliveries of the same message processed side by side.
- `job.mediaconvert` in DynamoDB, written by `job_state.record_mediaconvert_job` through `JobsTable.change` only
  while the job has none. That covers what happens minutes later, outside the token's minute: a redelivered
  message or a retried function reads the record first and does not call CreateJob at all.

Recording an intent first would not close the remaining gap: an attempt that dies after CreateJob succeeded and
before the record lands (a timeout, a DynamoDB outage) leaves a redelivery, several minutes later (the queue's
visibility timeout), unable to tell whether a job exists, with or without an intent. That redelivery submits
again; MediaConvert then runs a second job writing the same keys, and the tracker, whose transitions are idempotent,
applies whichever finishes first and ignores the other. The record keeps the first job; a conflicting second one
is logged (`DuplicateMediaConvertJobs`). Submit-first is the simpler of the two with the same guarantee.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from aws_lambda_powertools import Logger

from functions.common import job_state
from functions.common.events import DetailType, EventPublisher
from functions.common.job_state import Job, JobStatus
from functions.common.jobs_table import JobNotFound, JobsTable
from functions.submit.job_settings import (
    JobTarget,
    UnsupportedByMediaConvert,
    client_request_token,
    create_job_request,
)
from functions.submit.mediaconvert import MediaConvertJobs, SettingsRefused
from functions.submit.messages import MalformedMessage, encode_plans
from functions.submit.settings import SubmitSettings
from functions.submit.source import SourceReplaced, ValidatedSources
from functions.transcode.messages import EncodePlan, FanOutMessage

logger = Logger(child=True)

REFUSED_CODE = "MEDIACONVERT_BAD_REQUEST"
SOURCE_REPLACED_CODE = "SOURCE_REPLACED"
SOURCE_REPLACED_MESSAGE = "the upload was replaced after it was validated"


class Outcome(StrEnum):
    SUBMITTED = "SUBMITTED"
    """CreateJob answered and this attempt recorded the job."""
    ALREADY_SUBMITTED = "ALREADY_SUBMITTED"
    """The job already names its MediaConvert job (or a concurrent attempt recorded the same one)."""
    DUPLICATE_JOB = "DUPLICATE_JOB"
    """CreateJob made a second MediaConvert job after the record was written by another attempt; logged."""
    NOT_APPLICABLE = "NOT_APPLICABLE"
    """The job is not (or no longer) PROCESSING on the mediaconvert engine; nothing submitted."""
    REFUSED = "REFUSED"
    """MediaConvert cannot make this job (or its upload was replaced): every rendition was announced as failed."""
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    """No such job (deleted after retention); nothing done."""


@dataclass(frozen=True)
class SubmitResult:
    outcome: Outcome
    mediaconvert_job_id: str | None = None


class JobSubmitter:
    def __init__(
        self,
        *,
        settings: SubmitSettings,
        jobs: JobsTable,
        mediaconvert: MediaConvertJobs,
        sources: ValidatedSources,
        events: EventPublisher,
        clock: Callable[[], int],
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._mediaconvert = mediaconvert
        self._sources = sources
        self._events = events
        self._clock = clock

    def submit(self, message: FanOutMessage) -> SubmitResult:
        """Handle one fan-out message; raises only for what a retry can fix (AWS errors, lost races)."""
        try:
            job = self._jobs.get(message.jobId)
        except JobNotFound:
            logger.warning("message for a job that does not exist; dropped")
            return SubmitResult(Outcome.JOB_NOT_FOUND)
        recorded = job_state.mediaconvert_job_id(job)
        if recorded:
            logger.info(
                "the job already has its MediaConvert job; not submitting", extra={"mediaConvertJobId": recorded}
            )
            return SubmitResult(Outcome.ALREADY_SUBMITTED, recorded)
        if job["status"] != JobStatus.PROCESSING or job.get("engine") != job_state.MEDIACONVERT_ENGINE:
            logger.info("job is not waiting for MediaConvert", extra={"status": job["status"], "engine": job["engine"]})
            return SubmitResult(Outcome.NOT_APPLICABLE)
        if message.source.bucket != self._settings.uploads_bucket:
            raise MalformedMessage(f"source bucket {message.source.bucket!r} is not this stack's uploads bucket")
        plans = encode_plans(message)
        if message.source.etag is None:
            # An older message: nothing to verify, so the copy takes whatever the key holds (today's behaviour).
            logger.warning("the message names no validated ETag; copying the upload unverified")
        try:
            source_key = self._sources.pin(
                bucket=message.source.bucket, key=message.source.key, etag=message.source.etag, job_id=message.jobId
            )
        except SourceReplaced as err:
            return self._refuse(job, plans, SOURCE_REPLACED_MESSAGE, str(err), code=SOURCE_REPLACED_CODE)
        target = JobTarget(
            job_id=message.jobId,
            stack=self._settings.stack_name,
            source_bucket=message.source.bucket,
            source_key=source_key,
            outputs_bucket=self._settings.outputs_bucket,
            has_audio=message.probe.hasAudio,
            role_arn=self._settings.role_arn,
            queue_arn=self._settings.queue_arn,
        )
        try:
            created = self._mediaconvert.create_job(create_job_request(target, plans))
        except UnsupportedByMediaConvert as err:
            return self._refuse(job, plans, str(err), detail=str(err))
        except SettingsRefused as err:
            return self._refuse(job, plans, "MediaConvert refused the encoding settings for this video", str(err))
        logger.info("MediaConvert job created", extra={"mediaConvertJobId": created.id, "status": created.status})
        return self._record(message.jobId, created.id)

    def _record(self, job_id: str, mediaconvert_job_id: str) -> SubmitResult:
        record = partial(
            job_state.record_mediaconvert_job,
            mediaconvert_job_id=mediaconvert_job_id,
            client_request_token=client_request_token(job_id),
            now=self._clock(),
        )
        if self._jobs.change(job_id, record) is not None:
            return SubmitResult(Outcome.SUBMITTED, mediaconvert_job_id)
        current = self._jobs.get(job_id)
        recorded = job_state.mediaconvert_job_id(current)
        if recorded == mediaconvert_job_id:
            logger.info("a concurrent attempt recorded the same MediaConvert job (same request token)")
            return SubmitResult(Outcome.ALREADY_SUBMITTED, recorded)
        if recorded:
            logger.error(
                "a second MediaConvert job was created for this job; the recorded one stays",
                extra={"mediaConvertJobId": mediaconvert_job_id, "recordedMediaConvertJobId": recorded},
            )
            return SubmitResult(Outcome.DUPLICATE_JOB, mediaconvert_job_id)
        logger.warning("the job ended before its MediaConvert job was recorded", extra={"status": current["status"]})
        return SubmitResult(Outcome.NOT_APPLICABLE, mediaconvert_job_id)

    def _refuse(
        self, job: Job, plans: list[EncodePlan], message: str, detail: str, *, code: str = REFUSED_CODE
    ) -> SubmitResult:
        """Announce every planned rendition as failed; the tracker fails the job and says why."""
        logger.warning("MediaConvert cannot make this job", extra={"reason": detail, "code": code})
        for plan in plans:
            self._events.publish(
                DetailType.RENDITION_FAILED,
                {
                    "jobId": job["jobId"],
                    "ownerId": job["ownerId"],
                    "rendition": plan.name,
                    "engine": job_state.MEDIACONVERT_ENGINE,
                    "error": {"code": code, "message": message},
                },
            )
        return SubmitResult(Outcome.REFUSED)
