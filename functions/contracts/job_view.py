"""How a job reads to its owner: `GET /jobs/{id}`, and the `data` of every webhook (DESIGN.md, "A job reads").

The record minus its bookkeeping: `version`, `openJob`, `deadlineAt`, `expiresAt`, `ownerId`, bucket names and keys
stay inside; times become ISO-8601 UTC; renditions become a list in ladder order, and a completed one carries a
short-lived download link made by the `download_url` callable the caller injects. A completed video job's playback
package becomes `playback`: links through the CDN, all under the one signature the `sign_playback` callable makes for
the job's folder. Webhook deliveries that gave up (`webhookFailures`, a map on the record) become a list, oldest
first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from functions.contracts.jobs import ErrorInfo, ImageMetadata, JobRecord, JobStatus, RenditionRecord, RenditionStatus
from functions.contracts.media import UnitKind
from functions.contracts.playback import PackagingStatus
from functions.contracts.webhooks import DELIVERY_ERROR_DESCRIPTION, client_error

DownloadUrl = Callable[[str], str]
"""Makes a download link for a key in the outputs bucket."""


class SignedLinks(Protocol):
    urls: dict[str, str]
    """The caller's names -> signed links."""
    expires_at_ms: int


SignPlayback = Callable[[str, Mapping[str, str]], SignedLinks]
"""(jobId, name -> outputs-bucket key under the job's folder) -> links through the CDN under one signature."""


