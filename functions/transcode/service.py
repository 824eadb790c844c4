"""Producing one rendition of one job: the steps between "a message arrived" and "Rendition Completed/Failed".

Failure policy:
- The message does not plan this function's rendition (ingest skipped it, e.g. no upscaling): dropped, nothing
  announced.
- The upload is no longer the object ingest validated (the still valid upload form was POSTed again: the IfMatch
  read answered 412): `Rendition Failed` SOURCE_REPLACED, "the upload was replaced after it was validated", as
  submit says it for a MediaConvert job; nothing is encoded.
- The input cannot be encoded (ffmpeg exits with an error, the source object is gone): `Rendition Failed`
  TRANSCODE_FAILED with the end of ffmpeg's stderr (without the working directory), or "the upload is no longer
  available"; return normally: a retry would fail the same way.
- The encode does not read back as the planned rendition: `Rendition Failed` OUTPUT_INVALID, nothing uploaded.
- Anything transient (S3 or EventBridge errors, ffmpeg killed at the deadline or by a signal, too little time
  left to start): raise, so SQS delivers the message again and, after the last try, parks it in the DLQ.

Work no longer wanted (the job was canceled, or runs another attempt: `functions/common/job_gate.py`) stops where
the gate is asked: before anything is read, every few seconds of the encode (ffmpeg is killed), before the rendition
is stored, and before a failure is announced. WorkWithdrawn is raised; the batch wiring drops the message.

Redelivery is cheap: when the output object already carries metadata saying this job's attempt produced this
rendition, the Completed event is announced again from that metadata without downloading or encoding anything. An
encode that was interrupted before its upload simply runs again and overwrites the same key; the tracker ignores
duplicates.

What the ffmpeg command (`build_transcode`) guarantees, and why:
- H.264 High profile (libx264, yuv420p) and AAC: what every browser and phone plays.
- `-movflags +faststart`: the index (moov) goes first, so playback starts before the download ends.
- 2-second closed GOPs: a keyframe exactly every 2 s (`-g`/`-keyint_min` = round(2 x fps), no scene-cut keyframes,
  and `-force_key_frames` on the 2 s grid for variable frame rates), so renditions can be segmented for HLS/DASH
  and switched between at the same instants.
- CRF with `-maxrate`/`-bufsize` (2 x maxrate): constant quality, capped per rendition.
- Scale to the planned display size and square pixels. ffmpeg autorotates while decoding, so a phone clip stored as
  landscape frames with a 90 degree display matrix comes out as upright portrait frames without one; the plan is
  already display-oriented.
- Explicit `-map` of the first video and (only when the source has one) the first audio stream, `-an` otherwise;
  `-map_metadata -1` so the uploader's tags (GPS position, device) are not republished.
- The input is opened with `-protocol_whitelist file` and only the demuxer ingest validated (`-format_whitelist`),
  so a crafted playlist cannot make ffmpeg read other files or the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import ffmpeg

from functions.common.ffmpeg_runner import FfmpegFailed
from functions.common.job_gate import AttemptWatch, JobGate
from functions.common.observability import logger
from functions.common.unit_worker import (
    EventNotPublished,
    EventSink,
    Outcome,
    OutputUnreadable,
    SourceMissing,
    SourceReplaced,
    SourceStore,
    StoredOutput,
    UnitEvents,
    UnitResult,
    time_budget,
    work_dir,
)
from functions.contracts.errors import SOURCE_REPLACED_CODE
from functions.contracts.fanout import EncodePlan, FanOutMessage, plan_for
from functions.contracts.jobs import Probe
from functions.contracts.media import DEMUXER_WHITELIST
from functions.transcode.settings import TranscodeSettings

ENGINE = "lambda"
CONTENT_TYPE = "video/mp4"
TRANSCODE_FAILED = "TRANSCODE_FAILED"
OUTPUT_INVALID = "OUTPUT_INVALID"
WORK_DIR_PREFIX = "transcode-"
GOP_SECONDS = 2
# When ingest could not read a frame rate, assume the common one; the forced keyframes keep the 2 s grid anyway.
FALLBACK_FRAME_RATE = 30.0


# --- what the ports exchange --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderSettings:
    """The knobs that are the same for every rendition of a deployment."""

    preset: str = "veryfast"
    """x264 preset."""
    crf: int = 23
    """x264 constant rate factor."""
    threads: int = 2
    """Encoder threads."""


@dataclass(frozen=True)
class OutputMedia:
    """What a player will see: display size (after any rotation), duration, size in bytes, codecs."""

    width: int
    height: int
    durationMs: int
    bytes: int
    videoCodec: str
    profile: str | None
    pixelFormat: str | None
    rotation: int
    audioCodec: str | None


# --- ports --------------------------------------------------------------------------------------------------------


class MediaStore(SourceStore, Protocol):
    """The uploads and outputs buckets, as the transcoder uses them."""

    def find_output(self, job_id: str, rendition: str, *, attempt: int) -> StoredOutput | None:
        """The rendition as an earlier delivery of the same message (the same attempt) uploaded it, if one did."""

    def upload_output(
        self, path: Path, job_id: str, rendition: str, media: OutputMedia, *, attempt: int
    ) -> StoredOutput: ...


class MediaTools(Protocol):
    """ffmpeg and ffprobe."""

    def ffmpeg_binary(self) -> str: ...

    def run_ffmpeg(self, args: list[str], *, timeout_seconds: float, on_progress_line: Callable[[str], None]) -> None:
        """Run the command; FfmpegFailed when ffmpeg refuses the input, FfmpegTimedOut/FfmpegKilled when stopped."""

    def read_output(self, path: Path) -> OutputMedia:
        """The encoded file as ffprobe sees it; OutputUnreadable when it is not a video."""


# --- the ffmpeg command -------------------------------------------------------------------------------------------


def keyframe_interval(frame_rate: float | None) -> int:
    """Frames per 2-second GOP at the source's frame rate (which the output keeps)."""
    fps = frame_rate if frame_rate and frame_rate > 0 else FALLBACK_FRAME_RATE
    return max(1, round(GOP_SECONDS * fps))


