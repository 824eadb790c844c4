"""The job record (docs/CONTRACTS.md "Job record"), its statuses and its parts, as DynamoDB stores them.

The api creates a record, ingest, the tracker, submit and the webhooks function change it through the state
machine (`functions/common/job_state.py`), and the api and webhooks render it (`contracts/job_view.py`).
Every one of them holds a `JobRecord`: `JobRecord.from_item` parses what the table returned and `to_item`
gives back exactly the attributes the table keeps.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from functions.contracts.media import UnitKind
from functions.contracts.playback import PackagingStatus, PlaybackPackage


class JobStatus(StrEnum):
    AWAITING_UPLOAD = "AWAITING_UPLOAD"
    VALIDATING = "VALIDATING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCELED = "CANCELED"
    """Its owner deleted it before it finished (`DELETE /jobs/{id}`); its files are being deleted."""
    DELETED = "DELETED"
    """Its source and outputs are gone; the record stays, without them, until the retention TTL removes it."""


class RenditionStatus(StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELED = "CANCELED"


TERMINAL_JOB_STATUSES = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.REJECTED,
        JobStatus.EXPIRED,
        JobStatus.CANCELED,
        JobStatus.DELETED,
    }
)
TERMINAL_RENDITION_STATUSES = frozenset(
    {RenditionStatus.COMPLETED, RenditionStatus.FAILED, RenditionStatus.SKIPPED, RenditionStatus.CANCELED}
)

OPEN_MARKER = "OPEN"
"""`openJob` while the job can still change: the sparse index key, so the deadline sweep reads open jobs only."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RerunMode(StrEnum):
    RETRY = "retry"
    """A FAILED job again, from its validated source."""
    REPROCESS = "reprocess"
    """A COMPLETED job again, with the stack's current ladder."""


class ErrorInfo(_Record):
    """Why a job or a rendition failed or was rejected; `code` is one of docs/CONTRACTS.md "Error codes"."""

    code: str = Field(min_length=1)
    message: str


class JobSource(_Record):
    """What the client declared when it asked for the upload, and where the upload goes."""

    filename: str | None = None
    contentType: str | None = None
    size: int | None = Field(default=None, ge=0)
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    """The exact upload ingest validated (its ETag, unquoted): a re-run reads that object or none."""


class Probe(BaseModel):
    """What ingest learnt about the source (docs/CONTRACTS.md "Probe"); display size, after rotation.

    Undeclared fields are kept: consumers read what they need and pass the rest on.
    """

    model_config = ConfigDict(extra="allow")

    durationMs: int = Field(ge=0)
    """0 for a still image."""
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)
    codedWidth: int | None = None
    codedHeight: int | None = None
    rotation: int = 0
    """Counter-clockwise degrees, as ffprobe reports them: 0, 90, 180 or 270."""
    videoCodec: str | None = None
    audioCodec: str | None = None
    hasAudio: bool = False
    frameRate: float | None = Field(default=None, ge=0)
    formatName: str | None = Field(default=None, pattern=r"^[a-z0-9_]+(,[a-z0-9_]+)*$")
    """The demuxer ffprobe chose at ingest (e.g. `mov,mp4,m4a,3gp,3g2,mj2`); the encode may use only that one."""
    bitRate: int | None = None
    sizeBytes: int | None = None
    channels: int | None = None
    """Audio channels (audio uploads)."""
    sampleRate: int | None = None
    """Audio samples per second (audio uploads)."""
    frames: int | None = None
    """Frames of an image (more than 1 when animated)."""
    mode: str | None = None
    """An image's colour mode as Pillow names it (`RGB`, `RGBA`, `CMYK`, `P`, `I;16`, ...)."""


class StitchRequest(_Record):
    """The fan-in of a segment-parallel rendition: asked for once, by the write that recorded its last part."""

    requestedAt: int
    requestedBy: str | None = None
    """The event (its EventBridge id) whose write asked: only that event's own retries publish the request again."""
    requestPublishedAt: int | None = None
    """Set once the stitch unit was published to the fan-out topic."""


