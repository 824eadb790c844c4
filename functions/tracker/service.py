"""The tracker's domain: events mapped to state-machine transitions, applied to jobs, outcomes announced, the sweep.

Two kinds of event move a job after ingest. The pipeline's own workers report each unit of work
(`functions/contracts/events.py`): a video rendition, an image derivative or an image's metadata (whose completion
carries the metadata, for the job's `image`), an audio rendition or its waveform; all settle the job alike.
MediaConvert reports one job that produces every QUEUED rendition of a pipeline job (FILE_GROUP outputs named
`outputs/{jobId}/{rendition}.mp4`; any other group, such as the HLS package of jobs submitted by earlier releases, is
ignored). Deliveries are at least once and in any order, so every
mapping is a transition the state machine may turn down: a PROGRESSING after COMPLETE, a second COMPLETE, a
STATUS_UPDATE for a finished job all come out as no-ops.

The write that settles a video job's last rendition asks for its playback package instead of completing it
(`job_state._settle`): the tracker then puts `Packaging Requested` for the packager, and the packager's
`Packaging Completed` or `Packaging Failed` ends the job. Only one write can ask (it is conditional on the version
it read), and it names the event that asked: the write first, then the put, then `playback.requestPublishedAt`. A
retry of that same event that finds the job asking but the request unpublished puts it then, and no other event does,
so completions that arrive together or twice make one request.

A rendition encoded in segments (`job_state.record_segment`) makes the same kind of fan-in: each `Segment Completed`
notes its part, and the one write that notes the last part asks for the stitch, naming the event that asked. The
tracker then publishes the stitch unit to the fan-out topic (the rendition's own queue receives it) and marks
`segments.stitch.requestPublishedAt`; the stitch's `Rendition Completed` settles the rendition like any other.

A job its owner deleted (`Job Deletion Requested`, put by the api after it canceled or marked the job) loses its
files here: its MediaConvert job is canceled if it was still running, every object under `uploads/{jobId}/` and
`outputs/{jobId}/` is deleted, and the job becomes DELETED (`Job Deleted` follows). Work already running when the job
was canceled may still write an output after that; its report (or MediaConvert's) finds the job deleted, and the
tracker deletes the job's files again.

Every worker report names the job's attempt it belongs to; the state machine applies a report only to that attempt,
so a retried or reprocessed job is never moved by its earlier attempt's late reports.

A job's outcome is announced at least once: the terminal write comes first, then the event and the metric,
then a bookkeeping write (`outcomeAnnouncedAt`). If the event cannot be put, the invocation fails and is
retried; the retry finds the job terminal but unannounced and announces it then.

The jobs table, the bus, the outputs bucket and the metrics are ports (Protocols below); `adapters.py` and
`functions/common/` hold their boto3 implementations.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from functions.common import job_state
from functions.common.client_messages import client_safe
from functions.common.job_state import MEDIACONVERT_ENGINE, Transition
from functions.common.jobs_table import ConcurrentUpdate, JobNotFound
from functions.common.observability import logger
from functions.contracts.events import (
    TERMINAL_DETAIL_TYPES,
    DetailType,
    EventDetail,
    JobDeletionRequested,
    JobOutcome,
    PackagingCompleted,
    PackagingEvent,
    PackagingRequested,
    RenditionCompleted,
    RenditionEvent,
    RenditionProgress,
    SegmentCompleted,
    outcome_event,
)
from functions.contracts.fanout import FanOutMessage
from functions.contracts.jobs import ImageMetadata, JobRecord, JobStatus
from functions.contracts.media import UnitKind
from functions.contracts.mediaconvert import UserMetadata
from functions.contracts.playback import PackagingSource
from functions.tracker.settings import TrackerSettings

MEDIACONVERT_SOURCE = "aws.mediaconvert"
MEDIACONVERT_DETAIL_TYPE = "MediaConvert Job State Change"
OUTPUT_EXTENSION = ".mp4"
OUTPUT_CONTENT_TYPE = "video/mp4"
OUTPUT_MISSING = "MEDIACONVERT_OUTPUT_MISSING"
CANCELED = "MEDIACONVERT_CANCELED"

# The outcomes the tracker writes, and so announces; REJECTED is ingest's to announce.
OUTCOME_METRICS: dict[str, str] = {
    JobStatus.COMPLETED: "JobsCompleted",
    JobStatus.FAILED: "JobsFailed",
    JobStatus.EXPIRED: "JobsExpired",
    JobStatus.DELETED: "JobsDeleted",
}

# What the handler returns: `outcome` (applied, unchanged, ignored, job_not_found, swept) and what it concerned.
Result = dict[str, Any]


# --- ports ---------------------------------------------------------------------------------------------------------


class JobStore(Protocol):
    def get(self, job_id: str) -> JobRecord:
        """Raises JobNotFound."""
        ...

    def change(self, job_id: str, transition: Transition) -> tuple[JobRecord, JobRecord] | None:
        """Apply the transition with a conditional write: (before, after), or None when it changed nothing.

        Raises JobNotFound and ConcurrentUpdate (functions/common/jobs_table.py).
        """
        ...

    def open_jobs_due(self, now: int) -> Iterable[str]: ...


class EventPublisher(Protocol):
    def publish(self, detail_type: DetailType, detail: EventDetail) -> None: ...


class FanOutTopic(Protocol):
    def publish(self, body: str, attributes: dict[str, dict[str, str]]) -> str:
        """Publish a fan-out message (the stitch unit); returns the message id."""


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


class OutputReadFailed(RuntimeError):
    """An output's size could not be read back; the rendition's `bytes` stays unknown."""


class OutputStore(Protocol):
    def size(self, bucket: str, key: str) -> int:
        """The object's byte count; raises OutputReadFailed."""
        ...


