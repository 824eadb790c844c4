"""The pipeline's events on its custom bus (docs/CONTRACTS.md "Events", source `media-pipeline`).

Producers build a detail model and put `detail.to_detail()`; the tracker and webhooks parse with the same models.
Field names are camelCase on the wire and snake_case in Python.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from functions.contracts.jobs import ErrorInfo, ImageMetadata, JobRecord, JobStatus, RenditionStatus
from functions.contracts.media import SegmentPart
from functions.contracts.playback import PackagingSource, PlaybackPackage

SOURCE = "media-pipeline"


class DetailType(StrEnum):
    JOB_ACCEPTED = "Job Accepted"
    JOB_REJECTED = "Job Rejected"
    RENDITION_PROGRESS = "Rendition Progress"
    RENDITION_COMPLETED = "Rendition Completed"
    RENDITION_FAILED = "Rendition Failed"
    JOB_COMPLETED = "Job Completed"
    JOB_FAILED = "Job Failed"
    JOB_EXPIRED = "Job Expired"
    PACKAGING_REQUESTED = "Packaging Requested"
    PACKAGING_COMPLETED = "Packaging Completed"
    PACKAGING_FAILED = "Packaging Failed"
    JOB_CANCELED = "Job Canceled"
    JOB_DELETION_REQUESTED = "Job Deletion Requested"
    JOB_DELETED = "Job Deleted"
    SEGMENT_COMPLETED = "Segment Completed"


TRACKED_DETAIL_TYPES = (
    DetailType.RENDITION_PROGRESS,
    DetailType.RENDITION_COMPLETED,
    DetailType.RENDITION_FAILED,
    DetailType.SEGMENT_COMPLETED,
    DetailType.PACKAGING_COMPLETED,
    DetailType.PACKAGING_FAILED,
    DetailType.JOB_DELETION_REQUESTED,
)
"""The events the tracker applies to a job (the rule on the custom bus matches exactly these)."""

TERMINAL_DETAIL_TYPES = {
    JobStatus.COMPLETED: DetailType.JOB_COMPLETED,
    JobStatus.FAILED: DetailType.JOB_FAILED,
    JobStatus.REJECTED: DetailType.JOB_REJECTED,
    JobStatus.EXPIRED: DetailType.JOB_EXPIRED,
    JobStatus.CANCELED: DetailType.JOB_CANCELED,
    JobStatus.DELETED: DetailType.JOB_DELETED,
}

NonNegative = Annotated[int, Field(ge=0)]
Attempt = Annotated[int, Field(ge=1)]


class EventDetail(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    def to_detail(self) -> dict[str, Any]:
        """The detail as it goes on the bus: camelCase names, every field present but `attempt` on a job's first
        attempt (which reads exactly as before attempts existed; a missing `attempt` is 1)."""
        detail = self.model_dump(mode="json", by_alias=True)
        if detail.get("attempt") == 1:
            del detail["attempt"]
        return detail


class _RenditionDetail(EventDetail):
    job_id: str = Field(min_length=1)
    owner_id: str | None = None
    rendition: str = Field(min_length=1)
    attempt: Attempt = 1
    """The job's attempt the work belonged to: the tracker ignores reports of an earlier one."""


class RenditionProgress(_RenditionDetail):
    """`Rendition Progress`: a transcoder is working on a rendition (0 when it starts)."""

    percent: Annotated[int, Field(ge=0, le=100)]


class RenditionCompleted(_RenditionDetail):
    """`Rendition Completed`: the output exists and was read back."""

    engine: str
    bucket: str
    key: str
    width: NonNegative | None = None
    height: NonNegative | None = None
    duration_ms: NonNegative | None = None
    bytes: NonNegative | None = None
    content_type: str | None = None
    image: ImageMetadata | None = None
    """What an image's metadata unit read (its file is that metadata as JSON); absent for every other unit."""

    def to_detail(self) -> dict[str, Any]:
        detail = super().to_detail()
        if detail["image"] is None:
            del detail["image"]
        return detail

    def output(self) -> dict[str, Any]:
        """The rendition fields the job record keeps (docs/CONTRACTS.md, `renditions`)."""
        return {
            "width": self.width,
            "height": self.height,
            "durationMs": self.duration_ms,
            "bytes": self.bytes,
            "contentType": self.content_type,
            "bucket": self.bucket,
            "key": self.key,
            "engine": self.engine,
        }


class RenditionFailed(_RenditionDetail):
    """`Rendition Failed`: the transcoder gave up on a rendition."""

    engine: str | None = None
    error: ErrorInfo


class SegmentCompleted(_RenditionDetail):
    """`Segment Completed`: one part (a video segment or the audio) of a segment-parallel rendition is stored.

    A part that fails reports `Rendition Failed` for the whole rendition; the stitch reports `Rendition Completed`.
    """

    part: SegmentPart
    index: NonNegative = 0


RenditionEvent = RenditionProgress | RenditionCompleted | RenditionFailed