def build_transcode(
    source: Path, output: Path, *, plan: EncodePlan, probe: Probe, encoder: EncoderSettings
) -> ffmpeg.nodes.OutputStream:
    """The ffmpeg-python graph that turns `source` into the planned rendition at `output` (an MP4)."""
    media = ffmpeg.input(str(source), protocol_whitelist="file", format_whitelist=probe.formatName or DEMUXER_WHITELIST)
    video = media["v:0"].filter("scale", plan.width, plan.height).filter("setsar", 1)
    keyint = keyframe_interval(probe.frameRate)
    video_options = {
        "c:v": "libx264",
        "profile:v": "high",
        "pix_fmt": "yuv420p",
        "preset": encoder.preset,
        "crf": encoder.crf,
        "maxrate": f"{plan.maxVideoBitrateKbps}k",
        "bufsize": f"{2 * plan.maxVideoBitrateKbps}k",
        "g": keyint,
        "keyint_min": keyint,
        "sc_threshold": 0,
        "force_key_frames": f"expr:gte(t,n_forced*{GOP_SECONDS})",
    }
    if probe.hasAudio:
        streams = [video, media["a:0"]]
        audio_options: dict[str, object] = {"c:a": "aac", "b:a": f"{plan.audioBitrateKbps}k", "ac": 2}
    else:
        streams = [video]
        audio_options = {"an": None}
    container_options = {"movflags": "+faststart", "map_metadata": -1, "threads": encoder.threads}
    return (
        ffmpeg.output(*streams, str(output), format="mp4", **video_options, **audio_options, **container_options)
        .global_args("-nostdin", "-loglevel", "error", "-nostats", "-progress", "pipe:1")
        .overwrite_output()
    )


def transcode_args(
    ffmpeg_binary: str, source: Path, output: Path, *, plan: EncodePlan, probe: Probe, encoder: EncoderSettings
) -> list[str]:
    """The full command line (argv, no shell) for `build_transcode`."""
    return build_transcode(source, output, plan=plan, probe=probe, encoder=encoder).compile(cmd=ffmpeg_binary)


# --- progress -----------------------------------------------------------------------------------------------------


def out_time_us(line: str) -> int | None:
    """Microseconds of output written so far, from an `out_time_us=` line of ffmpeg's `-progress` output; None for
    any other line or `N/A`."""
    key, _, value = line.strip().partition("=")
    if key != "out_time_us":
        return None
    value = value.strip()
    return int(value) if value.lstrip("-").isdigit() else None