class JobFiles(Protocol):
    def delete_all(self, job_id: str) -> int:
        """Delete every object under `uploads/{jobId}/` and `outputs/{jobId}/`; returns how many there were."""
        ...


class MediaConvertJobs(Protocol):
    def cancel_job(self, mediaconvert_job_id: str) -> None:
        """CancelJob; a job that already ended or is unknown is left as it is."""
        ...


# --- MediaConvert "Job State Change" events ------------------------------------------------------------------------


class MediaConvertStatus(StrEnum):
    SUBMITTED = "SUBMITTED"
    PROGRESSING = "PROGRESSING"
    INPUT_INFORMATION = "INPUT_INFORMATION"
    STATUS_UPDATE = "STATUS_UPDATE"
    COMPLETE = "COMPLETE"
    CANCELED = "CANCELED"
    ERROR = "ERROR"
    NEW_WARNING = "NEW_WARNING"
    QUEUE_HOP = "QUEUE_HOP"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class VideoDetails(_Model):
    width_in_px: int | None = None
    height_in_px: int | None = None


class OutputDetail(_Model):
    output_file_paths: list[str] = Field(default_factory=list)
    duration_in_ms: int | None = None
    video_details: VideoDetails | None = None


class OutputGroupDetail(_Model):
    type: str
    output_details: list[OutputDetail] = Field(default_factory=list)
    playlist_file_paths: list[str] = Field(default_factory=list)


class JobProgress(_Model):
    job_percent_complete: int | None = None


class JobStateChange(_Model):
    """The `detail` of a MediaConvert Job State Change event (the fields the tracker reads)."""

    status: str
    mediaconvert_job_id: str | None = Field(default=None, alias="jobId")
    user_metadata: UserMetadata = Field(default_factory=UserMetadata)
    job_progress: JobProgress | None = None
    output_group_details: list[OutputGroupDetail] = Field(default_factory=list)
    error_code: int | str | None = None
    error_message: str | None = None

    @property
    def job_id(self) -> str | None:
        """The pipeline's job, as the submit function put it in userMetadata (not MediaConvert's own id)."""
        return self.user_metadata.jobId or None


def parse_job_state_change(detail: dict[str, Any]) -> JobStateChange:
    """Raises pydantic.ValidationError when the detail does not have a MediaConvert shape."""
    return JobStateChange.model_validate(detail)


def belongs_to(change: JobStateChange, stack_name: str) -> bool:
    """Defence in depth behind the rule's filter: only this stack's MediaConvert jobs move its jobs."""
    return change.user_metadata.pipeline == stack_name


def s3_location(uri: str) -> tuple[str, str] | None:
    """`s3://bucket/key` as (bucket, key); None for anything else."""
    parts = urlsplit(uri)
    key = unquote(parts.path.lstrip("/"))
    if parts.scheme != "s3" or not parts.netloc or not key:
        return None
    return parts.netloc, key


