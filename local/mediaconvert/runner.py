"""Runs one local MediaConvert job: read the input from S3, encode with ffmpeg what the settings ask for, write every
output to S3, and announce each state on the default bus, in MediaConvert's order:

PROGRESSING → INPUT_INFORMATION → STATUS_UPDATE (at most one per `StatusUpdateInterval`, on the local clock) →
COMPLETE, only once every output is in S3 (consumers HEAD them) | ERROR with a code and message | CANCELED.

Error codes follow MediaConvert's: 1040 the input could not be read, 1010 it is not media ffmpeg can open, 1030 the
transcode failed, 1401 an output could not be written, 1999 anything else (logged with its traceback).

Each FILE_GROUP output is one ffmpeg encode to MP4; outputs with identical video and audio descriptions share one
encode, written under each output's name.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from local.mediaconvert.events import EventPublisher, input_details, job_progress
from local.mediaconvert.jobs import Job, JobStore
from local.mediaconvert.outputs.ffmpeg import (
    FfmpegCancelled,
    FfmpegFailed,
    MediaInfo,
    ProbeFailed,
    encode_args,
    probe,
    run_ffmpeg,
)
from local.mediaconvert.outputs.naming import OutputMeasure, output_group_details
from local.mediaconvert.settings import OutputSpec

log = logging.getLogger("local.mediaconvert.service")

INPUT_UNREADABLE = 1040
INPUT_NOT_MEDIA = 1010
TRANSCODE_FAILED = 1030
OUTPUT_UNWRITABLE = 1401
INTERNAL_ERROR = 1999
CHUNK_BYTES = 1 << 20
# An ffmpeg step that runs longer than this is stuck (x264 veryfast encodes far faster than 10x slower than real time).
STEP_TIMEOUT_BASE_SECONDS, STEP_TIMEOUT_PER_MEDIA_SECOND = 120.0, 10.0


class JobError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _s3(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    return parts.netloc, parts.path.lstrip("/")


def step_timeout(media_seconds: float) -> float:
    return STEP_TIMEOUT_BASE_SECONDS + STEP_TIMEOUT_PER_MEDIA_SECOND * media_seconds


def _reason(err: ClientError | BotoCoreError) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return str(error.get("Message") or error.get("Code") or err)
    return str(err)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else text.strip()


def api_output_group_details(event_groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The COMPLETE event's groups in the API's `OutputGroupDetail` shape (durations and frame sizes only)."""
    return [
        {
            "OutputDetails": [
                {
                    "DurationInMs": detail["durationInMs"],
                    "VideoDetails": {
                        "WidthInPx": detail["videoDetails"]["widthInPx"],
                        "HeightInPx": detail["videoDetails"]["heightInPx"],
                    },
                }
                for detail in group["outputDetails"]
            ]
        }
        for group in event_groups
    ]


@dataclass
class _Progress:
    """TRANSCODING progress over the job's encodes, put as STATUS_UPDATE at most once per interval (local clock)."""

    job: Job
    store: JobStore
    events: EventPublisher
    interval_seconds: float
    total_steps: int
    done_steps: int = 0
    frames_done: int = 0
    last_put: float = field(default_factory=time.monotonic)
    last_percent: int = -1

    def report(self, step_fraction: float, frames: int) -> None:
        fraction = (self.done_steps + min(1.0, step_fraction)) / max(1, self.total_steps)
        percent = min(99, int(fraction * 100))
        self.store.progress(self.job, phase="TRANSCODING", percent=percent)
        now = time.monotonic()
        if now - self.last_put >= self.interval_seconds and percent != self.last_percent:
            self.last_put, self.last_percent = now, percent
            self.events.publish(
                self.job,
                "STATUS_UPDATE",
                framesDecoded=self.frames_done + frames,
                jobProgress=job_progress("TRANSCODING", percent, percent),
            )

    def step_done(self, frames: int) -> None:
        self.done_steps += 1
        self.frames_done += frames


