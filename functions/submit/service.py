"""Submit one MediaConvert job per pipeline job, whatever SQS and SNS deliver: the use case over injected ports.

Order: read the job, pin the validated upload, CreateJob, then record it (submit first, record second). Two guards
make that exactly once:

- `ClientRequestToken` = the pipeline's jobId (`{jobId}-a{attempt}` from a job's second attempt on, so that a retry
  or a reprocess asks for a job of its own). MediaConvert answers a repeated token with the job the first request
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

Attempts and cancels: a message of a canceled job, or of an attempt the job has moved on from, is dropped
(`WITHDRAWN`), and the job gate (`functions/common/job_gate.py`) is asked once more just before CreateJob, so a job
canceled meanwhile is not submitted. When the record then does not apply because the job was canceled (or moved on)
between that check and the write, the MediaConvert job just created is canceled (CancelJob). Every `Rendition Failed`
submit announces names the attempt, and `UserMetadata.attempt` does from the second attempt on.

Pinning the validated upload: a presigned POST form stays valid until it expires, so a client can POST a second
file to `uploads/{jobId}/source` after ingest validated the first (a playlist naming other users' uploads, say). The
Lambda engine reads the source with IfMatch on the validated ETag; MediaConvert cannot, so submit first copies the
source, only while it still has that ETag, to `uploads/{jobId}/validated` and points the job's input at the copy.
Nothing else writes that key: the presigned POST is bound to exactly `uploads/{jobId}/source` (the api's upload
form), and the bucket notification announces only keys ending in `/source` (components/ingest.py,
`patterns.UPLOAD_SUFFIX`), so the copy never starts another ingest. The copy is repeatable (same ETag, same bytes),
so a redelivered message copies again harmlessly; the uploads bucket's lifecycle rule on `uploads/` expires the copy
with the source.

The CreateJob request is a pure function of the plan. One MediaConvert job makes every QUEUED rendition, in the
layout the Lambda engine uses (docs/CONTRACTS.md, "Keys"):

- `outputs/{jobId}/{rendition}.mp4`: one FILE_GROUP per rendition whose destination names the file
  (`s3://outputs/outputs/{jobId}/{rendition}`, no NameModifier). MediaConvert names a file group's outputs
  `<base><NameModifier>.<extension>`, the base being the destination's file part or else the input's name
  (`source`), so several outputs in one group could never be called exactly `{rendition}.mp4`.

That is all MediaConvert makes. The HLS ladder, the poster and the thumbnails come from the packager, which remuxes
these MP4s once every rendition completed, exactly as for the Lambda engine (functions/contracts/playback.py): the
two engines' playback is then the same layout, names and measurements, and MediaConvert, which bills per output
minute, is not paid a second time for an HLS group or for frame captures.

Every video output is H.264 High, QVBR capped at the rendition's `maxVideoBitrateKbps` (buffer twice that, like
the Lambda encoder's `-bufsize`), 2-second closed GOPs without scene-change keyframes (so renditions switch at the
same instants), square pixels, the source's frame rate; AAC stereo at the rendition's audio bitrate only when the
source has audio. `Rotate: AUTO` applies the source's display matrix, so the display-oriented plan comes out upright.
All of it is Basic-tier on-demand pricing (AVC, single pass): see the README's cost model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

from functions.common import job_state
from functions.common.job_gate import JobGate, WorkWithdrawn, withdrawal_reason
from functions.common.job_state import Transition
from functions.common.jobs_table import JobNotFound
from functions.common.observability import logger
from functions.contracts.errors import SOURCE_REPLACED_CODE, SOURCE_REPLACED_MESSAGE
from functions.contracts.events import DetailType, EventDetail, RenditionFailed
from functions.contracts.fanout import EncodePlan, FanOutMessage
from functions.contracts.jobs import ErrorInfo, JobRecord, JobStatus
from functions.contracts.mediaconvert import UserMetadata
from functions.submit.settings import SubmitSettings

REFUSED_CODE = "MEDIACONVERT_BAD_REQUEST"
VALIDATED_NAME = "validated"

OUTPUT_PREFIX = "outputs/"
GOP_SECONDS = 2.0
QVBR_QUALITY_LEVEL = 7
AUDIO_SELECTOR = "Audio Selector 1"
AUDIO_SAMPLE_RATE = 48_000
STATUS_UPDATE_INTERVAL = "SECONDS_10"  # the shortest: progress shows even on short jobs
# What MediaConvert encodes: frames of 32 to 8192 pixels a side (VideoDescription Width/Height).
MIN_SIDE, MAX_SIDE = 32, 8192
MAX_CLIENT_REQUEST_TOKEN = 64


# --- domain errors ------------------------------------------------------------------------------------------------


class MalformedMessage(ValueError):
    """The message parses but cannot be encoded (a rendition without its bitrates); retrying will not help."""


class UnsupportedByMediaConvert(ValueError):
    """The plan asks for something MediaConvert cannot make (a frame side outside 32-8192 pixels)."""


class SettingsRefused(RuntimeError):
    """MediaConvert answered BadRequest: the job settings are invalid, and would be on every retry."""


class SourceReplaced(RuntimeError):
    """The upload is no longer the object ingest validated: no retry will bring that object back."""


# --- ports --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedJob:
    """The MediaConvert job CreateJob answered with (a new one, or the one an earlier request with the token made)."""

    id: str
    arn: str
    status: str


class Jobs(Protocol):
    def get(self, job_id: str) -> JobRecord:
        """The job; raises JobNotFound."""
        ...

    def change(self, job_id: str, transition: Transition) -> tuple[JobRecord, JobRecord] | None:
        """Apply a transition with a conditional write; (before, after), or None when it did not apply."""
        ...


class MediaConvertJobs(Protocol):
    def create_job(self, request: dict[str, Any]) -> CreatedJob:
        """`CreateJob(**request)`; raises SettingsRefused when MediaConvert refuses the settings."""
        ...

    def cancel_job(self, mediaconvert_job_id: str) -> None:
        """`CancelJob`; a job that already ended is left as it is."""
        ...


class ValidatedSources(Protocol):
    def pin(self, *, bucket: str, key: str, etag: str | None, destination: str) -> None:
        """Copy `key` to `destination` in `bucket` only while it still has `etag` (unconditionally without one).

        Raises SourceReplaced when the object changed since it was validated.
        """
        ...


class Events(Protocol):
    def publish(self, detail_type: DetailType | str, detail: EventDetail) -> None: ...


# --- the plan and the CreateJob request ---------------------------------------------------------------------------


def encode_plans(message: FanOutMessage) -> list[EncodePlan]:
    """Every rendition of the message, sizes rounded down to even (H.264 4:2:0), in the message's order."""
    plans = []
    for entry in message.renditions:
        if entry.maxVideoBitrateKbps is None or entry.audioBitrateKbps is None:
            raise MalformedMessage(f"rendition {entry.name} has no bitrates")
        plans.append(
            EncodePlan(
                name=entry.name,
                width=max(2, entry.width - entry.width % 2),
                height=max(2, entry.height - entry.height % 2),
                maxVideoBitrateKbps=entry.maxVideoBitrateKbps,
                audioBitrateKbps=entry.audioBitrateKbps,
            )
        )
    return plans


