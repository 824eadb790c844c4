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

Segment-parallel renditions (a message with `segment`, docs/CONTRACTS.md "Segment-parallel encoding"): a VIDEO part
encodes only its segment of the source, `[index x seconds, (index + 1) x seconds)`, with the same video settings
(so it starts on a keyframe of the 2 s grid and its GOPs fall where one continuous encode's would); the AUDIO part
encodes the whole source's audio once (of an MP4 it downloads only the index, the first seconds and the audio's
packets); each is stored under `outputs/{jobId}/segments/{rendition}/{attempt}/` and
announced as `Segment Completed`. The STITCH part (sent by the tracker when every part landed) joins the video
segments with the concat demuxer and muxes the audio, all `-c copy` with `+faststart`, then stores and announces the
rendition as an unsegmented encode does, and deletes the parts. A part stored by an earlier delivery is announced
again from its metadata.

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

import errno
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
from functions.contracts.fanout import EncodePlan, FanOutMessage, Segment, SourceObject, plan_for
from functions.contracts.jobs import Probe
from functions.contracts.media import DEMUXER_WHITELIST, SegmentPart
from functions.transcode.settings import TranscodeSettings

ENGINE = "lambda"
CONTENT_TYPE = "video/mp4"
TRANSCODE_FAILED = "TRANSCODE_FAILED"
OUTPUT_INVALID = "OUTPUT_INVALID"
OUTPUT_TOO_LARGE = "OUTPUT_TOO_LARGE"
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

    def download_source_window(
        self, source: SourceObject, destination: Path, *, start_seconds: float, seconds: float, format_name: str | None
    ) -> None:
        """What an encode of `[start_seconds, start_seconds + seconds)` reads of the source, at `destination` (the
        whole source, or a sparse copy holding only the index and those bytes); errors as `download_source`."""

    def download_source_audio(self, source: SourceObject, destination: Path, *, format_name: str | None) -> None:
        """What the audio part's encode reads of the source, at `destination` (the whole source, or a sparse copy
        holding only the index, the first seconds and the audio); errors as `download_source`."""

    def find_part(self, job_id: str, rendition: str, part: str, *, attempt: int) -> bool:
        """Whether an earlier delivery stored this part of a segment-parallel rendition (this attempt's)."""

    def upload_part(self, path: Path, job_id: str, rendition: str, part: str, *, attempt: int) -> int:
        """Store a part; its size in bytes."""

    def download_part(self, job_id: str, rendition: str, part: str, destination: Path, *, attempt: int) -> None:
        """Copy a stored part to `destination`; SourceMissing when it is not there."""

    def delete_parts(self, job_id: str, rendition: str, parts: list[str], *, attempt: int) -> None:
        """Delete the parts once the rendition is stored (best effort: the job's deletion removes what is left)."""


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


def _input(source: Path, probe: Probe, **seek: object) -> ffmpeg.nodes.FilterableStream:
    """The source, opened with only the file protocol and the demuxer ingest validated."""
    return ffmpeg.input(
        str(source), protocol_whitelist="file", format_whitelist=probe.formatName or DEMUXER_WHITELIST, **seek
    )


def _video(media: ffmpeg.nodes.FilterableStream, plan: EncodePlan) -> ffmpeg.nodes.FilterableStream:
    return media["v:0"].filter("scale", plan.width, plan.height).filter("setsar", 1)


