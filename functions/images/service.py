"""Producing one unit of an image job: a derivative (resized, re-encoded, maybe watermarked) or the image's metadata.

Ingest publishes an image job one unit per message (`FanOutMessage.per_unit`), so the units run in parallel and
are retried and dead-lettered on their own; a message listing several units is handled unit after unit.

Failure policy:
- The upload changed or vanished since ingest validated it (the conditional read answers 412 or 404):
  `Rendition Failed` SOURCE_REPLACED, and return normally: a retry would read the same answer.
- Every reason names what failed, never a bucket, key or working path (those are logged; see `unit_worker`).
- The image itself is the problem (it does not decode, is over the pixel or byte limit, its plan names an unknown
  format, it comes from another bucket than the uploads bucket): `Rendition Failed` IMAGE_PROCESSING_FAILED.
- Anything transient (S3 or EventBridge errors, the watermark logo unreadable): raise, so SQS delivers the message
  again and, after the last try, parks it in the DLQ.
- A unit of a kind this function does not make (video, audio): dropped, nothing announced.

Work no longer wanted (the job was canceled, or runs another attempt: `functions/common/job_gate.py`) stops where
the gate is asked, for each unit: before anything is announced or read, before the output is stored, and before a
failure is announced. WorkWithdrawn is raised; the batch wiring drops the message.

Redelivery is cheap and makes no duplicate: when the output object already carries metadata saying this job's attempt
made it for this unit, `Rendition Completed` is announced again from it, without reading the source.

What a derivative guarantees (the Pillow work is `adapters.PillowCodec`'s, the rules are here):
- The planned size, which ingest computed from the display size (after the EXIF orientation) and never above the
  source's; `fit_size` refuses to enlarge even if a plan asked for it.
- Upright pixels: the EXIF orientation is applied, then dropped with every other piece of metadata. No EXIF (so no
  GPS position and no device), no ICC profile (colours are converted to sRGB first), no XMP leaves the pipeline.
- RGB, or RGBA for a WebP of an image with transparency; a JPEG's transparency is flattened onto white.
- The watermark, on units planned with one and only when the stack configures text or a logo: bottom-right, inside
  a margin, semi-transparent, spanning `WATERMARK_SCALE` of the image's width.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from functions.common.job_gate import JobGate
from functions.common.observability import logger
from functions.common.unit_worker import (
    EventSink,
    Outcome,
    SourceMissing,
    StoredOutput,
    UnitEvents,
    UnitResult,
    work_dir,
)
from functions.contracts.errors import SOURCE_REPLACED_CODE
from functions.contracts.fanout import FanOutMessage, PlannedRendition, SourceObject
from functions.contracts.jobs import ImageMetadata
from functions.contracts.media import IMAGE_OUTPUT_FORMATS, UnitKind
from functions.images.settings import ImagesSettings

ENGINE = "images"
METADATA_CONTENT_TYPE = "application/json"
METADATA_FILE = "metadata.json"
FILE_EXTENSIONS = {"webp": "webp", "jpeg": "jpg"}
"""A derivative's `format` -> its file's extension."""
WORK_DIR_PREFIX = "images-"
IMAGE_PROCESSING_FAILED = "IMAGE_PROCESSING_FAILED"
UNITS_MADE_HERE = frozenset({UnitKind.IMAGE, UnitKind.METADATA})

JPEG_QUALITY = 85
WEBP_QUALITY = 82
EXIF_TEXT_CHARS = 64
WATERMARK_MARGIN_FRACTION = 0.03
"""The gap between the watermark and the image's right and bottom edges, as a fraction of its shorter side."""


# --- domain errors ------------------------------------------------------------------------------------------------


class ImageRejected(ValueError):
    """The image cannot be made into the unit: it does not decode, or it is over a limit. Permanent."""


class LogoUnavailable(RuntimeError):
    """The configured watermark logo cannot be read or decoded: a deployment to fix, so the unit is retried (and
    ends in the DLQ) rather than published without the watermark it was planned with."""


# --- what the ports exchange --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Watermark:
    """The mark to draw: a logo (PNG bytes) or, without one, a text."""

    opacity: float
    scale: float
    text: str = ""
    logo: bytes | None = None


@dataclass(frozen=True)
class DerivativeSpec:
    """What to make of the source."""

    width: int
    """The planned display width; never enlarged beyond the source's."""
    height: int
    pillow_format: str
    """`WEBP` or `JPEG`."""
    max_pixels: int
    max_bytes: int
    watermark: Watermark | None = None


@dataclass(frozen=True)
class EncodedImage:
    """A derivative's file, as read back after encoding."""

    data: bytes
    width: int
    height: int


# --- ports --------------------------------------------------------------------------------------------------------