class JobRunner:
    """Runs jobs one at a time per runner; `stopping` ends a run quietly (the local cloud is going away)."""

    def __init__(
        self,
        *,
        store: JobStore,
        events: EventPublisher,
        s3_for: Callable[[str], Any],
        work_root: Path,
        status_interval: Callable[[float], float],
        stopping: threading.Event,
    ) -> None:
        self._store = store
        self._events = events
        self._s3_for = s3_for
        """An S3 client acting as a job's role (MediaConvert reads and writes with the role the job passes)."""
        self._work_root = work_root
        self._status_interval = status_interval
        self._stopping = stopping

    def run(self, job: Job) -> None:
        if not self._store.start(job):
            return
        self._events.publish(job, "PROGRESSING")
        work = self._work_root / job.id
        work.mkdir(parents=True, exist_ok=True)
        try:
            details = self._make(job, work)
        except FfmpegCancelled:
            if not self._stopping.is_set():
                self._store.canceled(job)
                self._events.publish(job, "CANCELED")
            return
        except JobError as err:
            self._fail(job, err.code, err.message)
            return
        except Exception as err:  # a defect of the stand-in: the job ends in ERROR with the reason, and is logged
            log.exception("MediaConvert job %s failed inside the local stand-in", job.id)
            self._fail(job, INTERNAL_ERROR, f"Internal error in the local MediaConvert: {type(err).__name__}: {err}")
            return
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._store.complete(job, api_output_group_details(details))
        self._events.publish(job, "COMPLETE", outputGroupDetails=details)

    def _fail(self, job: Job, code: int, message: str) -> None:
        log.warning("MediaConvert job %s: ERROR %d: %s", job.id, code, message)
        self._store.fail(job, code, message)
        self._events.publish(job, "ERROR", errorCode=code, errorMessage=message)

    def _cancelled(self, job: Job) -> bool:
        return job.cancel_requested.is_set() or self._stopping.is_set()

    # --- the steps ------------------------------------------------------------------------------------------

    def _make(self, job: Job, work: Path) -> list[dict[str, Any]]:
        spec = job.spec
        s3 = self._s3_for(job.role)
        source = self._download(s3, spec.input.uri, work / "source")
        try:
            info = probe(source)
        except ProbeFailed as err:
            raise JobError(
                INPUT_NOT_MEDIA, f"Unable to open input file [{spec.input.uri}]: [Failed probe/open: [{err}]]"
            ) from err
        self._events.publish(job, "INPUT_INFORMATION", inputDetails=input_details(spec.input.uri, info))
        if not info.has_audio:
            audio_wanted = next((o for o in spec.outputs if o.audio is not None), None)
            if audio_wanted is not None:
                raise JobError(
                    TRANSCODE_FAILED,
                    f"Output [{audio_wanted.planned.path}] asks for audio, but the input [{spec.input.uri}] has none",
                )
        progress = _Progress(
            job=job,
            store=self._store,
            events=self._events,
            interval_seconds=self._status_interval(job.status_update_seconds),
            total_steps=len({o.encode_key for o in spec.outputs}),
        )
        transcode = _Transcode(job, work, source, info, progress, cancelled=lambda: self._cancelled(job))
        transcode.run()
        self._store.progress(job, phase="UPLOADING", percent=99)
        for local, uri in transcode.uploads:
            self._upload(s3, local, uri)
        return output_group_details(job.settings, info.duration_ms, transcode.measured)

    def _download(self, s3: Any, uri: str, target: Path) -> Path:
        bucket, key = _s3(uri)
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            with target.open("wb") as file:
                for chunk in iter(lambda: body.read(CHUNK_BYTES), b""):
                    file.write(chunk)
        except (ClientError, BotoCoreError) as err:
            raise JobError(
                INPUT_UNREADABLE,
                f"Unable to open input file [{uri}]: [Failed probe/open: [Failed to read data: {_reason(err)}]]",
            ) from err
        return target

    def _upload(self, s3: Any, local: Path, uri: str) -> None:
        bucket, key = _s3(uri)
        try:
            with local.open("rb") as file:
                s3.put_object(Bucket=bucket, Key=key, Body=file)
        except (ClientError, BotoCoreError) as err:
            raise JobError(
                OUTPUT_UNWRITABLE, f"Unable to write to output file [{uri}]: [Failed to write data: {_reason(err)}]"
            ) from err


@dataclass
class _Transcode:
    """The TRANSCODING phase of one job: every output encoded in its work folder, and what each one measures."""

    job: Job
    work: Path
    source: Path
    info: MediaInfo
    progress: _Progress
    cancelled: Callable[[], bool]
    encodes: dict[Any, Path] = field(default_factory=dict)
    encoded: dict[Any, MediaInfo] = field(default_factory=dict)
    uploads: list[tuple[Path, str]] = field(default_factory=list)
    """(local file, s3 URI) of every output file, in the order they are written."""
    measured: dict[str, OutputMeasure] = field(default_factory=dict)

    def run(self) -> None:
        outputs = self.job.spec.outputs
        for output in outputs:
            self._encode(output)
        for output in outputs:
            media = self.encoded[output.encode_key]
            path = output.planned.path
            self.measured[path] = OutputMeasure(media.duration_ms, media.width, media.height)
            self.uploads.append((self.encodes[output.encode_key], path))

    def _ffmpeg(self, args: list[str], output: str) -> None:
        seconds = self.info.duration_s
        frames = 0

        def report(reached: float, written: int) -> None:
            nonlocal frames
            frames = written
            self.progress.report(reached / seconds if seconds > 0 else 1.0, written)

        try:
            run_ffmpeg(args, on_progress=report, cancelled=self.cancelled, timeout=step_timeout(seconds))
        except FfmpegFailed as err:
            raise JobError(
                TRANSCODE_FAILED, f"Transcoding failed for output [{output}]: [{_last_line(err.stderr)}]"
            ) from err
        self.progress.step_done(frames)

    def _encode(self, output: OutputSpec) -> None:
        """The output's encode, unless an identical one was made already."""
        if output.encode_key in self.encoded:
            return
        path = self.work / "encodes" / f"{len(self.encodes)}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.encodes[output.encode_key] = path
        args = encode_args(
            self.source, path, input_spec=self.job.spec.input, video=output.video, audio=output.audio, info=self.info
        )
        self._ffmpeg(args, output.planned.path)
        try:
            self.encoded[output.encode_key] = probe(path)
        except ProbeFailed as err:
            raise JobError(TRANSCODE_FAILED, f"Output [{output.planned.path}] is unreadable: [{err}]") from err