@dataclass(frozen=True)
class RenditionOutput:
    """One FILE_GROUP output, named after the rendition it is (`{rendition}.mp4`)."""

    rendition: str
    bucket: str
    key: str
    width: int | None
    height: int | None
    duration_ms: int | None
    bytes: int | None = None

    def as_record(self) -> dict[str, Any]:
        """The rendition fields the job record keeps (docs/CONTRACTS.md, `renditions`)."""
        return {
            "width": self.width,
            "height": self.height,
            "durationMs": self.duration_ms,
            "bytes": self.bytes,
            "contentType": OUTPUT_CONTENT_TYPE,
            "bucket": self.bucket,
            "key": self.key,
            "engine": MEDIACONVERT_ENGINE,
        }


def rendition_outputs(change: JobStateChange) -> list[RenditionOutput]:
    """The FILE_GROUP outputs of a COMPLETE event; the first one wins if a rendition name appears twice."""
    outputs: dict[str, RenditionOutput] = {}
    for group in change.output_group_details:
        if group.type != "FILE_GROUP":
            continue
        for detail in group.output_details:
            for path in detail.output_file_paths:
                location = s3_location(path)
                if location is None:
                    continue
                stem, extension = posixpath.splitext(posixpath.basename(location[1]))
                if extension != OUTPUT_EXTENSION or not stem or stem in outputs:
                    continue
                video = detail.video_details or VideoDetails()
                outputs[stem] = RenditionOutput(
                    rendition=stem,
                    bucket=location[0],
                    key=location[1],
                    width=video.width_in_px,
                    height=video.height_in_px,
                    duration_ms=detail.duration_in_ms,
                )
    return list(outputs.values())


def with_sizes(outputs: list[RenditionOutput], sizes: Mapping[tuple[str, str], int]) -> list[RenditionOutput]:
    """Outputs with `bytes` filled from HEAD results keyed by (bucket, key); unknown sizes stay None."""
    return [dataclasses.replace(o, bytes=sizes.get((o.bucket, o.key), o.bytes)) for o in outputs]


def error_code(change: JobStateChange) -> str:
    return f"MEDIACONVERT_{change.error_code}" if change.error_code not in (None, "") else "MEDIACONVERT_ERROR"


# --- transitions: pure, a job in and the changed job (or None) out -------------------------------------------------


def rendition_transition(event: RenditionEvent, *, now: int) -> Transition:
    """The state-machine call a transcoder's rendition event stands for (on the attempt it names)."""
    name, attempt = event.rendition, event.attempt
    if isinstance(event, RenditionProgress):
        return partial(job_state.record_progress, name=name, percent=event.percent, now=now, attempt=attempt)
    if isinstance(event, RenditionCompleted):
        if event.image is not None:
            return partial(
                complete_with_image, name=name, output=event.output(), image=event.image, now=now, attempt=attempt
            )
        return partial(job_state.complete_rendition, name=name, output=event.output(), now=now, attempt=attempt)
    return partial(
        job_state.fail_rendition,
        name=name,
        code=event.error.code,
        message=client_safe(event.error.message),
        now=now,
        attempt=attempt,
    )


def segment_transition(event: SegmentCompleted, *, now: int) -> Transition:
    """The state-machine call a part of a segment-parallel rendition stands for (on the attempt it names)."""
    return partial(
        job_state.record_segment,
        name=event.rendition,
        part=event.part,
        index=event.index,
        now=now,
        attempt=event.attempt,
    )


def stitch_unit(job: JobRecord, rendition: str) -> FanOutMessage:
    """The fan-out message asking the rendition's function to stitch its parts, built from the job as written."""
    source = job.source
    message = FanOutMessage.for_job(job, bucket=source.bucket or "", key=source.key or "", etag=source.etag)
    return message.stitch_unit(job, rendition)


def packaging_transition(event: PackagingEvent, *, now: int) -> Transition:
    """The state-machine call a packager's report stands for (on the attempt it names)."""
    if isinstance(event, PackagingCompleted):
        return partial(job_state.complete_playback, package=event.package, now=now, attempt=event.attempt)
    return partial(
        job_state.fail_playback,
        code=job_state.PACKAGING_FAILED,
        message=client_safe(event.error.message),
        now=now,
        attempt=event.attempt,
    )