def validated_key(job_id: str) -> str:
    """Where the pinned copy of a job's validated upload lives (docs/CONTRACTS.md "Keys")."""
    return f"uploads/{job_id}/{VALIDATED_NAME}"


@dataclass(frozen=True)
class JobTarget:
    """Everything the request depends on besides the ladder."""

    job_id: str
    """The pipeline's job (a ULID); names the output folder and the request token."""
    stack: str
    """The stack, which the tracker's rule matches in `userMetadata.pipeline`."""
    source_bucket: str
    source_key: str
    outputs_bucket: str
    has_audio: bool
    """Whether the source has an audio stream (no audio selector or AAC otherwise)."""
    role_arn: str
    """The service role MediaConvert assumes to read the upload and write the outputs."""
    queue_arn: str
    """The stack's on-demand queue."""
    attempt: int = 1
    """The job's attempt: a later one asks for a MediaConvert job of its own (token, user metadata)."""


def client_request_token(job_id: str, attempt: int = 1) -> str:
    """MediaConvert's idempotency token: the same job ID (and attempt) asks for the same MediaConvert job. The first
    attempt's is the job ID itself, a later one's `{jobId}-a{attempt}`."""
    token = job_id if attempt == 1 else f"{job_id}-a{attempt}"
    if not job_id or attempt < 1 or len(token) > MAX_CLIENT_REQUEST_TOKEN or not token.isascii():
        raise ValueError(f"job id {job_id!r} cannot be a client request token (1-64 ASCII characters)")
    return token


