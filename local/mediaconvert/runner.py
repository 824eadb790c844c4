"""Runs one local MediaConvert job: read the input from S3, encode with ffmpeg what the settings ask for, write every
output to S3, and announce each state on the default bus, in MediaConvert's order:

PROGRESSING → INPUT_INFORMATION → STATUS_UPDATE (at most one per `StatusUpdateInterval`, on the local clock) →
COMPLETE, only once every output is in S3 (consumers HEAD them) | ERROR with a code and message | CANCELED.

Error codes follow MediaConvert's: 1040 the input could not be read, 1010 it is not media ffmpeg can open, 1030 the
transcode failed, 1401 an output could not be written, 1999 anything else (logged with its traceback).

Identical encodes (an MP4 rendition and its HLS variant carry the same video and audio description) are made once:
the MP4 is written as encoded and the variant is its stream copy in MPEG-TS segments.
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
    frame_capture_args,
    hls_args,
    output_size,
    probe,
    run_ffmpeg,
)
from local.mediaconvert.outputs.hls import (
    PlaylistError,
    Variant,
    aac_codec,
    avc_codec,
    bitrates,
    master_playlist,
    with_integer_durations,
)
from local.mediaconvert.outputs.naming import (
    OutputMeasure,
    PlannedGroup,
    frame_capture_path,
    hls_segment_pattern,
    output_group_details,
)
from local.mediaconvert.settings import OutputSpec

log = logging.getLogger("local.mediaconvert.service")

INPUT_UNREADABLE = 1040
INPUT_NOT_MEDIA = 1010
TRANSCODE_FAILED = 1030
OUTPUT_UNWRITABLE = 1401
INTERNAL_ERROR = 1999
# Relative work of each step, per second of media: an encode decodes and encodes, a capture decodes, a repackage copies.
ENCODE_WEIGHT, CAPTURE_WEIGHT, PACKAGE_WEIGHT = 1.0, 0.5, 0.05
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
    """TRANSCODING progress over weighted steps, put as STATUS_UPDATE at most once per interval (local clock)."""

    job: Job
    store: JobStore
    events: EventPublisher
    interval_seconds: float
    total_weight: float
    done_weight: float = 0.0
    frames_done: int = 0
    last_put: float = field(default_factory=time.monotonic)
    last_percent: int = -1

    def report(self, step_weight: float, step_fraction: float, frames: int) -> None:
        fraction = (self.done_weight + step_weight * min(1.0, step_fraction)) / self.total_weight
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

    def step_done(self, step_weight: float, frames: int) -> None:
        self.done_weight += step_weight
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
            total_weight=_Transcode.total_weight(job, info.duration_s),
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
    """The TRANSCODING phase of one job: every output made in its work folder, and what each one measures."""

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

    @staticmethod
    def total_weight(job: Job, seconds: float) -> float:
        specs = job.spec.outputs
        encodes = {o.encode_key for o in specs if o.video is not None}
        captures = sum(1 for o in specs if o.capture is not None)
        variants = sum(1 for o in specs if o.video is not None and o.planned.group_type == "HLS_GROUP")
        return max(
            1e-9, seconds * (ENCODE_WEIGHT * len(encodes) + CAPTURE_WEIGHT * captures + PACKAGE_WEIGHT * variants)
        )

    def run(self) -> None:
        spec = self.job.spec
        video_outputs = [o for o in spec.outputs if o.video is not None]
        for output in video_outputs:
            self._encode(output)
        for output in video_outputs:
            media = self.encoded[output.encode_key]
            path = output.planned.path
            self.measured[path] = OutputMeasure((path,), media.duration_ms, media.width, media.height)
            if output.planned.group_type == "FILE_GROUP":
                self.uploads.append((self.encodes[output.encode_key], path))
        for index, group in enumerate(g for g in spec.groups if g.type == "HLS_GROUP"):
            self._package(group, self.work / "hls" / str(index))
        for index, output in enumerate(o for o in spec.outputs if o.capture is not None):
            self._capture(output, self.work / "captures" / str(index))

    def _ffmpeg(self, args: list[str], output: str, weight: float) -> None:
        seconds = self.info.duration_s
        frames = 0

        def report(reached: float, written: int) -> None:
            nonlocal frames
            frames = written
            self.progress.report(weight, reached / seconds if seconds > 0 else 1.0, written)

        try:
            run_ffmpeg(args, on_progress=report, cancelled=self.cancelled, timeout=step_timeout(seconds))
        except FfmpegFailed as err:
            raise JobError(
                TRANSCODE_FAILED, f"Transcoding failed for output [{output}]: [{_last_line(err.stderr)}]"
            ) from err
        self.progress.step_done(weight, frames)

    def _encode(self, output: OutputSpec) -> None:
        """The output's encode, unless an identical one was made already."""
        if output.encode_key in self.encoded:
            return
        assert output.video is not None
        path = self.work / "encodes" / f"{len(self.encodes)}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.encodes[output.encode_key] = path
        args = encode_args(
            self.source, path, input_spec=self.job.spec.input, video=output.video, audio=output.audio, info=self.info
        )
        self._ffmpeg(args, output.planned.path, ENCODE_WEIGHT * self.info.duration_s)
        try:
            self.encoded[output.encode_key] = probe(path)
        except ProbeFailed as err:
            raise JobError(TRANSCODE_FAILED, f"Output [{output.planned.path}] is unreadable: [{err}]") from err

    def _package(self, group: PlannedGroup, folder: Path) -> None:
        """The group's variants as segments + media playlists, then the master playlist over them."""
        hls = self.job.spec.hls[group.base]
        folder_uri = group.base.rsplit("/", 1)[0]
        folder.mkdir(parents=True)
        by_path = {o.planned.path: o for o in self.job.spec.outputs}
        variants: list[Variant] = []
        for planned in group.outputs:
            output = by_path[planned.path]
            playlist = folder / planned.path.rsplit("/", 1)[1]
            encoded = self.encodes[output.encode_key]
            args = hls_args(encoded, playlist, hls_segment_pattern(planned), hls.segment_seconds)
            self._ffmpeg(args, planned.path, PACKAGE_WEIGHT * self.info.duration_s)
            if hls.integer_durations:
                playlist.write_text(with_integer_durations(playlist.read_text()))
            variants.append(self._variant(playlist, self.encoded[output.encode_key], planned.path))
        master = folder / f"{group.base.rsplit('/', 1)[1]}.m3u8"
        master.write_text(master_playlist(variants, hls.include_resolution))
        self.uploads += [(path, f"{folder_uri}/{path.name}") for path in sorted(folder.iterdir()) if path != master]
        self.uploads.append((master, f"{folder_uri}/{master.name}"))

    @staticmethod
    def _variant(playlist: Path, media: MediaInfo, output: str) -> Variant:
        try:
            peak, average = bitrates(playlist)
            codecs = [avc_codec(media.video_profile, media.video_level)]
            if media.has_audio:
                codecs.append(aac_codec(media.audio_profile))
        except PlaylistError as err:
            raise JobError(TRANSCODE_FAILED, f"HLS output [{output}]: [{err}]") from err
        return Variant(playlist.name, peak, average, ",".join(codecs), media.width, media.height, media.frame_rate)

    def _capture(self, output: OutputSpec, folder: Path) -> None:
        capture, planned, info = output.capture, output.planned, self.info
        assert capture is not None
        folder.mkdir(parents=True)
        pattern = folder / f"image.%07d.{planned.extension}"
        args = frame_capture_args(self.source, pattern, input_spec=self.job.spec.input, capture=capture, info=info)
        self._ffmpeg(args, planned.path, CAPTURE_WEIGHT * info.duration_s)
        images = sorted(folder.iterdir())
        if not images:
            raise JobError(TRANSCODE_FAILED, f"Frame capture [{planned.path}] captured no frame")
        display = (
            (info.width, info.height) if self.job.spec.input.auto_rotate else (info.coded_width, info.coded_height)
        )
        width, height = output_size(capture.width, capture.height, display)
        uris = [frame_capture_path(planned, index) for index in range(len(images))]
        self.measured[planned.path] = OutputMeasure((uris[-1],), info.duration_ms, width, height)
        self.uploads += list(zip(images, uris, strict=True))