def packaging_request(job: JobRecord) -> PackagingRequested:
    """`Packaging Requested` for a job whose renditions all settled: its completed video renditions, in ladder order."""
    return PackagingRequested(
        job_id=job.jobId,
        owner_id=job.ownerId,
        engine=job.engine,
        duration_ms=job.probe.durationMs if job.probe else 0,
        renditions=[
            PackagingSource(
                rendition=r.name, bucket=r.bucket or "", key=r.key or "", width=r.width or 0, height=r.height or 0
            )
            for r in job_state.packaging_sources(job)
        ],
        attempt=job.attempt,
    )


def complete_with_image(
    job: JobRecord, *, name: str, output: Mapping[str, Any], image: ImageMetadata, now: int, attempt: int = 1
) -> JobRecord | None:
    """An image's metadata unit completed: its metadata lands on the job as `image` in the same write.

    Only with a completion that applies, and only from a unit of kind metadata: a duplicate or late event changes
    nothing, not even the metadata. The metadata goes first, while the job is still PROCESSING: completing the
    last unit settles the job, which then takes no more changes.
    """
    complete = partial(job_state.complete_rendition, name=name, output=output, now=now, attempt=attempt)
    if complete(job) is None:
        return None
    if job.renditions[name].kind != UnitKind.METADATA:
        return complete(job)  # `image` comes only from the metadata unit (docs/CONTRACTS.md)
    record = partial(job_state.record_image_metadata, metadata=image, now=now, attempt=attempt)
    return job_state.apply_in_order(job, [record, complete])


def _is_mediaconvert_job(job: JobRecord) -> bool:
    return job.status == JobStatus.PROCESSING and job.engine == MEDIACONVERT_ENGINE


def start_all(job: JobRecord, *, now: int) -> JobRecord | None:
    """PROGRESSING: MediaConvert started the job, so every QUEUED rendition is being worked on."""
    if not _is_mediaconvert_job(job):
        return None
    queued = [r.name for r in job.queued_renditions()]
    return job_state.apply_in_order(job, [partial(job_state.start_rendition, name=n, now=now) for n in queued])


def progress_all(job: JobRecord, *, percent: int, now: int) -> JobRecord | None:
    """STATUS_UPDATE: one job makes every open rendition, so each gets the job's percentage."""
    if not _is_mediaconvert_job(job):
        return None
    names = job_state.open_rendition_names(job)
    return job_state.apply_in_order(
        job, [partial(job_state.record_progress, name=n, percent=percent, now=now) for n in names]
    )


def complete_all(job: JobRecord, *, outputs: list[RenditionOutput], now: int) -> JobRecord | None:
    """COMPLETE: complete each rendition found in the outputs, fail the ones missing.

    Completing the last one asks for the playback package, as on the Lambda engine: the packager makes the same
    ladder, poster and thumbnails from MediaConvert's MP4s.
    """
    if not _is_mediaconvert_job(job):
        return None
    produced = {o.rendition: o for o in outputs}
    steps: list[Transition] = []
    for name in job_state.open_rendition_names(job):
        output = produced.get(name)
        if output is not None:
            steps.append(partial(job_state.complete_rendition, name=name, output=output.as_record(), now=now))
        else:
            message = f"MediaConvert completed without an output named {name}{OUTPUT_EXTENSION}"
            steps.append(partial(job_state.fail_rendition, name=name, code=OUTPUT_MISSING, message=message, now=now))
    return job_state.apply_in_order(job, steps)


def fail_all(job: JobRecord, *, code: str, message: str, now: int) -> JobRecord | None:
    """ERROR / CANCELED: one MediaConvert job made every open rendition, so the job fails with its reason.

    Only while a rendition is open: once every one settled, MediaConvert's part is over (the job may be waiting for
    its playback package), and a late report of it changes nothing.
    """
    if not _is_mediaconvert_job(job) or not job_state.open_rendition_names(job):
        return None
    return job_state.fail_job(job, code=code, message=message, now=now)