class SegmentPlan(_Record):
    """A rendition encoded in segments by many functions at once (docs/CONTRACTS.md "Segment-parallel encoding"):
    the plan ingest made, the parts that landed, and the stitch they asked for."""

    count: int = Field(ge=2)
    """Video segments."""
    seconds: int = Field(gt=0)
    """Length of every segment but the last (a multiple of the 2 s GOP)."""
    audio: bool = False
    """Whether an audio part is encoded too (the source has audio)."""
    done: list[int] = Field(default_factory=list)
    """The video segments encoded, ascending."""
    audioDone: bool = False
    stitch: StitchRequest | None = None

    @property
    def parts(self) -> int:
        return self.count + (1 if self.audio else 0)

    @property
    def parts_done(self) -> int:
        return len(self.done) + (1 if self.audioDone else 0)


class RenditionRecord(_Record):
    """One rendition of the job: the plan ingest made, then what the transcoder reported back."""

    name: str = Field(min_length=1)
    status: RenditionStatus
    kind: UnitKind = UnitKind.VIDEO
    format: str | None = None
    """The output's format for images (`webp`, `jpeg`), audio (`m4a`) and waveforms (`png`)."""
    watermark: bool | None = None
    """Whether an image derivative carries the stack's watermark."""
    order: int = 0
    """Its place in the ladder (a DynamoDB map does not keep the order it was written in)."""
    progress: int = Field(default=0, ge=0, le=100)
    width: int | None = None
    height: int | None = None
    maxVideoBitrateKbps: int | None = None
    audioBitrateKbps: int | None = None
    reason: str | None = None
    """Why a SKIPPED rendition was skipped, or why one was encoded at another size."""
    durationMs: int | None = None
    bytes: int | None = None
    contentType: str | None = None
    bucket: str | None = None
    key: str | None = None
    engine: str | None = None
    error: ErrorInfo | None = None
    segments: SegmentPlan | None = None
    """Set when the rendition is encoded in segments (Lambda engine, a long source)."""


class ImageMetadata(_Record):
    """What the metadata unit read from an image: never its location (GPS) or any other EXIF beyond these."""

    format: str
    """Pillow's name: `JPEG`, `PNG`, `WEBP`, `GIF`, `AVIF`."""
    width: int
    """Display width, after the EXIF orientation."""
    height: int
    frames: int = 1
    mode: str
    hasIccProfile: bool = False
    cameraMake: str | None = None
    cameraModel: str | None = None
    capturedAt: str | None = None
    """EXIF DateTimeOriginal as written (`YYYY:MM:DD HH:MM:SS`, local time of the camera), if any."""


class ObjectLocation(_Record):
    bucket: str
    key: str


class PlaybackRecord(_Record):
    """The job's playback package (functions/contracts/playback.py): asked for once, then made or failed."""

    status: PackagingStatus
    requestedAt: int
    """When the write that settled the last rendition asked for it."""
    requestedBy: str | None = None
    """The event (its EventBridge id) whose write asked: only that event's own retries publish the request again."""
    requestPublishedAt: int | None = None
    """Set once `Packaging Requested` was put: a retry re-publishes only a request whose put failed."""
    package: PlaybackPackage | None = None
    """What the packager made, once COMPLETED."""
    error: ErrorInfo | None = None


class MediaConvertSubmission(_Record):
    """The job's one MediaConvert job, recorded once by submit."""

    jobId: str
    clientRequestToken: str
    submittedAt: int


class WebhookFailureEntry(_Record):
    """A webhook delivery of the job that gave up after its last attempt (its task is in the DLQ)."""

    endpointId: str
    eventType: str
    webhookId: str
    attempts: int
    statusCode: int | None = None
    error: str | None = None
    failedAt: int


class Rerun(_Record):
    """A new attempt asked for by the job's owner (`POST /jobs/{id}/retry` or `/reprocess`)."""

    mode: RerunMode
    requestedAt: int
    previousStatus: JobStatus
    """What the job was before: FAILED for a retry, COMPLETED for a reprocess."""