def iso_utc(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds: `2026-11-24T02:22:13.123Z`."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ErrorView(BaseModel):
    code: str = Field(description="One of the documented error codes, e.g. `UNSUPPORTED_FORMAT`.")
    message: str = Field(description="What went wrong, in plain words.")


class SourceView(BaseModel):
    filename: str | None
    contentType: str | None
    size: int | None


class RenditionView(BaseModel):
    name: str
    status: RenditionStatus
    progress: int = Field(ge=0, le=100)
    width: int | None
    height: int | None
    durationMs: int | None
    bytes: int | None
    contentType: str | None
    url: str | None = Field(description="A short-lived download link, once the rendition is COMPLETED.")
    error: ErrorView | None
    reason: str | None = Field(description="Why a rendition was skipped, or kept below its planned size.")


class ThumbnailsView(BaseModel):
    vtt: str = Field(description="WebVTT index of the sprite: a cue per tile, `sprite.jpg#xywh=x,y,w,h`.")
    sprite: str = Field(description="The sprite sheet (JPEG), one tile every few seconds, row by row.")


class PlaybackView(BaseModel):
    """Links through the CDN, signed for the job's whole folder: one signature serves every playlist and segment."""

    hls: str = Field(description="The HLS master playlist (CMAF, 2-second segments), for hls.js, Safari, VLC, ffplay.")
    poster: str = Field(description="A JPEG of the first non-black frame near 10% of the video.")
    thumbnails: ThumbnailsView
    expiresAt: str = Field(description="ISO-8601 UTC; the links and the signature they carry stop working then.")


class WebhookFailureView(BaseModel):
    endpointId: str
    eventType: str
    attempts: int
    statusCode: int | None
    error: str | None = Field(description=DELIVERY_ERROR_DESCRIPTION)
    failedAt: str = Field(description="ISO-8601 UTC.")


class JobView(BaseModel):
    """A job as its owner reads it."""

    jobId: str
    status: JobStatus
    attempt: int = Field(default=1, ge=1, description="Which run of the job: 1, then one more per retry or reprocess.")
    mediaType: str | None
    engine: str | None
    createdAt: str = Field(description="ISO-8601 UTC.")
    updatedAt: str = Field(description="ISO-8601 UTC.")
    progress: int = Field(ge=0, le=100)
    source: SourceView
    probe: dict[str, Any] | None = Field(description="What ingest learnt about the upload (docs/CONTRACTS.md).")
    renditions: list[RenditionView] = Field(
        description="Video renditions, image derivatives, or an audio upload's AAC rendition and waveform PNG."
    )
    image: ImageMetadata | None = Field(
        default=None, description="An image's metadata (never its location), once read; null for other media."
    )
    playback: PlaybackView | None = Field(
        default=None, description="A completed video's HLS ladder, poster and thumbnails; null otherwise."
    )
    error: ErrorView | None
    webhookFailures: list[WebhookFailureView]
    deletionRequestedAt: str | None = Field(
        default=None,
        description="ISO-8601 UTC, once its owner deleted it: its files are being deleted (then DELETED), and no "
        "link is given any more.",
    )


class JobPage(BaseModel):
    """`GET /jobs`: a page of the owner's jobs, newest first, and the cursor of the next page."""

    jobs: list[JobView]
    nextCursor: str | None


def job_view(job: JobRecord, download_url: DownloadUrl, sign_playback: SignPlayback) -> JobView:
    deleted = job.deletion is not None  # nothing of a deleted job is linked: its files are going, or gone
    if deleted:
        download_url = _no_link
    return JobView(
        jobId=job.jobId,
        status=job.status,
        attempt=job.attempt,
        mediaType=job.mediaType,
        engine=job.engine,
        createdAt=iso_utc(job.createdAt),
        updatedAt=iso_utc(job.updatedAt),
        progress=job.progress,
        source=SourceView(filename=job.source.filename, contentType=job.source.contentType, size=job.source.size),
        probe=job.probe.model_dump(mode="json", exclude_unset=True) if job.probe else None,
        renditions=[
            rendition_view(rendition, download_url)
            for rendition in job.renditions_in_order()
            if rendition.kind != UnitKind.METADATA  # its result is `image`
        ],
        image=job.image,
        playback=None if deleted else playback_view(job, sign_playback),
        error=_error_view(job.error),
        webhookFailures=webhook_failures_view(job),
        deletionRequestedAt=iso_utc(job.deletion.requestedAt) if job.deletion else None,
    )


def _no_link(key: str) -> str:
    return ""


def webhook_failures_view(job: JobRecord) -> list[WebhookFailureView]:
    """Webhook deliveries of the job that gave up after their last attempt, oldest first; [] when there are none."""
    failures = sorted((job.webhookFailures or {}).values(), key=lambda f: (f.failedAt, f.endpointId))
    return [
        WebhookFailureView(
            endpointId=failure.endpointId,
            eventType=failure.eventType,
            attempts=failure.attempts,
            statusCode=failure.statusCode,
            error=client_error(failure.error),
            failedAt=iso_utc(failure.failedAt),
        )
        for failure in failures
    ]


def rendition_view(rendition: RenditionRecord, download_url: DownloadUrl) -> RenditionView:
    """One rendition; `url` only once it is COMPLETED, `reason` says why a SKIPPED one was skipped."""
    completed_key = rendition.key if rendition.status == RenditionStatus.COMPLETED else None
    return RenditionView(
        name=rendition.name,
        status=rendition.status,
        progress=rendition.progress,
        width=rendition.width,
        height=rendition.height,
        durationMs=rendition.durationMs,
        bytes=rendition.bytes,
        contentType=rendition.contentType,
        url=download_url(completed_key) or None if completed_key else None,
        error=_error_view(rendition.error),
        reason=rendition.reason,
    )


def playback_view(job: JobRecord, sign_playback: SignPlayback) -> PlaybackView | None:
    """The package's links, once the job COMPLETED with one; None for any other job (nothing is signed then)."""
    playback = job.playback
    if job.status != JobStatus.COMPLETED or playback is None or playback.status != PackagingStatus.COMPLETED:
        return None
    package = playback.package
    if package is None:
        return None
    keys = {
        "hls": package.hlsKey,
        "poster": package.poster.key,
        "vtt": package.thumbnails.vttKey,
        "sprite": package.thumbnails.spriteKey,
    }
    signed = sign_playback(job.jobId, keys)
    return PlaybackView(
        hls=signed.urls["hls"],
        poster=signed.urls["poster"],
        thumbnails=ThumbnailsView(vtt=signed.urls["vtt"], sprite=signed.urls["sprite"]),
        expiresAt=iso_utc(signed.expires_at_ms),
    )


def job_page(
    jobs: Iterable[JobRecord], next_cursor: str | None, download_url: DownloadUrl, sign_playback: SignPlayback
) -> JobPage:
    """A page of the owner's jobs as the table returned them (newest first), and where to go on."""
    return JobPage(jobs=[job_view(job, download_url, sign_playback) for job in jobs], nextCursor=next_cursor)


def _error_view(error: ErrorInfo | None) -> ErrorView | None:
    return ErrorView(code=error.code, message=error.message) if error else None
