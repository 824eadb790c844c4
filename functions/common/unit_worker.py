"""What the functions that make the units of a fan-out message (transcode, audio, images) share on the service side.

Each of them reads the upload ingest validated, makes its unit in a working directory of its own, stores the output
in the outputs bucket with metadata naming the job and the unit, and announces the unit's life on the bus as
`Rendition Progress` (0 when it starts), `Rendition Completed` or `Rendition Failed`, each naming the function's
engine. What differs (which units a function makes, in what order it checks them, what makes a stored output
reusable, how long a unit may take) stays in the function's own `service.py`; the pieces here are the same for all:
the domain errors of the ports they share, the ports, the events, the outcome a unit ends in, and the working
directories.

Each also asks the job gate (`job_gate.py`) whether its work is still wanted: before it reads the source, every few
seconds of a long ffmpeg run, and before it stores an output or announces a failure. Work of a canceled job, or of an
attempt the job has moved on from, raises WorkWithdrawn there, and the batch wiring (`unit_batch.py`) drops it: no
event, no output, the message done. Every event names the message's `attempt`, and so does every output's metadata.

A `Rendition Failed` event's message is what the client reads on the job (the tracker copies it, the webhooks send
it): the reasons the functions give name no bucket, key or local path (they log those), and `failed_event` passes
every reason through `client_messages.client_safe` on its way out, in case one does.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from functions.common.client_messages import client_safe
from functions.common.observability import logger
from functions.contracts.events import (
    DetailType,
    EventDetail,
    RenditionCompleted,
    RenditionFailed,
    RenditionProgress,
    SegmentCompleted,
)
from functions.contracts.fanout import FanOutMessage, Segment, SourceObject
from functions.contracts.jobs import ErrorInfo, ImageMetadata

ERROR_MESSAGE_CHARS = 500
"""A Failed event keeps the end of the reason: where a tool says what went wrong."""
MIN_WORK_SECONDS = 5.0
"""Below this, a tool cannot do anything useful before the invocation ends; SQS hands the message to a fresh one."""


# --- domain errors ------------------------------------------------------------------------------------------------


class SourceMissing(RuntimeError):
    """The upload is no longer in the uploads bucket (or, as SourceReplaced, no longer the object ingest validated).

    Its message is for the client: it says what happened, never where (the adapter logs the bucket and key)."""


class SourceReplaced(SourceMissing):
    """The upload is no longer the object ingest validated: the conditional read (IfMatch on the validated ETag)
    answered 412, because the still valid upload form was POSTed again. SOURCE_REPLACED, whatever the function."""


class OutputUnreadable(ValueError):
    """The output cannot be read back as what was planned (the reader refused it, or it is not what was planned)."""


class NotEnoughTime(RuntimeError):
    """Too little of the invocation is left to start the work. Raised so SQS retries in a new invocation."""


class EventNotPublished(RuntimeError):
    """The bus did not take an event (refused, throttled or unreachable)."""


# --- what the ports exchange, and the ports -----------------------------------------------------------------------


@dataclass(frozen=True)
class StoredOutput:
    """An output object in the outputs bucket, with what the Completed event reports about it."""

    bucket: str
    key: str
    bytes: int
    contentType: str
    width: int | None = None
    height: int | None = None
    durationMs: int | None = None


class SourceStore(Protocol):
    def download_source(self, source: SourceObject, destination: Path) -> None:
        """Copy the source to `destination`; with an ETag, only that object. SourceMissing when it is not there."""


class EventSink(Protocol):
    def publish(self, detail_type: DetailType, detail: EventDetail) -> None:
        """Put one event on the bus; EventNotPublished when the bus does not take it."""


# --- the events ---------------------------------------------------------------------------------------------------


def progress_event(message: FanOutMessage, unit: str, percent: int) -> RenditionProgress:
    return RenditionProgress(
        job_id=message.jobId, owner_id=message.ownerId, rendition=unit, attempt=message.attempt, percent=percent
    )


def completed_event(
    message: FanOutMessage, unit: str, engine: str, stored: StoredOutput, image: ImageMetadata | None = None
) -> RenditionCompleted:
    return RenditionCompleted(
        job_id=message.jobId,
        owner_id=message.ownerId,
        rendition=unit,
        attempt=message.attempt,
        engine=engine,
        bucket=stored.bucket,
        key=stored.key,
        width=stored.width,
        height=stored.height,
        duration_ms=stored.durationMs,
        bytes=stored.bytes,
        content_type=stored.contentType,
        image=image,
    )


def failed_event(message: FanOutMessage, unit: str, engine: str, code: str, text: str) -> RenditionFailed:
    """`Rendition Failed` with the end of `text`, made client-safe first (`client_safe`: no S3 URI, key, ARN, URL
    or absolute path), so that what is kept is what the client may read."""
    return RenditionFailed(
        job_id=message.jobId,
        owner_id=message.ownerId,
        rendition=unit,
        attempt=message.attempt,
        engine=engine,
        error=ErrorInfo(code=code, message=client_safe(text)[-ERROR_MESSAGE_CHARS:]),
    )


class Outcome(StrEnum):
    COMPLETED = "COMPLETED"
    REANNOUNCED = "REANNOUNCED"
    FAILED = "FAILED"
    DROPPED = "DROPPED"


@dataclass(frozen=True)
class UnitResult:
    """How one unit ended; the handler turns it into metrics."""

    unit: str
    outcome: Outcome
    stored: StoredOutput | None = None
    error_code: str | None = None
    seconds: float = 0.0


class UnitEvents:
    """One function's announcements of its units on the bus, each naming the function's `engine`."""

    def __init__(self, events: EventSink, engine: str) -> None:
        self._events = events
        self._engine = engine

    def progress(self, message: FanOutMessage, unit: str, percent: int) -> None:
        self._events.publish(DetailType.RENDITION_PROGRESS, progress_event(message, unit, percent))

    def started(self, message: FanOutMessage, unit: str) -> None:
        """`Rendition Progress` 0: the unit is being made."""
        self.progress(message, unit, 0)

    def completed(
        self, message: FanOutMessage, unit: str, stored: StoredOutput, image: ImageMetadata | None = None
    ) -> None:
        self._events.publish(
            DetailType.RENDITION_COMPLETED, completed_event(message, unit, self._engine, stored, image)
        )

    def segment_completed(self, message: FanOutMessage, unit: str, segment: Segment) -> None:
        """`Segment Completed`: one part of a segment-parallel rendition is stored."""
        detail = SegmentCompleted(
            job_id=message.jobId,
            owner_id=message.ownerId,
            rendition=unit,
            attempt=message.attempt,
            part=segment.part,
            index=segment.index,
        )
        self._events.publish(DetailType.SEGMENT_COMPLETED, detail)

    def reannounced(
        self, message: FanOutMessage, unit: str, stored: StoredOutput, image: ImageMetadata | None = None
    ) -> UnitResult:
        """`Rendition Completed` again for an output an earlier delivery of the message stored."""
        self.completed(message, unit, stored, image)
        return UnitResult(unit, Outcome.REANNOUNCED, stored=stored)

    def failed(self, message: FanOutMessage, unit: str, code: str, text: str) -> UnitResult:
        """`Rendition Failed`: the unit cannot be made, and a retry would fail the same way."""
        self._events.publish(DetailType.RENDITION_FAILED, failed_event(message, unit, self._engine, code, text))
        return UnitResult(unit, Outcome.FAILED, error_code=code)


# --- time and working directories ---------------------------------------------------------------------------------


def time_budget(remaining_ms: Callable[[], int], reserve_seconds: float) -> float:
    """Seconds a tool may run: what is left of the invocation, less the reserve for reading back, uploading and
    announcing. NotEnoughTime when that is too little to start."""
    left_ms = remaining_ms()
    budget = left_ms / 1000 - reserve_seconds
    if budget < MIN_WORK_SECONDS:
        raise NotEnoughTime(f"only {left_ms} ms left in the invocation")
    return budget


@contextmanager
def work_dir(work_root: Path, prefix: str) -> Iterator[Path]:
    """A fresh working directory under `work_root` named `prefix…`, removed with all it holds on the way out."""
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=work_root) as work:
        yield Path(work)


def remove_stale_work_dirs(work_root: Path, prefix: str) -> None:
    """Delete working directories an earlier invocation could not clean (Lambda stopped it at its timeout).

    One invocation handles its records one after the other, so at its start no directory is in use; left behind,
    sources in a warm sandbox's /tmp would make the next units fail for lack of space.
    """
    if not work_root.is_dir():
        return
    for stale in work_root.glob(f"{prefix}*"):
        if stale.is_dir() and not stale.is_symlink():
            logger.warning("removing a working directory left by an interrupted invocation", extra={"path": str(stale)})
            shutil.rmtree(stale, ignore_errors=True)