class ImageStore(Protocol):
    outputs_bucket: str

    def download_source(self, source: SourceObject, destination: Path, *, max_bytes: int) -> None:
        """Raises SourceMissing when the object is gone or replaced, ImageRejected when it is over `max_bytes`."""
        ...

    def find_output(self, job_id: str, unit: str, key: str, *, attempt: int) -> StoredOutput | None:
        """The output an earlier delivery of this job's unit (in the same attempt) stored under `key`, if any."""
        ...

    def read_output(self, key: str) -> bytes: ...

    def put_output(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        job_id: str,
        unit: str,
        attempt: int,
        size: tuple[int, int] | None,
    ) -> StoredOutput: ...

    def read_logo(self, key: str) -> bytes:
        """The logo's bytes, read once per execution environment; LogoUnavailable when it cannot be read."""
        ...


class ImageCodec(Protocol):
    def read_metadata(self, path: Path, *, max_pixels: int, max_bytes: int) -> ImageMetadata:
        """Raises ImageRejected."""
        ...

    def make_derivative(self, path: Path, spec: DerivativeSpec) -> EncodedImage:
        """Raises ImageRejected (the source), LogoUnavailable (the watermark logo)."""
        ...


# --- the rules ----------------------------------------------------------------------------------------------------


def output_key(job_id: str, unit: PlannedRendition) -> str:
    """`outputs/{jobId}/{name}.webp|.jpg` for a derivative, `outputs/{jobId}/metadata.json` for the metadata."""
    if unit.kind is UnitKind.METADATA:
        return f"outputs/{job_id}/{METADATA_FILE}"
    return f"outputs/{job_id}/{unit.name}.{FILE_EXTENSIONS[unit.format or '']}"