def output_folder(outputs_bucket: str, job_id: str) -> str:
    """`s3://{bucket}/outputs/{jobId}/`, where every output of the job goes."""
    return f"s3://{outputs_bucket}/{OUTPUT_PREFIX}{job_id}/"


def _check_size(plan: EncodePlan) -> None:
    if not (MIN_SIDE <= plan.width <= MAX_SIDE and MIN_SIDE <= plan.height <= MAX_SIDE):
        raise UnsupportedByMediaConvert(
            f"rendition {plan.name} is {plan.width}x{plan.height}; MediaConvert encodes {MIN_SIDE} to {MAX_SIDE} "
            "pixels a side"
        )


def h264_video(plan: EncodePlan) -> dict[str, Any]:
    """The VideoDescription of one rendition."""
    max_bitrate = plan.maxVideoBitrateKbps * 1000
    return {
        "Width": plan.width,
        "Height": plan.height,
        "ScalingBehavior": "DEFAULT",
        "CodecSettings": {
            "Codec": "H_264",
            "H264Settings": {
                "CodecProfile": "HIGH",
                "CodecLevel": "AUTO",
                "RateControlMode": "QVBR",
                "QvbrSettings": {"QvbrQualityLevel": QVBR_QUALITY_LEVEL},
                "MaxBitrate": max_bitrate,
                "HrdBufferSize": 2 * max_bitrate,
                "QualityTuningLevel": "SINGLE_PASS_HQ",
                "GopSize": GOP_SECONDS,
                "GopSizeUnits": "SECONDS",
                "GopClosedCadence": 1,
                "SceneChangeDetect": "DISABLED",
                "FramerateControl": "INITIALIZE_FROM_SOURCE",
                "ParControl": "SPECIFIED",
                "ParNumerator": 1,
                "ParDenominator": 1,
                "InterlaceMode": "PROGRESSIVE",
                "EntropyEncoding": "CABAC",
            },
        },
    }


def aac_audio(plan: EncodePlan) -> list[dict[str, Any]]:
    aac = {
        "Bitrate": plan.audioBitrateKbps * 1000,
        "CodecProfile": "LC",
        "CodingMode": "CODING_MODE_2_0",
        "RateControlMode": "CBR",
        "SampleRate": AUDIO_SAMPLE_RATE,
    }
    return [{"AudioSourceName": AUDIO_SELECTOR, "CodecSettings": {"Codec": "AAC", "AacSettings": aac}}]


def _av(plan: EncodePlan, has_audio: bool) -> dict[str, Any]:
    output: dict[str, Any] = {"VideoDescription": h264_video(plan)}
    if has_audio:
        output["AudioDescriptions"] = aac_audio(plan)
    return output


def _file_group(name: str, destination: str, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Name": name,
        "OutputGroupSettings": {"Type": "FILE_GROUP_SETTINGS", "FileGroupSettings": {"Destination": destination}},
        "Outputs": outputs,
    }


def mp4_groups(folder: str, plans: Sequence[EncodePlan], has_audio: bool) -> list[dict[str, Any]]:
    """One file group per rendition, writing `{folder}{rendition}.mp4` with the index first (fast start)."""
    container = {"Container": "MP4", "Mp4Settings": {"MoovPlacement": "PROGRESSIVE_DOWNLOAD"}}
    return [
        _file_group(
            f"MP4 {plan.name}",
            f"{folder}{plan.name}",
            [{"ContainerSettings": container, "Extension": "mp4", **_av(plan, has_audio)}],
        )
        for plan in plans
    ]