def mediaconvert_transition(
    change: JobStateChange, *, now: int, sizes: Mapping[tuple[str, str], int]
) -> Transition | None:
    """The transition a state change stands for; None when the status changes nothing (INPUT_INFORMATION, unknown).

    `sizes` are the byte counts read back for the outputs (see `rendition_outputs`). Once a job has its
    MediaConvert job recorded, changes of any other MediaConvert job (a duplicate submission) are ignored.
    """
    transition = _transition_for_status(change, now=now, sizes=sizes)
    if transition is None:
        return None
    return partial(
        _from_recorded_job,
        transition=transition,
        source_job_id=change.mediaconvert_job_id,
        attempt=change.user_metadata.attempt_number,
    )


def _from_recorded_job(
    job: JobRecord, *, transition: Transition, source_job_id: str | None, attempt: int
) -> JobRecord | None:
    """Only the job's own MediaConvert job moves it, and only on the attempt it was submitted for."""
    recorded = job_state.mediaconvert_job_id(job)
    if recorded is not None and source_job_id is not None and recorded != source_job_id:
        return None
    if attempt != job.attempt:
        return None
    return transition(job)


def _transition_for_status(
    change: JobStateChange, *, now: int, sizes: Mapping[tuple[str, str], int]
) -> Transition | None:
    status = change.status
    if status == MediaConvertStatus.PROGRESSING:
        return partial(start_all, now=now)
    if status == MediaConvertStatus.STATUS_UPDATE:
        percent = change.job_progress.job_percent_complete if change.job_progress else None
        return partial(progress_all, percent=percent, now=now) if percent is not None else None
    if status == MediaConvertStatus.COMPLETE:
        outputs = with_sizes(rendition_outputs(change), sizes)
        return partial(complete_all, outputs=outputs, now=now)
    if status == MediaConvertStatus.ERROR:
        # MediaConvert's own words name the job's S3 locations: the client reads them without (the log keeps them).
        logger.warning("MediaConvert reported an error", extra={"errorMessage": change.error_message})
        message = client_safe(change.error_message or "MediaConvert reported an error without a message")
        return partial(fail_all, code=error_code(change), message=message, now=now)
    if status == MediaConvertStatus.CANCELED:
        return partial(fail_all, code=CANCELED, message="the MediaConvert job was canceled", now=now)
    return None


# --- use cases -----------------------------------------------------------------------------------------------------


def ignored(reason: str, **extra: Any) -> Result:
    """An event no retry could make applicable: logged as a warning and dropped."""
    logger.warning(f"event ignored: {reason}", extra=extra)
    return {"outcome": "ignored", "reason": reason}


@dataclass(frozen=True)
class Applied:
    """What one event did to a job."""

    job: JobRecord
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


def _stitch_asked_by(job: JobRecord, name: str, event_id: str | None) -> bool:
    segments = job.renditions[name].segments
    stitch = segments.stitch if segments is not None else None
    return event_id is not None and stitch is not None and stitch.requestedBy == event_id