def video_options(plan: EncodePlan, probe: Probe, encoder: EncoderSettings) -> dict[str, object]:
    """x264 settings of a rendition: the same for an unsegmented encode and for every segment of one."""
    keyint = keyframe_interval(probe.frameRate)
    return {
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


def audio_options(plan: EncodePlan) -> dict[str, object]:
    return {"c:a": "aac", "b:a": f"{plan.audioBitrateKbps}k", "ac": 2}


def _finish(stream: ffmpeg.nodes.OutputStream) -> ffmpeg.nodes.OutputStream:
    return stream.global_args("-nostdin", "-loglevel", "error", "-nostats", "-progress", "pipe:1").overwrite_output()


def build_transcode(
    source: Path, output: Path, *, plan: EncodePlan, probe: Probe, encoder: EncoderSettings
) -> ffmpeg.nodes.OutputStream:
    """The ffmpeg-python graph that turns `source` into the planned rendition at `output` (an MP4)."""
    media = _input(source, probe)
    video = _video(media, plan)
    if probe.hasAudio:
        streams = [video, media["a:0"]]
        sound: dict[str, object] = audio_options(plan)
    else:
        streams = [video]
        sound = {"an": None}
    container_options = {"movflags": "+faststart", "map_metadata": -1, "threads": encoder.threads}
    return _finish(
        ffmpeg.output(
            *streams,
            str(output),
            format="mp4",
            **video_options(plan, probe, encoder),
            **sound,
            **container_options,
        )
    )


def build_segment_video(
    source: Path, output: Path, *, plan: EncodePlan, probe: Probe, encoder: EncoderSettings, segment: Segment
) -> ffmpeg.nodes.OutputStream:
    """One video segment of the rendition, without audio: the source's frames from `start` for `seconds`.

    Input seeking (`-ss` before `-i`) decodes from the keyframe before `start` and drops the frames before it, so
    the segment starts exactly at `start`, on the 2 s grid, where x264 begins with a keyframe; `-t` ends it before the
    next segment's first frame. The first segment is not seeked at all (the source may start after 0).
    """
    seek: dict[str, object] = {"t": segment.seconds}
    if segment.index > 0:
        seek["ss"] = segment.start_seconds
    media = _input(source, probe, **seek)
    options = {"an": None, "map_metadata": -1, "threads": encoder.threads}
    return _finish(
        ffmpeg.output(_video(media, plan), str(output), format="mp4", **video_options(plan, probe, encoder), **options)
    )


def build_audio_part(source: Path, output: Path, *, plan: EncodePlan, probe: Probe) -> ffmpeg.nodes.OutputStream:
    """The whole source's audio as the rendition's AAC, in one run: no segment boundary can cut it."""
    media = _input(source, probe)
    return _finish(
        ffmpeg.output(media["a:0"], str(output), format="mp4", vn=None, map_metadata=-1, **audio_options(plan))
    )


def build_stitch(segment_list: Path, audio: Path | None, output: Path) -> ffmpeg.nodes.OutputStream:
    """The video segments (a concat demuxer list of files in the working directory) joined, and the audio muxed,
    without re-encoding; the index goes first (`+faststart`)."""
    video = ffmpeg.input(str(segment_list), format="concat", safe=0, protocol_whitelist="file")
    streams = [video["v:0"]]
    if audio is not None:
        streams.append(ffmpeg.input(str(audio), protocol_whitelist="file")["a:0"])
    return _finish(ffmpeg.output(*streams, str(output), format="mp4", c="copy", movflags="+faststart", map_metadata=-1))


def concat_list(paths: list[Path]) -> str:
    """The concat demuxer's list for `paths` (our own file names: no quoting beyond the format's)."""
    return "".join(f"file '{path.name}'\n" for path in paths)


def part_name(segment: Segment) -> str:
    """The part's file name under the rendition's segments prefix."""
    if segment.part == SegmentPart.AUDIO:
        return "audio.m4a"
    return f"video-{segment.index:05d}.mp4"


def stitch_parts(segment: Segment, *, has_audio: bool) -> list[Segment]:
    """Every part the stitch joins: the video segments in order, then the audio."""
    parts = [segment.model_copy(update={"part": SegmentPart.VIDEO, "index": i}) for i in range(segment.count)]
    if has_audio:
        parts.append(segment.model_copy(update={"part": SegmentPart.AUDIO, "index": 0}))
    return parts


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
        if message.segment is not None and message.segment.part != SegmentPart.STITCH:
            return self._segment_part(message, plan, message.segment, watch, remaining_ms)

        existing = self._store.find_output(message.jobId, plan.name, attempt=message.attempt)
        if existing is not None and (existing.width, existing.height) == (plan.width, plan.height):
            logger.info("rendition uploaded by an earlier delivery; announcing it again", extra={"key": existing.key})
            return self._units.reannounced(message, plan.name, existing)

        time_budget(remaining_ms, self._settings.reserve_seconds)
        if message.segment is not None:
            with work_dir(self._settings.work_root, WORK_DIR_PREFIX) as work:
                return self._stitch_in(work, message, plan, watch, remaining_ms)
        self._units.started(message, plan.name)
        with work_dir(self._settings.work_root, WORK_DIR_PREFIX) as work:
            return self._transcode_in(work, message, plan, watch, remaining_ms)

    def _segment_part(
        self,
        message: FanOutMessage,
        plan: EncodePlan,
        segment: Segment,
        watch: AttemptWatch,
        remaining_ms: Callable[[], int],
    ) -> UnitResult:
        """A video segment or the audio of a segment-parallel rendition: encoded, stored, `Segment Completed`."""
        name = part_name(segment)
        if self._store.find_part(message.jobId, plan.name, name, attempt=message.attempt):
            logger.info("part stored by an earlier delivery; announcing it again", extra={"part": name})
            self._units.segment_completed(message, plan.name, segment)
            return UnitResult(plan.name, Outcome.REANNOUNCED)
        time_budget(remaining_ms, self._settings.reserve_seconds)
        self._units.started(message, plan.name)
        with work_dir(self._settings.work_root, WORK_DIR_PREFIX) as work:
            source, output = work / "source", work / name
            unavailable = self._download_source(message, plan, source, segment)
            if unavailable is not None:
                return unavailable
            if segment.part == SegmentPart.AUDIO:
                graph = build_audio_part(source, output, plan=plan, probe=message.probe)
            else:
                graph = build_segment_video(
                    source, output, plan=plan, probe=message.probe, encoder=self._encoder, segment=segment
                )
            seconds = self._run(graph, work, watch, remaining_ms, lambda line: None)
            if isinstance(seconds, str):
                return self._fail(message, plan, TRANSCODE_FAILED, seconds)
            if segment.part == SegmentPart.VIDEO:
                problem = self._part_problem(output, plan)
                if problem:
                    return self._fail(message, plan, OUTPUT_INVALID, f"segment {segment.index}: {problem}")
            watch.check()
            size = self._store.upload_part(output, message.jobId, plan.name, name, attempt=message.attempt)
        self._units.segment_completed(message, plan.name, segment)
        logger.info("part stored", extra={"part": name, "bytes": size, "encodeSeconds": round(seconds, 3)})
        return UnitResult(plan.name, Outcome.COMPLETED, seconds=seconds)

    def _download_source(
        self, message: FanOutMessage, plan: EncodePlan, destination: Path, segment: Segment | None = None
    ) -> UnitResult | None:
        """The source in the working directory (for a part of a segment-parallel rendition, what its encode reads of
        it), or the rendition failed because it is gone or was replaced."""
        try:
            if segment is not None and segment.part == SegmentPart.VIDEO:
                self._store.download_source_window(
                    message.source,
                    destination,
                    start_seconds=segment.start_seconds,
                    seconds=segment.seconds,
                    format_name=message.probe.formatName,
                )
            elif segment is not None:
                self._store.download_source_audio(message.source, destination, format_name=message.probe.formatName)
            else:
                self._store.download_source(message.source, destination)
        except SourceReplaced as err:
            return self._fail(message, plan, SOURCE_REPLACED_CODE, str(err))
        except SourceMissing as err:
            return self._fail(message, plan, TRANSCODE_FAILED, str(err))
        return None

    def _part_problem(self, output: Path, plan: EncodePlan) -> str:
        try:
            media = self._tools.read_output(output)
        except OutputUnreadable as err:
            return f"the output cannot be read back: {err}"
        return "; ".join(output_problems(media, plan, expect_audio=False))

    def _stitch_in(
        self,
        work: Path,
        message: FanOutMessage,
        plan: EncodePlan,
        watch: AttemptWatch,
        remaining_ms: Callable[[], int],
    ) -> UnitResult:
        """Join the parts (downloaded from the outputs bucket) into the rendition, store it, announce it."""
        assert message.segment is not None
        parts = stitch_parts(message.segment, has_audio=message.probe.hasAudio)
        names = [part_name(part) for part in parts]
        try:
            for name in names:
                self._store.download_part(message.jobId, plan.name, name, work / name, attempt=message.attempt)
        except SourceMissing as err:
            return self._fail(message, plan, TRANSCODE_FAILED, f"a segment of the rendition is missing: {err}")
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            # The parts and the rendition must fit the function's /tmp together (README, "Limits").
            return self._fail(message, plan, OUTPUT_TOO_LARGE, "the rendition is too large for the function's storage")
        videos = [work / name for part, name in zip(parts, names, strict=True) if part.part == SegmentPart.VIDEO]
        segment_list = work / "segments.txt"
        segment_list.write_text(concat_list(videos), encoding="utf-8")
        audio = work / part_name(parts[-1]) if message.probe.hasAudio else None
        output = work / f"{plan.name}.mp4"
        seconds = self._run(build_stitch(segment_list, audio, output), work, watch, remaining_ms, lambda line: None)
        if isinstance(seconds, str):
            return self._fail(message, plan, TRANSCODE_FAILED, seconds)
        result = self._store_rendition(message, plan, output, watch, seconds)
        if result.outcome == Outcome.COMPLETED:
            self._store.delete_parts(message.jobId, plan.name, names, attempt=message.attempt)
        return result

    def _run(
        self,
        graph: ffmpeg.nodes.OutputStream,
        work: Path,
        watch: AttemptWatch,
        remaining_ms: Callable[[], int],
        on_progress: Callable[[str], None],
    ) -> float | str:
        """Run one ffmpeg graph within the time left, asking the gate as it goes: its wall seconds, or the reason it
        refused the input (the end of its stderr, without the working directory)."""
        timeout = time_budget(remaining_ms, self._settings.reserve_seconds)
        args = graph.compile(cmd=self._tools.ffmpeg_binary())
        logger.info("encoding", extra={"ffmpeg": args, "timeoutSeconds": round(timeout)})

        def on_progress_line(line: str) -> None:
            watch.check_if_due()  # WorkWithdrawn here stops the read, and ffmpeg is killed
            on_progress(line)

        started = time.monotonic()
        try:
            self._tools.run_ffmpeg(args, timeout_seconds=timeout, on_progress_line=on_progress_line)
        except FfmpegFailed as err:
            return err.stderr_tail.replace(f"{work}/", "")
        return time.monotonic() - started

    def _transcode_in(
        self,
        work: Path,
        message: FanOutMessage,
        plan: EncodePlan,
        watch: AttemptWatch,
        remaining_ms: Callable[[], int],
    ) -> UnitResult:
        source, output = work / "source", work / f"{plan.name}.mp4"
        unavailable = self._download_source(message, plan, source)
        if unavailable is not None:
            return unavailable

        milestones = ProgressMilestones(message.probe.durationMs)
        graph = build_transcode(source, output, plan=plan, probe=message.probe, encoder=self._encoder)
        seconds = self._run(
            graph, work, watch, remaining_ms, lambda line: self.announce_progress(message, plan, milestones.feed(line))
        )
        if isinstance(seconds, str):
            return self._fail(message, plan, TRANSCODE_FAILED, seconds)
        return self._store_rendition(message, plan, output, watch, seconds)

    def _store_rendition(
        self, message: FanOutMessage, plan: EncodePlan, output: Path, watch: AttemptWatch, encode_seconds: float
    ) -> UnitResult:
        """Read the rendition back, check it is what was planned, store it and announce it."""
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