def fit_size(source: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The output size for a source of `source` display size planned at `box`: the plan itself when the source is at
    least that large in both directions (ingest planned it from this very source), else the source's size scaled to
    fit inside the box, never enlarged."""
    (source_w, source_h), (box_w, box_h) = source, box
    if box_w <= source_w and box_h <= source_h:
        return max(1, box_w), max(1, box_h)
    scale = min(box_w / source_w, box_h / source_h, 1.0)
    return max(1, round(source_w * scale)), max(1, round(source_h * scale))


def watermark_margin(size: tuple[int, int]) -> int:
    return max(1, round(min(size) * WATERMARK_MARGIN_FRACTION))


def watermark_origin(image: tuple[int, int], mark: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of a mark of size `mark` placed bottom-right inside the margin of an image of size `image`."""
    margin = watermark_margin(image)
    return max(0, image[0] - margin - mark[0]), max(0, image[1] - margin - mark[1])


def watermark_width(image_width: int, scale: float) -> int:
    return max(1, round(image_width * scale))


def exif_text(value: object) -> str | None:
    """A printable, bounded EXIF string (Make, Model, DateTimeOriginal), or None when there is nothing usable."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = re.sub(r"[^\x20-\x7e\u00a0-\uffff]", "", value.replace("\x00", " ")).strip()
    return text[:EXIF_TEXT_CHARS] or None


def display_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The size after the EXIF orientation: 5 to 8 turn the image a quarter."""
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


# --- the worker ---------------------------------------------------------------------------------------------------


class ImageUnitWorker:
    """Makes the units of an image job's message and announces each result on the bus."""

    def __init__(
        self, store: ImageStore, codec: ImageCodec, events: EventSink, settings: ImagesSettings, *, gate: JobGate
    ) -> None:
        self._store = store
        self._codec = codec
        self._units = UnitEvents(events, ENGINE)
        self._settings = settings
        self._gate = gate

    def process(self, message: FanOutMessage) -> list[UnitResult]:
        """Every unit of the message, in order; an exception (transient) leaves the rest to the redelivery."""
        return [self.process_unit(message, unit) for unit in message.renditions]

    def process_unit(self, message: FanOutMessage, unit: PlannedRendition) -> UnitResult:
        with logger.append_context_keys(unit=unit.name, kind=str(unit.kind)):
            if unit.kind not in UNITS_MADE_HERE:
                logger.warning("not a unit the images function makes; dropped")
                return UnitResult(unit.name, Outcome.DROPPED)
            self._check_wanted(message)
            self._units.started(message, unit.name)
            if unit.kind is UnitKind.IMAGE and unit.format not in IMAGE_OUTPUT_FORMATS:
                return self._fail(message, unit, IMAGE_PROCESSING_FAILED, f"unknown image format {unit.format!r}")

            key = output_key(message.jobId, unit)
            reannounced = self._reannounce(message, unit, key)
            if reannounced is not None:
                return reannounced
            if message.source.bucket != self._settings.uploads_bucket:
                logger.warning("the source is outside the uploads bucket", extra={"bucket": message.source.bucket})
                text = "the upload is not in the uploads bucket"
                return self._fail(message, unit, IMAGE_PROCESSING_FAILED, text)

            watermark = self._watermark(unit)  # before the download: a missing logo is retried, not a failure
            with work_dir(self._settings.work_root, WORK_DIR_PREFIX) as work:
                return self._make(work / "source", message, unit, key, watermark)

    def _check_wanted(self, message: FanOutMessage) -> None:
        """Raises WorkWithdrawn when the job was canceled or runs another attempt."""
        self._gate.check(message.jobId, message.attempt)

    def _reannounce(self, message: FanOutMessage, unit: PlannedRendition, key: str) -> UnitResult | None:
        existing = self._store.find_output(message.jobId, unit.name, key, attempt=message.attempt)
        if existing is None or (unit.kind is UnitKind.IMAGE and (existing.width is None or existing.height is None)):
            return None
        image = None
        if unit.kind is UnitKind.METADATA:
            try:
                image = ImageMetadata.model_validate_json(self._store.read_output(key))
            except ValidationError:
                logger.warning("stored metadata does not parse; reading the image again", extra={"key": key})
                return None
        logger.info("output stored by an earlier delivery; announcing it again", extra={"key": key})
        return self._units.reannounced(message, unit.name, existing, image)

    def _watermark(self, unit: PlannedRendition) -> Watermark | None:
        settings = self._settings
        if unit.kind is not UnitKind.IMAGE or not unit.watermark or not settings.watermark_configured:
            return None
        logo = self._store.read_logo(settings.watermark_logo_key) if settings.watermark_logo_key else None
        return Watermark(
            opacity=settings.watermark_opacity, scale=settings.watermark_scale, text=settings.watermark_text, logo=logo
        )

    def _make(
        self, source: Path, message: FanOutMessage, unit: PlannedRendition, key: str, watermark: Watermark | None
    ) -> UnitResult:
        settings = self._settings
        started = time.monotonic()
        try:
            self._store.download_source(message.source, source, max_bytes=settings.max_image_bytes)
        except SourceMissing as err:
            return self._fail(message, unit, SOURCE_REPLACED_CODE, str(err))
        except ImageRejected as err:
            return self._fail(message, unit, IMAGE_PROCESSING_FAILED, str(err))
        try:
            if unit.kind is UnitKind.METADATA:
                return self._store_metadata(source, message, unit, key, started)
            pillow_format, content_type = IMAGE_OUTPUT_FORMATS[unit.format or ""]
            spec = DerivativeSpec(
                width=unit.width or 1,
                height=unit.height or 1,
                pillow_format=pillow_format,
                max_pixels=settings.max_image_pixels,
                max_bytes=settings.max_image_bytes,
                watermark=watermark,
            )
            encoded = self._codec.make_derivative(source, spec)
        except ImageRejected as err:
            return self._fail(message, unit, IMAGE_PROCESSING_FAILED, str(err))
        self._check_wanted(message)
        stored = self._store.put_output(
            key,
            encoded.data,
            content_type=content_type,
            job_id=message.jobId,
            unit=unit.name,
            attempt=message.attempt,
            size=(encoded.width, encoded.height),
        )
        return self._completed(message, unit, stored, None, started)

    def _store_metadata(
        self, source: Path, message: FanOutMessage, unit: PlannedRendition, key: str, started: float
    ) -> UnitResult:
        settings = self._settings
        metadata = self._codec.read_metadata(
            source, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes
        )
        self._check_wanted(message)
        stored = self._store.put_output(
            key,
            metadata.model_dump_json().encode(),
            content_type=METADATA_CONTENT_TYPE,
            job_id=message.jobId,
            unit=unit.name,
            attempt=message.attempt,
            size=None,
        )
        return self._completed(message, unit, stored, metadata, started)

    def _completed(
        self,
        message: FanOutMessage,
        unit: PlannedRendition,
        stored: StoredOutput,
        image: ImageMetadata | None,
        started: float,
    ) -> UnitResult:
        self._units.completed(message, unit.name, stored, image)
        seconds = time.monotonic() - started
        logger.info(
            "unit completed",
            extra={"key": stored.key, "bytes": stored.bytes, "width": stored.width, "height": stored.height},
        )
        return UnitResult(unit.name, Outcome.COMPLETED, stored=stored, seconds=seconds)

    def _fail(self, message: FanOutMessage, unit: PlannedRendition, code: str, text: str) -> UnitResult:
        self._check_wanted(message)  # a job deleted meanwhile lost its source too: withdrawn, not failed
        logger.error("unit failed", extra={"code": code, "reason": text})
        return self._units.failed(message, unit.name, code, text)