def job_settings(target: JobTarget, plans: Sequence[EncodePlan]) -> dict[str, Any]:
    """CreateJob's `Settings`: the source as the one input, and one MP4 file group per rendition."""
    if not plans:
        raise ValueError(f"job {target.job_id}: no QUEUED rendition to encode")
    for plan in plans:
        _check_size(plan)
    source: dict[str, Any] = {
        "FileInput": f"s3://{target.source_bucket}/{target.source_key}",
        "TimecodeSource": "ZEROBASED",
        "VideoSelector": {"Rotate": "AUTO"},
    }
    if target.has_audio:
        source["AudioSelectors"] = {AUDIO_SELECTOR: {"DefaultSelection": "DEFAULT"}}
    folder = output_folder(target.outputs_bucket, target.job_id)
    return {
        "TimecodeConfig": {"Source": "ZEROBASED"},
        "Inputs": [source],
        "OutputGroups": mp4_groups(folder, plans, target.has_audio),
    }


def user_metadata(target: JobTarget) -> dict[str, str]:
    """The job, the stack, and from the second attempt on the attempt (MediaConvert's values are strings)."""
    attempt = str(target.attempt) if target.attempt > 1 else None
    return UserMetadata(jobId=target.job_id, pipeline=target.stack, attempt=attempt).to_metadata()


def create_job_request(target: JobTarget, plans: Sequence[EncodePlan]) -> dict[str, Any]:
    """The keyword arguments of `mediaconvert.create_job` for this job."""
    return {
        "Role": target.role_arn,
        "Queue": target.queue_arn,
        "ClientRequestToken": client_request_token(target.job_id, target.attempt),
        "StatusUpdateInterval": STATUS_UPDATE_INTERVAL,
        "UserMetadata": user_metadata(target),
        "Settings": job_settings(target, plans),
    }


# --- the use case -------------------------------------------------------------------------------------------------


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
    WITHDRAWN = "WITHDRAWN"
    """The job was canceled or runs another attempt: nothing submitted, or the job just created canceled."""


@dataclass(frozen=True)
class SubmitResult:
    outcome: Outcome
    mediaconvert_job_id: str | None = None