class JobTracker:
    """Unknown jobs are logged and dropped (a retry could not fix them); AWS errors raise, for the caller's retry."""

    def __init__(
        self,
        *,
        settings: TrackerSettings,
        jobs: JobStore,
        publisher: EventPublisher,
        fanout: FanOutTopic,
        outputs: OutputStore,
        files: JobFiles,
        mediaconvert: MediaConvertJobs,
        metrics: MetricsSink,
        clock: Callable[[], int],
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._publisher = publisher
        self._fanout = fanout
        self._outputs = outputs
        self._files = files
        self._mediaconvert = mediaconvert
        self._metrics = metrics
        self._clock = clock

    def on_rendition_event(self, event: RenditionEvent, *, event_id: str | None = None) -> Result:
        logger.append_keys(jobId=event.job_id, rendition=event.rendition)
        return self._apply_and_report(event.job_id, rendition_transition(event, now=self._clock()), event_id)

    def on_segment_event(self, event: SegmentCompleted, *, event_id: str | None = None) -> Result:
        logger.append_keys(jobId=event.job_id, rendition=event.rendition, part=str(event.part), index=event.index)
        return self._apply_and_report(event.job_id, segment_transition(event, now=self._clock()), event_id)

    def on_packaging_event(self, event: PackagingEvent, *, event_id: str | None = None) -> Result:
        logger.append_keys(jobId=event.job_id)
        return self._apply_and_report(event.job_id, packaging_transition(event, now=self._clock()), event_id)

    def on_mediaconvert_change(self, change: JobStateChange, *, event_id: str | None = None) -> Result:
        if not belongs_to(change, self._settings.stack_name):
            logger.info(
                "MediaConvert job of another pipeline; ignored", extra={"pipeline": change.user_metadata.pipeline}
            )
            return {"outcome": "ignored", "reason": "another pipeline"}
        job_id = change.job_id
        if job_id is None:
            return ignored("MediaConvert job of this pipeline without userMetadata.jobId")
        logger.append_keys(jobId=job_id, mediaConvertJobId=change.mediaconvert_job_id, mediaConvertStatus=change.status)
        sizes = self._output_sizes(change) if change.status == MediaConvertStatus.COMPLETE else {}
        transition = mediaconvert_transition(change, now=self._clock(), sizes=sizes)
        if transition is None:
            logger.info("MediaConvert status changes nothing on the job")
            return {"outcome": "unchanged", "jobId": job_id}
        return self._apply_and_report(job_id, transition, event_id)

    def on_deletion_requested(self, event: JobDeletionRequested, *, event_id: str | None = None) -> Result:
        """The owner deleted the job: cancel its MediaConvert job if it was running, delete its files, mark it DELETED
        (which announces `Job Deleted`). Repeated requests delete again (an upload or output may have arrived since)
        and change nothing else."""
        logger.append_keys(jobId=event.job_id)
        try:
            job = self._jobs.get(event.job_id)
        except JobNotFound:
            logger.warning("deletion asked for a job that does not exist; dropped")
            return {"outcome": "job_not_found", "jobId": event.job_id}
        if job.deletion is None or job.ownerId != event.owner_id:
            return ignored("deletion asked for a job whose owner did not delete it")
        recorded = job_state.mediaconvert_job_id(job)
        if recorded is not None and job.deletion.canceled and job.status != JobStatus.DELETED:
            self._mediaconvert.cancel_job(recorded)
            logger.info("MediaConvert job canceled", extra={"mediaConvertJobId": recorded})
        removed = self._files.delete_all(job.jobId)
        logger.info("job files deleted", extra={"objects": removed})
        return self._apply_and_report(job.jobId, partial(job_state.complete_deletion, now=self._clock()), event_id)

    def sweep(self, *, remaining_ms: Callable[[], int]) -> Result:
        """Expire uploads that never came and fail processing past its deadline, oldest deadline first, bounded.

        Stops at `sweep_max_jobs`, or once `remaining_ms()` (the invocation's time left) falls to the reserve.
        """
        now = self._clock()
        examined = closed = 0
        truncated = False
        for job_id in self._jobs.open_jobs_due(now):
            if examined >= self._settings.sweep_max_jobs or remaining_ms() <= self._settings.sweep_reserve_ms:
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
        result = SweepResult(examined=examined, closed=closed, truncated=truncated)
        logger.info("sweep finished", extra=dataclasses.asdict(result))
        return {"outcome": "swept", **dataclasses.asdict(result)}

    def apply(self, job_id: str, transition: Transition, event_id: str | None = None) -> Applied:
        """Write the transition (conditionally, retried by the table on a lost race) and announce a job that ended.

        `event_id` is the EventBridge event being applied: the write that asks for packaging (or for a stitch)
        records it, and only that event, delivered again after its put failed, publishes the request again. Any other
        event finding the job asking leaves it alone: the asking writer publishes it, or its retry does (it cannot
        tell a writer still publishing from one that failed, and publishing too would package the job twice).

        Raises JobNotFound, ConcurrentUpdate, EventPublishFailed and botocore errors; the caller decides.
        """
        seen: list[JobRecord] = []

        def observed(job: JobRecord) -> JobRecord | None:
            seen.append(job)
            changed = transition(job)
            if changed is not None and job_state.packaging_requested(job, changed) and changed.playback is not None:
                changed.playback.requestedBy = event_id
            for name in job_state.stitch_requested(job, changed) if changed is not None else []:
                stitch = changed.renditions[name].segments.stitch  # type: ignore[union-attr]
                stitch.requestedBy = event_id  # type: ignore[union-attr]
            return changed

        written = self._jobs.change(job_id, observed)
        if written is None:
            job = seen[-1]
            mine = [name for name in job_state.awaiting_stitch_request(job) if _stitch_asked_by(job, name, event_id)]
            if mine:
                logger.warning("publishing a stitch request an earlier attempt wrote but did not publish")
                return Applied(job=job, changed=False, announced=self._request_stitch(job, mine))
            if job_state.awaiting_packaging_request(job):
                if event_id is None or job.playback is None or job.playback.requestedBy != event_id:
                    logger.info("the job is asking for packaging; the event that asked publishes the request")
                    return Applied(job=job, changed=False)
                logger.warning("publishing a packaging request an earlier attempt wrote but did not publish")
                return Applied(job=job, changed=False, announced=self._request_packaging(job))
            if not self._unannounced(job):
                return Applied(job=job, changed=False)
            logger.warning("announcing an outcome an earlier attempt wrote but did not publish")
            outcome = (TERMINAL_DETAIL_TYPES[job.status], JobOutcome.of(job))
            return Applied(job=job, changed=False, announced=self._announce(job, outcome))
        before, after = written
        stitches = job_state.stitch_requested(before, after)
        if stitches:
            return Applied(job=after, changed=True, announced=self._request_stitch(after, stitches))
        if job_state.packaging_requested(before, after):
            return Applied(job=after, changed=True, announced=self._request_packaging(after))
        outcome = outcome_event(before, after)
        return Applied(job=after, changed=True, announced=self._announce(after, outcome) if outcome else None)

    def _apply_and_report(self, job_id: str, transition: Transition, event_id: str | None) -> Result:
        try:
            applied = self.apply(job_id, transition, event_id)
        except JobNotFound:
            logger.warning("event for a job that does not exist; dropped")
            return {"outcome": "job_not_found", "jobId": job_id}
        status = str(applied.job.status)
        logger.info("event applied" if applied.changed else "event changed nothing", extra={"status": status})
        if applied.job.deletion is not None and not applied.changed:
            # A report of work that was running when the job was deleted: what it wrote goes too.
            removed = self._files.delete_all(job_id)
            logger.info("late files of a deleted job deleted", extra={"objects": removed})
        return {
            "outcome": "applied" if applied.changed else "unchanged",
            "jobId": job_id,
            "status": status,
            "announced": applied.announced,
        }

    def _output_sizes(self, change: JobStateChange) -> dict[tuple[str, str], int]:
        """Byte counts of the outputs in this stack's bucket; an unreadable output stays unknown."""
        sizes: dict[tuple[str, str], int] = {}
        for output in rendition_outputs(change):
            if output.bucket != self._settings.outputs_bucket:
                continue
            try:
                sizes[(output.bucket, output.key)] = self._outputs.size(output.bucket, output.key)
            except OutputReadFailed as err:
                logger.warning("could not read an output's size", extra={"key": output.key, "error": str(err)})
        return sizes

    @staticmethod
    def _unannounced(job: JobRecord) -> bool:
        return job.status in OUTCOME_METRICS and job.outcomeAnnouncedAt is None

    def _request_stitch(self, job: JobRecord, renditions: list[str]) -> str:
        """Publish each rendition's stitch unit, then note it on the job; raises (for a retry) when SNS refuses."""
        for name in renditions:
            message = stitch_unit(job, name)
            message_id = self._fanout.publish(message.body(), message.attributes(job.mediaType))
            logger.info("stitch requested", extra={"stitchRendition": name, "messageId": message_id})
            self._jobs.change(job.jobId, partial(job_state.mark_stitch_requested, name=name, now=self._clock()))
        return "Stitch Requested"

    def _request_packaging(self, job: JobRecord) -> str:
        """Put `Packaging Requested`, then note it on the job; raises (for a retry) when the bus refuses it."""
        request = packaging_request(job)
        self._publisher.publish(DetailType.PACKAGING_REQUESTED, request)
        logger.info("packaging requested", extra={"renditions": [r.rendition for r in request.renditions]})
        self._jobs.change(job.jobId, partial(job_state.mark_packaging_requested, now=self._clock()))
        return str(DetailType.PACKAGING_REQUESTED)

    def _announce(self, job: JobRecord, outcome: tuple[DetailType, JobOutcome]) -> str:
        detail_type, detail = outcome
        self._publisher.publish(detail_type, detail)
        metric = OUTCOME_METRICS.get(job.status)
        if metric:
            self._metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        error = job.error.model_dump() if job.error else None
        logger.info("job outcome announced", extra={"status": str(job.status), "error": error})
        self._jobs.change(job.jobId, partial(job_state.mark_outcome_announced, now=self._clock()))
        return str(detail_type)
