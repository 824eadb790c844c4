"""Producing one rendition of one job: the steps between "a message arrived" and "Rendition Completed/Failed".

Failure policy:
- The input cannot be encoded (ffmpeg exits with an error, the source object is gone): `Rendition Failed`
  TRANSCODE_FAILED with the end of ffmpeg's stderr, and return normally: a retry would fail the same way.
- The encode does not read back as the planned rendition: `Rendition Failed` OUTPUT_INVALID, nothing uploaded.
- Anything transient (S3 or EventBridge errors, ffmpeg killed at the deadline or by a signal, too little time
  left to start): raise, so SQS delivers the message again and, after the last try, parks it in the DLQ.

Redelivery is cheap: when the output object already carries metadata saying this job and rendition produced it,
the Completed event is announced again from that metadata without downloading or encoding anything. An encode that
was interrupted before its upload simply runs again and overwrites the same key; the tracker ignores duplicates.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from functions.common.events import DetailType, EventPublisher, EventPublishFailed
from functions.common.media_tools import ffmpeg_path
from functions.transcode.ffmpeg_command import EncoderSettings, transcode_args
from functions.transcode.ffmpeg_runner import FfmpegFailed, probe_file, run_ffmpeg
from functions.transcode.messages import EncodePlan, FanOutMessage
from functions.transcode.output_check import OutputUnreadable, output_problems, parse_output_probe
from functions.transcode.progress import ProgressMilestones
from functions.transcode.settings import TranscodeSettings
from functions.transcode.storage import CONTENT_TYPE, MediaStore, SourceMissing, StoredRendition

ENGINE = "lambda"
WORK_DIR_PREFIX = "transcode-"
ERROR_MESSAGE_CHARS = 500
# Below this, an encode cannot do anything useful before the invocation ends; let SQS hand it to a fresh one.
MIN_ENCODE_SECONDS = 5.0

logger = Logger(child=True)


class NotEnoughTime(RuntimeError):
    """Too little of the invocation is left to start the encode. Raised so SQS retries in a new invocation."""


class Outcome(StrEnum):
    COMPLETED = "COMPLETED"
    REANNOUNCED = "REANNOUNCED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class RenditionResult:
    """How a message ended; the handler turns it into metrics."""

    outcome: Outcome
    stored: StoredRendition | None = None
    error_code: str | None = None
    encode_seconds: float = 0.0


def remove_stale_work_dirs(work_root: Path) -> None:
    """Delete working directories an earlier invocation could not clean (Lambda stopped it at its timeout).

    One invocation handles its records one after the other, so at its start no directory is in use; left behind,
    gigabytes of sources in a warm sandbox's /tmp would make the next encodes fail for lack of space.
    """
    if not work_root.is_dir():
        return
    for stale in work_root.glob(f"{WORK_DIR_PREFIX}*"):
        if stale.is_dir() and not stale.is_symlink():
            logger.warning("removing a working directory left by an interrupted invocation", extra={"path": str(stale)})
            shutil.rmtree(stale, ignore_errors=True)


def progress_detail(message: FanOutMessage, rendition: str, percent: int) -> dict[str, Any]:
    return {"jobId": message.jobId, "ownerId": message.ownerId, "rendition": rendition, "percent": percent}


def completed_detail(message: FanOutMessage, rendition: str, stored: StoredRendition) -> dict[str, Any]:
    return {
        "jobId": message.jobId,
        "ownerId": message.ownerId,
        "rendition": rendition,
        "engine": ENGINE,
        "bucket": stored.bucket,
        "key": stored.key,
        "width": stored.width,
        "height": stored.height,
        "durationMs": stored.durationMs,
        "bytes": stored.bytes,
        "contentType": CONTENT_TYPE,
    }


def failed_detail(message: FanOutMessage, rendition: str, code: str, text: str) -> dict[str, Any]:
    return {
        "jobId": message.jobId,
        "ownerId": message.ownerId,
        "rendition": rendition,
        "engine": ENGINE,
        "error": {"code": code, "message": text[-ERROR_MESSAGE_CHARS:]},
    }


class RenditionTranscoder:
    """Encodes the planned rendition of a message with ffmpeg and announces the result on the bus."""

    def __init__(self, store: MediaStore, publisher: EventPublisher, settings: TranscodeSettings) -> None:
        self._store = store
        self._publisher = publisher
        self._settings = settings
        self._encoder = EncoderSettings(preset=settings.preset, crf=settings.crf, threads=settings.threads)

    def transcode(self, message: FanOutMessage, plan: EncodePlan, remaining_ms: Callable[[], int]) -> RenditionResult:
        existing = self._store.find_output(message.jobId, plan.name)
        if existing is not None and (existing.width, existing.height) == (plan.width, plan.height):
            logger.info("rendition uploaded by an earlier delivery; announcing it again", extra={"key": existing.key})
            self._publisher.publish(DetailType.RENDITION_COMPLETED, completed_detail(message, plan.name, existing))
            return RenditionResult(Outcome.REANNOUNCED, stored=existing)

        self._encode_budget(remaining_ms)
        self._publisher.publish(DetailType.RENDITION_PROGRESS, progress_detail(message, plan.name, 0))
        self._settings.work_root.mkdir(parents=True, exist_ok=True)
        with TemporaryDirectory(prefix=WORK_DIR_PREFIX, dir=self._settings.work_root) as work:
            return self._transcode_in(Path(work), message, plan, remaining_ms)

    def _transcode_in(
        self, work: Path, message: FanOutMessage, plan: EncodePlan, remaining_ms: Callable[[], int]
    ) -> RenditionResult:
        source, output = work / "source", work / f"{plan.name}.mp4"
        try:
            self._store.download_source(message.source.bucket, message.source.key, source, etag=message.source.etag)
        except SourceMissing as err:
            return self._fail(message, plan, "TRANSCODE_FAILED", str(err))

        timeout = self._encode_budget(remaining_ms)
        args = transcode_args(ffmpeg_path(), source, output, plan=plan, probe=message.probe, encoder=self._encoder)
        logger.info("encoding", extra={"ffmpeg": args, "timeoutSeconds": round(timeout)})
        milestones = ProgressMilestones(message.probe.durationMs)
        started = time.monotonic()
        try:
            run_ffmpeg(
                args,
                timeout_seconds=timeout,
                on_progress_line=lambda line: self.announce_progress(message, plan, milestones.feed(line)),
            )
        except FfmpegFailed as err:
            return self._fail(message, plan, "TRANSCODE_FAILED", err.stderr_tail.replace(f"{work}/", ""))
        encode_seconds = time.monotonic() - started

        try:
            media = parse_output_probe(probe_file(output))
        except (FfmpegFailed, OutputUnreadable) as err:
            return self._fail(message, plan, "OUTPUT_INVALID", f"the output cannot be read back: {err}")
        problems = output_problems(media, plan, expect_audio=message.probe.hasAudio)
        if problems:
            return self._fail(message, plan, "OUTPUT_INVALID", "; ".join(problems))

        stored = self._store.upload_output(output, message.jobId, plan.name, media)
        self._publisher.publish(DetailType.RENDITION_COMPLETED, completed_detail(message, plan.name, stored))
        logger.info(
            "rendition completed",
            extra={"key": stored.key, "bytes": stored.bytes, "encodeSeconds": round(encode_seconds, 3)},
        )
        return RenditionResult(Outcome.COMPLETED, stored=stored, encode_seconds=encode_seconds)

    def _encode_budget(self, remaining_ms: Callable[[], int]) -> float:
        """Seconds ffmpeg may run: what is left of the invocation, less the reserve for reading back and uploading."""
        left_ms = remaining_ms()
        budget = left_ms / 1000 - self._settings.reserve_seconds
        if budget < MIN_ENCODE_SECONDS:
            raise NotEnoughTime(f"only {left_ms} ms left in the invocation")
        return budget

    def announce_progress(self, message: FanOutMessage, plan: EncodePlan, percent: int | None) -> None:
        """Progress is advisory: a failed put is logged and the encode goes on (Completed is not optional)."""
        if percent is None:
            return
        try:
            self._publisher.publish(DetailType.RENDITION_PROGRESS, progress_detail(message, plan.name, percent))
        except (ClientError, BotoCoreError, EventPublishFailed) as err:
            logger.warning("progress event not published", extra={"percent": percent, "error": str(err)})

    def _fail(self, message: FanOutMessage, plan: EncodePlan, code: str, text: str) -> RenditionResult:
        logger.error("rendition failed", extra={"code": code, "reason": text})
        self._publisher.publish(DetailType.RENDITION_FAILED, failed_detail(message, plan.name, code, text))
        return RenditionResult(Outcome.FAILED, error_code=code)