class JobSubmitter:
    def __init__(
        self,
        *,
        settings: SubmitSettings,
        jobs: Jobs,
        mediaconvert: MediaConvertJobs,
        sources: ValidatedSources,
        events: Events,
        gate: JobGate,
        clock: Callable[[], int],
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._mediaconvert = mediaconvert
        self._sources = sources
        self._events = events
        self._gate = gate
        self._clock = clock

    def submit(self, message: FanOutMessage) -> SubmitResult:
        """Handle one fan-out message; raises only for what a retry can fix (AWS errors, lost races)."""
        try:
            return self._submit(message)
        except WorkWithdrawn as withdrawn:
            logger.info("work withdrawn; dropped", extra={"reason": withdrawn.reason, "attempt": withdrawn.attempt})
            return SubmitResult(Outcome.WITHDRAWN)

    def _submit(self, message: FanOutMessage) -> SubmitResult:
        try:
            job = self._jobs.get(message.jobId)
        except JobNotFound:
            logger.warning("message for a job that does not exist; dropped")
            return SubmitResult(Outcome.JOB_NOT_FOUND)
        if job.attempt != message.attempt or job.deletion is not None:
            reason = withdrawal_reason(job.to_item(), message.attempt) or "the job was canceled"
            raise WorkWithdrawn(message.jobId, message.attempt, reason)
        recorded = job_state.mediaconvert_job_id(job)
        if recorded:
            logger.info(
                "the job already has its MediaConvert job; not submitting", extra={"mediaConvertJobId": recorded}
            )
            return SubmitResult(Outcome.ALREADY_SUBMITTED, recorded)
        if job.status != JobStatus.PROCESSING or job.engine != job_state.MEDIACONVERT_ENGINE:
            logger.info("job is not waiting for MediaConvert", extra={"status": job.status, "engine": job.engine})
            return SubmitResult(Outcome.NOT_APPLICABLE)
        if message.source.bucket != self._settings.uploads_bucket:
            raise MalformedMessage(f"source bucket {message.source.bucket!r} is not this stack's uploads bucket")
        plans = encode_plans(message)
        if message.source.etag is None:
            # An older message: nothing to verify, so the copy takes whatever the key holds (today's behaviour).
            logger.warning("the message names no validated ETag; copying the upload unverified")
        source_key = validated_key(message.jobId)
        try:
            self._sources.pin(
                bucket=message.source.bucket, key=message.source.key, etag=message.source.etag, destination=source_key
            )
        except SourceReplaced as err:
            return self._refuse(message, plans, SOURCE_REPLACED_MESSAGE, str(err), code=SOURCE_REPLACED_CODE)
        target = JobTarget(
            job_id=message.jobId,
            stack=self._settings.stack_name,
            source_bucket=message.source.bucket,
            source_key=source_key,
            outputs_bucket=self._settings.outputs_bucket,
            has_audio=message.probe.hasAudio,
            role_arn=self._settings.role_arn,
            queue_arn=self._settings.queue_arn,
            attempt=message.attempt,
        )
        try:
            request = create_job_request(target, plans)
        except UnsupportedByMediaConvert as err:
            return self._refuse(message, plans, str(err), detail=str(err))
        self._gate.check(message.jobId, message.attempt)  # the copy may have taken a minute: still wanted?
        try:
            created = self._mediaconvert.create_job(request)
        except SettingsRefused as err:
            return self._refuse(message, plans, "MediaConvert refused the encoding settings for this video", str(err))
        logger.info("MediaConvert job created", extra={"mediaConvertJobId": created.id, "status": created.status})
        return self._record(message.jobId, message.attempt, created.id)

    def _record(self, job_id: str, attempt: int, mediaconvert_job_id: str) -> SubmitResult:
        record = partial(
            job_state.record_mediaconvert_job,
            mediaconvert_job_id=mediaconvert_job_id,
            client_request_token=client_request_token(job_id, attempt),
            now=self._clock(),
            attempt=attempt,
        )
        if self._jobs.change(job_id, record) is not None:
            return SubmitResult(Outcome.SUBMITTED, mediaconvert_job_id)
        current = self._jobs.get(job_id)
        recorded = job_state.mediaconvert_job_id(current)
        if recorded == mediaconvert_job_id:
            logger.info("a concurrent attempt recorded the same MediaConvert job (same request token)")
            return SubmitResult(Outcome.ALREADY_SUBMITTED, recorded)
        if not job_state.is_current(current, attempt):
            logger.info(
                "the job was canceled or moved on while its MediaConvert job was created; canceling that job",
                extra={"mediaConvertJobId": mediaconvert_job_id, "status": current.status, "attempt": current.attempt},
            )
            self._mediaconvert.cancel_job(mediaconvert_job_id)
            return SubmitResult(Outcome.WITHDRAWN, mediaconvert_job_id)
        if recorded:
            logger.error(
                "a second MediaConvert job was created for this job; the recorded one stays",
                extra={"mediaConvertJobId": mediaconvert_job_id, "recordedMediaConvertJobId": recorded},
            )
            return SubmitResult(Outcome.DUPLICATE_JOB, mediaconvert_job_id)
        logger.warning("the job ended before its MediaConvert job was recorded", extra={"status": current.status})
        return SubmitResult(Outcome.NOT_APPLICABLE, mediaconvert_job_id)

    def _refuse(
        self, fanout: FanOutMessage, plans: list[EncodePlan], message: str, detail: str, *, code: str = REFUSED_CODE
    ) -> SubmitResult:
        """Announce every planned rendition as failed (unless the job no longer wants them); the tracker fails the job
        and says why."""
        self._gate.check(fanout.jobId, fanout.attempt)
        logger.warning("MediaConvert cannot make this job", extra={"reason": detail, "code": code})
        error = ErrorInfo(code=code, message=message)
        for plan in plans:
            failed = RenditionFailed(
                job_id=fanout.jobId,
                owner_id=fanout.ownerId,
                rendition=plan.name,
                attempt=fanout.attempt,
                engine=job_state.MEDIACONVERT_ENGINE,
                error=error,
            )
            self._events.publish(DetailType.RENDITION_FAILED, failed)
        return SubmitResult(Outcome.REFUSED)