RENDITION_EVENT_MODELS: dict[str, type[RenditionEvent]] = {
    DetailType.RENDITION_PROGRESS: RenditionProgress,
    DetailType.RENDITION_COMPLETED: RenditionCompleted,
    DetailType.RENDITION_FAILED: RenditionFailed,
}


def parse_segment_event(detail_type: str, detail: dict[str, Any]) -> SegmentCompleted | None:
    """The typed event, or None for another detail type; raises pydantic.ValidationError on a malformed detail."""
    return SegmentCompleted.model_validate(detail) if detail_type == DetailType.SEGMENT_COMPLETED else None


def parse_rendition_event(detail_type: str, detail: dict[str, Any]) -> RenditionEvent | None:
    """The typed event, or None for a detail type that is not a rendition event.

    Raises pydantic.ValidationError when the detail does not have the documented shape.
    """
    model = RENDITION_EVENT_MODELS.get(detail_type)
    return model.model_validate(detail) if model else None


class PackagingRequested(EventDetail):
    """`Packaging Requested` (tracker): every rendition of a video job settled; package the completed ones."""

    job_id: str = Field(min_length=1)
    owner_id: str = Field(min_length=1)
    engine: str | None = None
    """Who encoded the renditions (`lambda` or `mediaconvert`); the package is the same either way."""
    duration_ms: NonNegative
    """The source's duration, as ingest probed it."""
    renditions: list[PackagingSource] = Field(min_length=1)
    """The completed video renditions, in ladder order."""
    attempt: Attempt = 1


class PackagingCompleted(EventDetail):
    """`Packaging Completed` (packager): the ladder, poster and thumbnails are in the outputs bucket."""

    job_id: str = Field(min_length=1)
    owner_id: str | None = None
    package: PlaybackPackage
    attempt: Attempt = 1


class PackagingFailed(EventDetail):
    """`Packaging Failed` (packager): the renditions could not be packaged, and a retry would fail the same way."""

    job_id: str = Field(min_length=1)
    owner_id: str | None = None
    error: ErrorInfo
    attempt: Attempt = 1


PackagingEvent = PackagingCompleted | PackagingFailed

PACKAGING_EVENT_MODELS: dict[str, type[PackagingEvent]] = {
    DetailType.PACKAGING_COMPLETED: PackagingCompleted,
    DetailType.PACKAGING_FAILED: PackagingFailed,
}


def parse_packaging_event(detail_type: str, detail: dict[str, Any]) -> PackagingEvent | None:
    """The typed event, or None for a detail type that is not a packager's report; ValidationError on a bad shape."""
    model = PACKAGING_EVENT_MODELS.get(detail_type)
    return model.model_validate(detail) if model else None


class JobAccepted(EventDetail):
    """`Job Accepted` (ingest): the job is PROCESSING and these renditions were fanned out."""

    job_id: str
    owner_id: str
    engine: str | None
    renditions: list[str]
    attempt: Attempt = 1

    @classmethod
    def of(cls, job: JobRecord) -> JobAccepted:
        queued = [r.name for r in job.queued_renditions()]
        return cls(job_id=job.jobId, owner_id=job.ownerId, engine=job.engine, renditions=queued, attempt=job.attempt)


class JobDeletionRequested(EventDetail):
    """`Job Deletion Requested` (api): the owner deleted the job; the tracker deletes its source and outputs (and
    cancels its MediaConvert job), then marks it DELETED."""

    job_id: str = Field(min_length=1)
    owner_id: str = Field(min_length=1)

    @classmethod
    def of(cls, job: JobRecord) -> JobDeletionRequested:
        return cls(job_id=job.jobId, owner_id=job.ownerId)


class OutcomeRendition(EventDetail):
    status: RenditionStatus
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    bytes: int | None = None
    bucket: str | None = None
    key: str | None = None


class JobOutcome(EventDetail):
    """Job Completed / Failed / Rejected / Expired / Canceled / Deleted: enough for a subscriber to act without a
    read."""

    job_id: str
    owner_id: str
    status: JobStatus
    attempt: Attempt = 1
    engine: str | None = None
    error: ErrorInfo | None = None
    renditions: dict[str, OutcomeRendition] = Field(default_factory=dict)

    @classmethod
    def of(cls, job: JobRecord) -> JobOutcome:
        return cls(
            job_id=job.jobId,
            owner_id=job.ownerId,
            status=job.status,
            attempt=job.attempt,
            engine=job.engine,
            error=job.error,
            renditions={
                name: OutcomeRendition(
                    status=rendition.status,
                    width=rendition.width,
                    height=rendition.height,
                    duration_ms=rendition.durationMs,
                    bytes=rendition.bytes,
                    bucket=rendition.bucket,
                    key=rendition.key,
                )
                for name, rendition in job.renditions.items()
            },
        )


def outcome_event(before: JobRecord, after: JobRecord) -> tuple[DetailType, JobOutcome] | None:
    """The event to announce when a write made the job terminal; None when it did not."""
    if before.status == after.status:
        return None
    detail_type = TERMINAL_DETAIL_TYPES.get(after.status)
    return (detail_type, JobOutcome.of(after)) if detail_type else None
