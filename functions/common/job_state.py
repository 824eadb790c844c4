"""The job state machine: the one place that decides how a job record may change.

Every function here is pure: it takes the job as stored (a `JobRecord`, functions/contracts/jobs.py) and returns
the new record, or None when the change does not apply (a duplicate, an event that arrives after a later one, a job
of another state). The jobs table adapter writes the result with a condition on the version it read, so
concurrent writers cannot both win, and a None never writes at all.

Job:        AWAITING_UPLOAD -> VALIDATING -> PROCESSING -> COMPLETED | FAILED
            AWAITING_UPLOAD | VALIDATING -> REJECTED | EXPIRED; VALIDATING -> FAILED (ingest gave up)
            AWAITING_UPLOAD | VALIDATING | PROCESSING -> CANCELED (its owner deleted it while it ran)
            any but DELETED, deletion asked for -> DELETED (once the tracker deleted its files)
            FAILED (retry) | COMPLETED (reprocess) -> VALIDATING, as the next attempt
Rendition:  QUEUED -> PROCESSING -> COMPLETED | FAILED;  SKIPPED from the start (no upscaling);
            QUEUED | PROCESSING -> CANCELED with its job
Attempts:   every report names the attempt it belongs to; a report of an earlier attempt changes nothing
Segments:   a rendition encoded in segments records each part (video segment or audio) as it lands; the one write
            that records its last part asks for the stitch (the fan-in); the stitch's `Rendition Completed` ends it
Playback:   a video job whose renditions all settled, none failed and one at least completed, stays PROCESSING
            with playback QUEUED (the fan-in: the one write that settles the last rendition asks for packaging);
            QUEUED -> COMPLETED (the job completes) | FAILED (the job fails, PACKAGING_FAILED)
Bookkeeping that leaves the status alone: the outcome announced, the packaging request published, a webhook
delivery dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.contracts.jobs import (
    OPEN_MARKER,
    TERMINAL_JOB_STATUSES,
    TERMINAL_RENDITION_STATUSES,
    Deletion,
    ErrorInfo,
    ImageMetadata,
    JobRecord,
    JobSource,
    JobStatus,
    MediaConvertSubmission,
    PlaybackRecord,
    Probe,
    RenditionRecord,
    RenditionStatus,
    Rerun,
    RerunMode,
    StitchRequest,
    WebhookFailureEntry,
)
from functions.contracts.media import MediaType, SegmentPart, UnitKind
from functions.contracts.playback import PackagingStatus, PlaybackPackage

# A pure change to a job: the new record, or None when it does not apply. JobsTable.change writes the result.
Transition = Callable[[JobRecord], JobRecord | None]

JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.AWAITING_UPLOAD: frozenset(
        {JobStatus.VALIDATING, JobStatus.REJECTED, JobStatus.EXPIRED, JobStatus.CANCELED}
    ),
    JobStatus.VALIDATING: frozenset(
        {JobStatus.PROCESSING, JobStatus.REJECTED, JobStatus.EXPIRED, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.PROCESSING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.FAILED: frozenset({JobStatus.VALIDATING}),
    JobStatus.COMPLETED: frozenset({JobStatus.VALIDATING}),
}
RERUN_FROM: dict[RerunMode, JobStatus] = {RerunMode.RETRY: JobStatus.FAILED, RerunMode.REPROCESS: JobStatus.COMPLETED}
RENDITION_TRANSITIONS: dict[RenditionStatus, frozenset[RenditionStatus]] = {
    RenditionStatus.QUEUED: frozenset(
        {RenditionStatus.PROCESSING, RenditionStatus.COMPLETED, RenditionStatus.FAILED, RenditionStatus.CANCELED}
    ),
    RenditionStatus.PROCESSING: frozenset(
        {RenditionStatus.COMPLETED, RenditionStatus.FAILED, RenditionStatus.CANCELED}
    ),
}

# Fields of a rendition that only the state machine sets; an output report cannot overwrite them.
_STATE_KEYS = frozenset({"name", "status", "order", "progress", "error", "reason"})
# What a transcoder reports about an output it wrote.
_OUTPUT_KEYS = frozenset(RenditionRecord.model_fields) - _STATE_KEYS


def can_move_job(current: str, target: str) -> bool:
    return JobStatus(target) in JOB_TRANSITIONS.get(JobStatus(current), frozenset())


def can_move_rendition(current: str, target: str) -> bool:
    return RenditionStatus(target) in RENDITION_TRANSITIONS.get(RenditionStatus(current), frozenset())


def new_job(
    *,
    job_id: str,
    owner_id: str,
    source: JobSource,
    now: int,
    upload_deadline: int,
    retention_seconds: int,
) -> JobRecord:
    """A job waiting for its upload. Times are epoch milliseconds except the TTL (epoch seconds, as DynamoDB wants)."""
    return JobRecord(
        jobId=job_id,
        ownerId=owner_id,
        status=JobStatus.AWAITING_UPLOAD,
        version=0,
        createdAt=now,
        updatedAt=now,
        source=source,
        openJob=OPEN_MARKER,
        deadlineAt=upload_deadline,
        expiresAt=(now // 1000) + retention_seconds,
    )


def _copy(job: JobRecord, now: int) -> JobRecord:
    changed = job.model_copy(deep=True)
    changed.updatedAt = now
    return changed


def _moved(job: JobRecord, status: JobStatus, now: int) -> JobRecord:
    changed = _copy(job, now)
    changed.status = status
    if status in TERMINAL_JOB_STATUSES:
        changed.openJob = None
        changed.deadlineAt = None
    return changed


def begin_validation(job: JobRecord, *, now: int, deadline: int) -> JobRecord | None:
    """The upload arrived: AWAITING_UPLOAD -> VALIDATING, with the processing deadline from now on."""
    if job.status != JobStatus.AWAITING_UPLOAD:
        return None
    changed = _moved(job, JobStatus.VALIDATING, now)
    changed.deadlineAt = deadline
    return changed


def reject(
    job: JobRecord, *, code: str, message: str, now: int, probe: Probe | Mapping[str, Any] | None = None
) -> JobRecord | None:
    """The upload broke a rule: the reason goes on the job for the client to read."""
    if not can_move_job(job.status, JobStatus.REJECTED):
        return None
    changed = _moved(job, JobStatus.REJECTED, now)
    changed.error = ErrorInfo(code=code, message=message)
    if probe is not None:
        changed.probe = Probe.model_validate(probe)
    return changed


def begin_processing(
    job: JobRecord,
    *,
    media_type: str,
    engine: str,
    probe: Probe | Mapping[str, Any],
    planned: Iterable[Mapping[str, Any]],
    now: int,
    source_etag: str | None = None,
) -> JobRecord | None:
    """Validation passed: VALIDATING -> PROCESSING with the rendition plan (and the ETag of the upload validated, which
    a later attempt reads again).

    `planned` items carry `name`, `status` (QUEUED or SKIPPED), the target `height`/`width`, and for
    SKIPPED a `reason`.
    """
    if job.status != JobStatus.VALIDATING:
        return None
    changed = _moved(job, JobStatus.PROCESSING, now)
    if source_etag:
        changed.source.etag = source_etag
    changed.mediaType, changed.engine, changed.progress = media_type, engine, 0
    changed.probe = Probe.model_validate(probe)
    changed.renditions = {}
    for order, item in enumerate(planned):
        status = RenditionStatus(item["status"])
        if status not in (RenditionStatus.QUEUED, RenditionStatus.SKIPPED):
            raise ValueError(f"rendition {item['name']}: a plan holds QUEUED or SKIPPED renditions, not {status}")
        if item["name"] in changed.renditions:
            raise ValueError(f"rendition {item['name']} is planned twice")
        changed.renditions[item["name"]] = RenditionRecord.model_validate(
            {**item, "status": status, "order": order, "progress": 0}
        )
    return _settle(changed, now)


def start_rendition(job: JobRecord, *, name: str, now: int, attempt: int = 1) -> JobRecord | None:
    """A transcoder picked the rendition up."""
    rendition = job.renditions.get(name)
    if job.status != JobStatus.PROCESSING or rendition is None or attempt != job.attempt:
        return None
    if not can_move_rendition(rendition.status, RenditionStatus.PROCESSING):
        return None
    changed = _copy(job, now)
    changed.renditions[name].status = RenditionStatus.PROCESSING
    return changed


def record_progress(job: JobRecord, *, name: str, percent: int, now: int, attempt: int = 1) -> JobRecord | None:
    """Progress only ever rises; a stale or repeated report is a no-op.

    Any report on a QUEUED rendition (0% included: the transcoder's "started") moves it to PROCESSING.
    """
    rendition = job.renditions.get(name)
    if job.status != JobStatus.PROCESSING or rendition is None or attempt != job.attempt:
        return None
    if rendition.status not in (RenditionStatus.QUEUED, RenditionStatus.PROCESSING):
        return None
    percent = max(rendition.progress, min(99, int(percent)))
    if percent == rendition.progress and rendition.status == RenditionStatus.PROCESSING:
        return None
    changed = _copy(job, now)
    changed.renditions[name].status = RenditionStatus.PROCESSING
    changed.renditions[name].progress = percent
    changed.progress = overall_progress(changed)
    return changed


def record_segment(
    job: JobRecord, *, name: str, part: SegmentPart, index: int, now: int, attempt: int = 1
) -> JobRecord | None:
    """A part of a segment-parallel rendition landed: note it (progress follows); the write that notes the last part
    asks for the stitch. A repeated or late part, or one of another attempt, changes nothing."""
    rendition = job.renditions.get(name)
    if job.status != JobStatus.PROCESSING or rendition is None or attempt != job.attempt:
        return None
    plan = rendition.segments
    if plan is None or rendition.status not in (RenditionStatus.QUEUED, RenditionStatus.PROCESSING):
        return None
    if part == SegmentPart.VIDEO and (index >= plan.count or index in plan.done):
        return None
    if part == SegmentPart.AUDIO and (not plan.audio or plan.audioDone):
        return None
    if part == SegmentPart.STITCH:
        return None
    changed = _copy(job, now)
    record = changed.renditions[name]
    landed = record.segments
    assert landed is not None
    if part == SegmentPart.VIDEO:
        landed.done = sorted({*landed.done, index})
    else:
        landed.audioDone = True
    if landed.parts_done == landed.parts and landed.stitch is None:
        landed.stitch = StitchRequest(requestedAt=now)
    record.status = RenditionStatus.PROCESSING
    # The stitch counts as one more part: the rendition reaches 100 only when its MP4 exists.
    record.progress = max(record.progress, min(99, landed.parts_done * 100 // (landed.parts + 1)))
    changed.progress = overall_progress(changed)
    return changed


def stitch_requested(before: JobRecord, after: JobRecord) -> list[str]:
    """The renditions whose stitch this write asked for (the fan-in fired)."""
    return [
        name
        for name, rendition in after.renditions.items()
        if rendition.segments is not None
        and rendition.segments.stitch is not None
        and (name not in before.renditions or _stitch_of(before, name) is None)
    ]


def _stitch_of(job: JobRecord, name: str) -> StitchRequest | None:
    segments = job.renditions[name].segments
    return segments.stitch if segments is not None else None


def awaiting_stitch_request(job: JobRecord) -> list[str]:
    """Renditions whose stitch was asked for but not yet published (the write succeeded, the publish failed)."""
    if job.status != JobStatus.PROCESSING:
        return []
    return [
        rendition.name
        for rendition in job.renditions_in_order()
        if rendition.status == RenditionStatus.PROCESSING
        and rendition.segments is not None
        and rendition.segments.stitch is not None
        and rendition.segments.stitch.requestPublishedAt is None
    ]


def mark_stitch_requested(job: JobRecord, *, name: str, now: int) -> JobRecord | None:
    """Bookkeeping after the stitch unit was published, so a retried delivery publishes only what was missed."""
    if name not in awaiting_stitch_request(job):
        return None
    changed = job.model_copy(deep=True)
    stitch = _stitch_of(changed, name)
    assert stitch is not None
    stitch.requestPublishedAt = now
    return changed


def record_image_metadata(job: JobRecord, *, metadata: ImageMetadata, now: int, attempt: int = 1) -> JobRecord | None:
    """An image's metadata unit read its metadata: it lands on the job as `image`, once, while the job runs."""
    if job.status != JobStatus.PROCESSING or job.image == metadata or attempt != job.attempt:
        return None
    changed = _copy(job, now)
    changed.image = metadata
    return changed


def complete_rendition(
    job: JobRecord, *, name: str, output: Mapping[str, Any], now: int, attempt: int = 1
) -> JobRecord | None:
    """A rendition's output exists: record what was read back from it (width, height, durationMs, bytes, key).

    Fields the state machine owns (name, status, order, progress, error, reason) are not taken from `output`.
    """
    details = {key: value for key, value in output.items() if key in _OUTPUT_KEYS}
    return _finish_rendition(
        job, name=name, status=RenditionStatus.COMPLETED, details=details, now=now, attempt=attempt
    )


def fail_rendition(
    job: JobRecord, *, name: str, code: str, message: str, now: int, attempt: int = 1
) -> JobRecord | None:
    details = {"error": ErrorInfo(code=code, message=message)}
    return _finish_rendition(job, name=name, status=RenditionStatus.FAILED, details=details, now=now, attempt=attempt)


def _finish_rendition(
    job: JobRecord, *, name: str, status: RenditionStatus, details: Mapping[str, Any], now: int, attempt: int
) -> JobRecord | None:
    rendition = job.renditions.get(name)
    if job.status != JobStatus.PROCESSING or rendition is None or attempt != job.attempt:
        return None
    if not can_move_rendition(rendition.status, status):
        return None
    changed = _copy(job, now)
    finished = changed.renditions[name]
    changed.renditions[name] = RenditionRecord.model_validate(
        {**finished.model_dump(), **details, "status": status, "progress": 100}
    )
    return _settle(changed, now)


def fail_job(job: JobRecord, *, code: str, message: str, now: int) -> JobRecord | None:
    """Give up on a job that can no longer finish (deadline passed, poison message): every open rendition fails, and
    so does a playback package still to come (a late `Packaging Completed` then finds the job FAILED)."""
    if not can_move_job(job.status, JobStatus.FAILED):
        return None
    changed = _moved(job, JobStatus.FAILED, now)
    changed.error = ErrorInfo(code=code, message=message)
    for rendition in changed.renditions.values():
        if rendition.status not in TERMINAL_RENDITION_STATUSES:
            rendition.status = RenditionStatus.FAILED
            rendition.error = ErrorInfo(code=code, message=message)
    if changed.playback is not None and changed.playback.status == PackagingStatus.QUEUED:
        changed.playback.status = PackagingStatus.FAILED
        changed.playback.error = ErrorInfo(code=code, message=message)
    return changed


def expire_if_overdue(job: JobRecord, *, now: int) -> JobRecord | None:
    """The sweep: an upload that never came expires; processing past its deadline fails."""
    deadline = job.deadlineAt
    if deadline is None or now < deadline or job.is_terminal:
        return None
    if job.status == JobStatus.AWAITING_UPLOAD:
        changed = _moved(job, JobStatus.EXPIRED, now)
        changed.error = ErrorInfo(code="UPLOAD_EXPIRED", message="no upload arrived before the upload form expired")
        return changed
    return fail_job(job, code="PROCESSING_TIMEOUT", message="the job did not finish before its deadline", now=now)


JOB_CANCELED = "JOB_CANCELED"


def cancel(job: JobRecord, *, now: int) -> JobRecord | None:
    """Its owner deleted a job that had not finished: CANCELED; open renditions are CANCELED and a package still to
    come fails, so a late report finds nothing to change. Workers read the status before they start and between
    steps, and stop."""
    if not can_move_job(job.status, JobStatus.CANCELED):
        return None
    changed = _moved(job, JobStatus.CANCELED, now)
    for rendition in changed.renditions.values():
        if rendition.status not in TERMINAL_RENDITION_STATUSES:
            rendition.status = RenditionStatus.CANCELED
    if changed.playback is not None and changed.playback.status == PackagingStatus.QUEUED:
        changed.playback.status = PackagingStatus.FAILED
        changed.playback.error = ErrorInfo(code=JOB_CANCELED, message="the job was canceled")
    return changed


def request_deletion(job: JobRecord, *, now: int) -> JobRecord | None:
    """`DELETE /jobs/{id}`: a job still running is canceled, and the deletion of its files is asked for, once (a
    repeated DELETE finds it asked for and only re-announces it)."""
    if job.deletion is not None or job.status == JobStatus.DELETED:
        return None
    running = not job.is_terminal
    changed = cancel(job, now=now) if running else _copy(job, now)
    if changed is None:
        return None
    changed.deletion = Deletion(requestedAt=now, canceled=running)
    return changed


def complete_deletion(job: JobRecord, *, now: int) -> JobRecord | None:
    """The tracker deleted the job's source and outputs: DELETED, and the record no longer names any object. The
    outcome is announced again (`Job Deleted`)."""
    if job.deletion is None or job.deletion.completedAt is not None or not job.is_terminal:
        return None
    changed = _moved(job, JobStatus.DELETED, now)
    changed.deletion = job.deletion.model_copy(update={"completedAt": now})
    changed.source = changed.source.model_copy(update={"bucket": None, "key": None, "etag": None})
    for rendition in changed.renditions.values():
        rendition.bucket, rendition.key = None, None
    if changed.playback is not None:
        changed.playback.package = None
    changed.hls = None
    changed.outcomeAnnouncedAt = None
    return changed


def begin_rerun(job: JobRecord, *, mode: RerunMode, now: int, deadline: int) -> JobRecord | None:
    """`POST /jobs/{id}/retry` (a FAILED job) or `/reprocess` (a COMPLETED one): the next attempt, VALIDATING until
    ingest plans it again (from the probe it recorded, with the stack's current ladder). What the last attempt made
    is forgotten here; outputs at the same keys are overwritten by the new one."""
    if job.status != RERUN_FROM[mode] or job.deletion is not None:
        return None
    changed = _moved(job, JobStatus.VALIDATING, now)
    changed.attempt = job.attempt + 1
    changed.rerun = Rerun(mode=mode, requestedAt=now, previousStatus=job.status)
    changed.renditions, changed.progress, changed.error = {}, 0, None
    changed.playback, changed.mediaconvert, changed.hls, changed.image = None, None, None, None
    changed.outcomeAnnouncedAt = None
    changed.openJob, changed.deadlineAt = OPEN_MARKER, deadline
    return changed


def is_current(job: JobRecord, attempt: int) -> bool:
    """Whether work of `attempt` is still wanted: the job runs that attempt and nobody canceled it."""
    return not job.is_terminal and job.attempt == attempt and job.deletion is None


MEDIACONVERT_ENGINE = "mediaconvert"


def mediaconvert_job_id(job: JobRecord) -> str | None:
    """The MediaConvert job recorded for this job (`job.mediaconvert.jobId`), if one was submitted."""
    return job.mediaconvert.jobId if job.mediaconvert else None


def record_mediaconvert_job(
    job: JobRecord, *, mediaconvert_job_id: str, client_request_token: str, now: int, attempt: int = 1
) -> JobRecord | None:
    """The one MediaConvert job that encodes this job was created: record it as `mediaconvert`, once.

    Only a PROCESSING job of the mediaconvert engine takes the record, and only while it has none: a second
    submission (a redelivered message, a retried function) finds it and does not create another job, and a
    job that already ended is not reopened by a late record. Returns None for all of those.
    """
    if job.status != JobStatus.PROCESSING or job.engine != MEDIACONVERT_ENGINE or attempt != job.attempt:
        return None
    if job.mediaconvert:
        return None
    changed = _copy(job, now)
    changed.mediaconvert = MediaConvertSubmission(
        jobId=mediaconvert_job_id, clientRequestToken=client_request_token, submittedAt=now
    )
    return changed


PACKAGING_FAILED = "PACKAGING_FAILED"


def needs_playback(job: JobRecord) -> bool:
    """A video job gets a playback package made of its completed video renditions (contracts/playback.py)."""
    return job.mediaType == MediaType.VIDEO and any(
        r.kind == UnitKind.VIDEO and r.status == RenditionStatus.COMPLETED for r in job.renditions.values()
    )


def packaging_sources(job: JobRecord) -> list[RenditionRecord]:
    """The completed video renditions the packager remuxes, in ladder order."""
    return [r for r in job.renditions_in_order() if r.kind == UnitKind.VIDEO and r.status == RenditionStatus.COMPLETED]


def packaging_requested(before: JobRecord, after: JobRecord) -> bool:
    """Whether this write was the fan-in: the one that asked for the job's packaging."""
    return before.playback is None and after.playback is not None and after.playback.status == PackagingStatus.QUEUED


def awaiting_packaging_request(job: JobRecord) -> bool:
    """Packaging was asked for but its request not yet published (an earlier attempt failed after the write)."""
    playback = job.playback
    return (
        job.status == JobStatus.PROCESSING
        and playback is not None
        and playback.status == PackagingStatus.QUEUED
        and playback.requestPublishedAt is None
    )


def mark_packaging_requested(job: JobRecord, *, now: int) -> JobRecord | None:
    """Bookkeeping after `Packaging Requested` was put, so a retried delivery publishes only what was missed."""
    if not awaiting_packaging_request(job):
        return None
    changed = job.model_copy(deep=True)
    changed.playback = job.playback.model_copy(update={"requestPublishedAt": now})
    return changed


def _awaits_package(job: JobRecord, attempt: int) -> bool:
    playback = job.playback
    return (
        job.status == JobStatus.PROCESSING
        and playback is not None
        and playback.status == PackagingStatus.QUEUED
        and attempt == job.attempt
    )


def complete_playback(job: JobRecord, *, package: PlaybackPackage, now: int, attempt: int = 1) -> JobRecord | None:
    """The packager made the ladder, poster and thumbnails: record them; the job completes."""
    if not _awaits_package(job, attempt):
        return None
    changed = _copy(job, now)
    changed.playback = job.playback.model_copy(update={"status": PackagingStatus.COMPLETED, "package": package})
    return _settle(changed, now)


def fail_playback(job: JobRecord, *, code: str, message: str, now: int, attempt: int = 1) -> JobRecord | None:
    """The packager gave up: the job fails with its reason (the renditions stay COMPLETED and downloadable)."""
    if not _awaits_package(job, attempt):
        return None
    changed = _copy(job, now)
    error = ErrorInfo(code=code, message=message)
    changed.playback = job.playback.model_copy(update={"status": PackagingStatus.FAILED, "error": error})
    return _settle(changed, now)


def mark_outcome_announced(job: JobRecord, *, now: int) -> JobRecord | None:
    """Bookkeeping after the terminal event was published, so a retried delivery announces only what was missed.

    A write a terminal job still takes; it changes neither the status nor anything a client reads.
    """
    if not job.is_terminal or job.outcomeAnnouncedAt is not None:
        return None
    changed = job.model_copy(deep=True)
    changed.outcomeAnnouncedAt = now
    return changed


# An owner has at most 10 endpoints (functions/contracts/webhooks.py) and a job one outcome event; the bound leaves
# room for endpoints deleted and re-created while a job's deliveries were retrying, and keeps the record small.
MAX_WEBHOOK_FAILURES = 20
MAX_WEBHOOK_ERROR_CHARS = 500


@dataclass(frozen=True)
class WebhookFailure:
    """A webhook delivery of this job that gave up after its last attempt (its task is in the DLQ)."""

    owner_id: str
    """Whose endpoint it is: a job of another owner is never touched."""
    endpoint_id: str
    event_type: str
    webhook_id: str
    attempts: int
    status_code: int | None
    """The receiver's last answer; None when there was none (timeout, refused address, connection failure)."""
    error: str | None

    @property
    def key(self) -> str:
        """Its key in `job.webhookFailures`: one entry per endpoint and event."""
        return f"{self.endpoint_id}#{self.event_type}"


def note_webhook_failure(job: JobRecord, failure: WebhookFailure, *, now: int) -> JobRecord | None:
    """Record a dead-lettered delivery in `webhookFailures`, for the job's owner to see; the status stays.

    Works on any job of the endpoint's owner (deliveries are only made for terminal ones). A failure already recorded
    for the same endpoint, event and webhook-id is a no-op: duplicated and redelivered tasks are normal. At most
    MAX_WEBHOOK_FAILURES entries are kept; the oldest make way. `updatedAt` moves, since a client reads the entry.
    """
    if job.ownerId != failure.owner_id:
        return None
    recorded = (job.webhookFailures or {}).get(failure.key)
    if recorded is not None and recorded.webhookId == failure.webhook_id:
        return None
    changed = _copy(job, now)
    kept = changed.webhookFailures or {}
    kept.pop(failure.key, None)
    oldest_first = sorted(kept, key=lambda key: (kept[key].failedAt, key))
    for key in oldest_first[: max(0, len(kept) - (MAX_WEBHOOK_FAILURES - 1))]:
        del kept[key]
    kept[failure.key] = WebhookFailureEntry(
        endpointId=failure.endpoint_id,
        eventType=failure.event_type,
        webhookId=failure.webhook_id,
        attempts=failure.attempts,
        statusCode=failure.status_code,
        error=failure.error[:MAX_WEBHOOK_ERROR_CHARS] if failure.error is not None else None,
        failedAt=now,
    )
    changed.webhookFailures = kept
    return changed


def apply_in_order(job: JobRecord, transitions: Iterable[Transition]) -> JobRecord | None:
    """Several transitions as one write: each sees the previous one's result; None when none of them applied."""
    current, applied = job, False
    for transition in transitions:
        changed = transition(current)
        if changed is not None:
            current, applied = changed, True
    return current if applied else None


def open_rendition_names(job: JobRecord) -> list[str]:
    """Renditions that can still change (QUEUED or PROCESSING), in plan order."""
    return [r.name for r in job.renditions_in_order() if r.status not in TERMINAL_RENDITION_STATUSES]


def overall_progress(job: JobRecord) -> int:
    """Mean progress of the renditions that will produce output; SKIPPED ones do not count."""
    counted = [r for r in job.renditions.values() if r.status != RenditionStatus.SKIPPED]
    if not counted:
        return 100 if job.status == JobStatus.COMPLETED else 0
    return sum(r.progress for r in counted) // len(counted)


def _settle(job: JobRecord, now: int) -> JobRecord:
    """A PROCESSING job whose renditions are all terminal ends: FAILED if any failed; a video job then waits for its
    playback package (asking for it on the way), and ends with it; any other job is COMPLETED."""
    renditions = job.renditions.values()
    if job.status != JobStatus.PROCESSING or any(r.status not in TERMINAL_RENDITION_STATUSES for r in renditions):
        job.progress = overall_progress(job)
        return job
    failed = [r for r in job.renditions_in_order() if r.status == RenditionStatus.FAILED]
    if failed:
        settled = _moved(job, JobStatus.FAILED, now)
        first = failed[0]
        error = first.error or ErrorInfo(code="RENDITION_FAILED", message="a rendition failed")
        settled.error = ErrorInfo(code=error.code, message=f"{first.name}: {error.message}")
    elif needs_playback(job) and (job.playback is None or job.playback.status == PackagingStatus.QUEUED):
        if job.playback is None:
            job.playback = PlaybackRecord(status=PackagingStatus.QUEUED, requestedAt=now)
        job.progress = min(99, overall_progress(job))  # the package is still to come
        return job
    elif job.playback is not None and job.playback.status == PackagingStatus.FAILED:
        settled = _moved(job, JobStatus.FAILED, now)
        reason = job.playback.error.message if job.playback.error else "the renditions could not be packaged"
        settled.error = ErrorInfo(code=PACKAGING_FAILED, message=f"playback: {reason}")
    else:
        settled = _moved(job, JobStatus.COMPLETED, now)
    settled.progress = 100
    return settled