class RerunRequest(_Record):
    """The api's message to the ingest queue after `begin_rerun` (`{"rerun": {"jobId", "attempt"}}`): plan the job's
    next attempt from the probe it recorded and fan it out, as for a fresh upload."""

    jobId: str = Field(min_length=1)
    attempt: int = Field(ge=2)


class RerunMessage(_Record):
    rerun: RerunRequest


class Deletion(_Record):
    """`DELETE /jobs/{id}`: asked for once; the tracker deletes the job's files, then the job is DELETED."""

    requestedAt: int
    canceled: bool = False
    """Whether the job was still running (it was canceled on the way)."""
    completedAt: int | None = None


SPARSE_ATTRIBUTES = frozenset(
    {
        "openJob",
        "deadlineAt",
        "hls",
        "mediaconvert",
        "outcomeAnnouncedAt",
        "webhookFailures",
        "image",
        "playback",
        "rerun",
        "deletion",
    }
)
"""Attributes the table holds only while they have a value (an index key cannot be NULL)."""


class JobRecord(_Record):
    """One job, as the jobs table keeps it. Times are epoch milliseconds, `expiresAt` epoch seconds (the TTL)."""

    jobId: str = Field(min_length=1)
    ownerId: str = Field(min_length=1)
    status: JobStatus
    version: int = Field(ge=0)
    """Bumped by every write; the next write is conditional on it."""
    attempt: int = Field(default=1, ge=1)
    """Which run of the job this is: a retry or a reprocess starts the next one. Work and events carry it, and what
    belongs to an earlier attempt is ignored."""
    createdAt: int
    updatedAt: int
    mediaType: str | None = None
    engine: str | None = None
    progress: int = Field(default=0, ge=0, le=100)
    source: JobSource = Field(default_factory=JobSource)
    probe: Probe | None = None
    renditions: dict[str, RenditionRecord] = Field(default_factory=dict)
    error: ErrorInfo | None = None
    image: ImageMetadata | None = None
    """An image job's metadata, once its metadata unit completed."""
    hls: ObjectLocation | None = None
    """MediaConvert's master playlist (jobs of earlier releases; playback.package.hlsKey since)."""
    playback: PlaybackRecord | None = None
    """A video job's HLS ladder, poster and thumbnails (functions/contracts/playback.py)."""
    mediaconvert: MediaConvertSubmission | None = None
    outcomeAnnouncedAt: int | None = None
    """Set once the terminal event was put: a retry re-announces only an outcome whose put failed."""
    webhookFailures: dict[str, WebhookFailureEntry] | None = None
    """`{endpointId}#{eventType}` -> the dead-lettered delivery; at most 20, the oldest make way."""
    rerun: Rerun | None = None
    """The latest retry or reprocess, while its attempt runs and after."""
    deletion: Deletion | None = None
    openJob: str | None = None
    deadlineAt: int | None = None
    expiresAt: int

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> JobRecord:
        """The record from a table item whose numbers are already plain ints and floats (without the `history` the
        table adapter keeps beside it, functions/common/job_history.py)."""
        return cls.model_validate({name: value for name, value in item.items() if name != "history"})

    def to_item(self) -> dict[str, Any]:
        """The table item: every attribute but the sparse ones that have no value; renditions without their Nones."""
        item = self.model_dump(mode="json", exclude={"renditions"})
        for name in SPARSE_ATTRIBUTES:
            if item.get(name) is None:
                item.pop(name, None)
        item["renditions"] = {
            name: rendition.model_dump(mode="json", exclude_none=True) for name, rendition in self.renditions.items()
        }
        # The probe as ingest learnt it: fields it never set are not stored as NULLs (nor shown by the job view).
        item["probe"] = self.probe.model_dump(mode="json", exclude_unset=True) if self.probe else None
        return item

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    def renditions_in_order(self) -> list[RenditionRecord]:
        """The renditions in plan order."""
        return sorted(self.renditions.values(), key=lambda r: (r.order, r.name))

    def queued_renditions(self) -> list[RenditionRecord]:
        """The renditions waiting for their worker, in plan order: what the fan-out sends and `Job Accepted` lists."""
        return [r for r in self.renditions_in_order() if r.status == RenditionStatus.QUEUED]