class ProgressMilestones:
    """Reports each multiple of `step` percent once as the encode passes it; never 0 or 100 (start and end are
    announced by the Progress 0 and Completed events)."""

    def __init__(self, duration_ms: int, step: int = 25) -> None:
        self._duration_us = duration_ms * 1000
        self._step = step
        self._reported = 0

    def feed(self, line: str) -> int | None:
        """The milestone this line crosses, if any."""
        written = out_time_us(line)
        if written is None or self._duration_us <= 0:
            return None
        percent = min(99, written * 100 // self._duration_us)
        milestone = percent // self._step * self._step
        if milestone <= self._reported:
            return None
        self._reported = milestone
        return milestone


# --- checking the output ------------------------------------------------------------------------------------------


def output_problems(media: OutputMedia, plan: EncodePlan, *, expect_audio: bool) -> list[str]:
    """Why the output is not the planned rendition; empty when it is."""
    problems = []
    if media.videoCodec != "h264":
        problems.append(f"video codec is {media.videoCodec}, expected h264")
    if (media.width, media.height) != (plan.width, plan.height):
        problems.append(f"display size is {media.width}x{media.height}, expected {plan.width}x{plan.height}")
    if media.durationMs <= 0:
        problems.append("duration is zero")
    if media.bytes <= 0:
        problems.append("file is empty")
    if expect_audio and media.audioCodec != "aac":
        problems.append(f"audio codec is {media.audioCodec}, expected aac")
    if not expect_audio and media.audioCodec is not None:
        problems.append(f"has a {media.audioCodec} audio stream, expected none")
    return problems


# --- the transcoder -----------------------------------------------------------------------------------------------


class RenditionTranscoder:
    """Encodes this function's rendition of a message with ffmpeg and announces the result on the bus."""

    def __init__(
        self, store: MediaStore, tools: MediaTools, events: EventSink, settings: TranscodeSettings, *, gate: JobGate
    ) -> None:
        self._store = store
        self._tools = tools
        self._units = UnitEvents(events, ENGINE)
        self._settings = settings
        self._gate = gate
        self._encoder = EncoderSettings(preset=settings.preset, crf=settings.crf, threads=settings.threads)

    def transcode(self, message: FanOutMessage, remaining_ms: Callable[[], int]) -> UnitResult:
        """The rendition made (or announced again), or failed; raises WorkWithdrawn when the job no longer wants it."""
        plan = plan_for(message, self._settings.rendition)
        if plan is None:
            logger.warning("message does not plan this rendition; dropped", extra={"planned": message.renditions})
            return UnitResult(self._settings.rendition.name, Outcome.DROPPED)
        logger.info("transcoding")
        watch = AttemptWatch(
            self._gate, message.jobId, message.attempt, every_seconds=self._settings.gate_check_seconds
        )
        watch.check()

        existing = self._store.find_output(message.jobId, plan.name, attempt=message.attempt)
        if existing is not None and (existing.width, existing.height) == (plan.width, plan.height):
            logger.info("rendition uploaded by an earlier delivery; announcing it again", extra={"key": existing.key})
            return self._units.reannounced(message, plan.name, existing)

        time_budget(remaining_ms, self._settings.reserve_seconds)
        self._units.started(message, plan.name)
        with work_dir(self._settings.work_root, WORK_DIR_PREFIX) as work:
            return self._transcode_in(work, message, plan, watch, remaining_ms)

    def _transcode_in(
        self,
        work: Path,
        message: FanOutMessage,
        plan: EncodePlan,
        watch: AttemptWatch,
        remaining_ms: Callable[[], int],
    ) -> UnitResult:
        source, output = work / "source", work / f"{plan.name}.mp4"
        try:
            self._store.download_source(message.source, source)
        except SourceReplaced as err:
            return self._fail(message, plan, SOURCE_REPLACED_CODE, str(err))
        except SourceMissing as err:
            return self._fail(message, plan, TRANSCODE_FAILED, str(err))

        timeout = time_budget(remaining_ms, self._settings.reserve_seconds)
        args = transcode_args(
            self._tools.ffmpeg_binary(), source, output, plan=plan, probe=message.probe, encoder=self._encoder
        )
        logger.info("encoding", extra={"ffmpeg": args, "timeoutSeconds": round(timeout)})
        milestones = ProgressMilestones(message.probe.durationMs)

        def on_progress_line(line: str) -> None:
            watch.check_if_due()  # WorkWithdrawn here stops the read, and ffmpeg is killed
            self.announce_progress(message, plan, milestones.feed(line))

        started = time.monotonic()
        try:
            self._tools.run_ffmpeg(args, timeout_seconds=timeout, on_progress_line=on_progress_line)
        except FfmpegFailed as err:
            return self._fail(message, plan, TRANSCODE_FAILED, err.stderr_tail.replace(f"{work}/", ""))
        encode_seconds = time.monotonic() - started

        try:
            media = self._tools.read_output(output)
        except OutputUnreadable as err:
            return self._fail(message, plan, OUTPUT_INVALID, f"the output cannot be read back: {err}")
        problems = output_problems(media, plan, expect_audio=message.probe.hasAudio)
        if problems:
            return self._fail(message, plan, OUTPUT_INVALID, "; ".join(problems))

        watch.check()
        stored = self._store.upload_output(output, message.jobId, plan.name, media, attempt=message.attempt)
        self._units.completed(message, plan.name, stored)
        logger.info(
            "rendition completed",
            extra={"key": stored.key, "bytes": stored.bytes, "encodeSeconds": round(encode_seconds, 3)},
        )
        return UnitResult(plan.name, Outcome.COMPLETED, stored=stored, seconds=encode_seconds)

    def announce_progress(self, message: FanOutMessage, plan: EncodePlan, percent: int | None) -> None:
        """Progress is advisory: a failed put is logged and the encode goes on (Completed is not optional)."""
        if percent is None:
            return
        try:
            self._units.progress(message, plan.name, percent)
        except EventNotPublished as err:
            logger.warning("progress event not published", extra={"percent": percent, "error": str(err)})

    def _fail(self, message: FanOutMessage, plan: EncodePlan, code: str, text: str) -> UnitResult:
        # A job deleted meanwhile lost its source too: its work is withdrawn, not failed.
        self._gate.check(message.jobId, message.attempt)
        logger.error("rendition failed", extra={"code": code, "reason": text})
        return self._units.failed(message, plan.name, code, text)
