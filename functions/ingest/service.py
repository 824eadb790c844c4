"""Ingest's use case over ports: an upload arrived for a job; accept it with a plan, or reject it.

Writes come before announcements, and every write is a conditional state transition:

1. AWAITING_UPLOAD -> VALIDATING (`begin_validation`). A no-op means the job is already past that point: the
   notification is a duplicate (S3 and SQS both deliver at least once) or a retry of this one.
2. HEAD, size checks, download, probe, limits, decode check, plan, engine. A broken rule raises `UploadRejected`.
3. VALIDATING -> PROCESSING with the plan, then the fan-out message to SNS, then `Job Accepted`;
   or VALIDATING -> REJECTED with the reason, then `Job Rejected`.

What a repeated notification does is decided by the job's status and by whether SQS is redelivering *this*
message (its receive count is above 1), which is what happens when an earlier attempt raised or timed out:

| job status   | first delivery (a duplicate event) | redelivery (an earlier attempt failed)              |
|--------------|------------------------------------|-----------------------------------------------------|
| VALIDATING   | nothing: another attempt is on it  | validate again (the attempt stopped mid-way)        |
| PROCESSING   | nothing                            | publish the fan-out and `Job Accepted` again        |
| REJECTED     | nothing                            | publish `Job Rejected` again                        |
| anything else| nothing                            | nothing                                             |

So a duplicate S3 event never publishes twice, and a publish that failed after its write is made good by the
redelivery. The price is at-least-once: an attempt that published and then timed out publishes again on
redelivery, which consumers must (and, given SNS and SQS, already have to) tolerate. Two attempts validating at
once are harmless: the conditional write lets one decide, and the other stops without publishing.

The rules themselves are pure and live here too: the caps an upload must fit, what ffprobe's output means (never
the upload's name or Content-Type), which renditions a source gets, and which engine encodes it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Protocol

from functions.common import job_state
from functions.common.jobs_table import JobNotFound
from functions.common.observability import logger
from functions.common.renditions import Rendition
from functions.contracts.events import DetailType, EventDetail, JobAccepted, JobOutcome
from functions.contracts.fanout import FanOutMessage
from functions.contracts.jobs import JobRecord, JobStatus, Probe, RenditionStatus
from functions.contracts.media import ACCEPTED_DEMUXERS, MediaType

# --------------------------------------------------------------------------------------------------------------
# Rejections: the codes of docs/CONTRACTS.md ("Error codes on jobs") and the error that carries one
# --------------------------------------------------------------------------------------------------------------


class RejectionCode(StrEnum):
    EMPTY_UPLOAD = "EMPTY_UPLOAD"
    UPLOAD_TOO_LARGE = "UPLOAD_TOO_LARGE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    CORRUPT_MEDIA = "CORRUPT_MEDIA"
    NO_VIDEO_STREAM = "NO_VIDEO_STREAM"
    DURATION_TOO_LONG = "DURATION_TOO_LONG"
    RESOLUTION_TOO_HIGH = "RESOLUTION_TOO_HIGH"
    UPLOAD_MISSING = "UPLOAD_MISSING"


class UploadRejected(Exception):
    """The upload breaks a rule. Final: the job is REJECTED with this code and message, and nothing is retried.

    `message` is shown to the client on the job, so it says what is wrong in plain words and never names
    local paths or internals; `detail` is for the logs only.
    """

    def __init__(self, code: RejectionCode, message: str, *, probe: Probe | None = None, detail: str = ""):
        super().__init__(f"{code}: {message}" + (f" [{detail}]" if detail else ""))
        self.code = code
        self.message = message
        self.probe = probe
        self.detail = detail


@dataclass(frozen=True)
class Upload:
    """An upload that arrived for a job."""

    job_id: str
    bucket: str
    key: str
    """Decoded."""
    etag: str | None
    """The ETag of the object the notification is about; the object is read only while it still has it."""


# --------------------------------------------------------------------------------------------------------------
# Limits: pure checks on the object size and on the probe
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Caps from stack config; each one rejects with its own code."""

    max_upload_bytes: int
    """Largest object accepted (the presigned POST enforces it too; this is the second check)."""
    max_duration_seconds: int
    """Longest source accepted."""
    max_width: int
    """Largest frame width, for the frame in the orientation the limit box is given in (see `check_media`)."""
    max_height: int
    """Largest frame height, likewise."""


def check_size(size_bytes: int, limits: Limits) -> None:
    """Before anything is downloaded: an empty object or one over the cap is rejected."""
    if size_bytes <= 0:
        raise UploadRejected(RejectionCode.EMPTY_UPLOAD, "the uploaded file is empty")
    if size_bytes > limits.max_upload_bytes:
        raise UploadRejected(
            RejectionCode.UPLOAD_TOO_LARGE,
            f"the uploaded file is {size_bytes} bytes; the limit is {limits.max_upload_bytes} bytes",
        )


def check_media(probe: Probe, limits: Limits) -> None:
    """Duration and resolution caps, on the probe (which the rejection keeps, so the client sees what was read).

    Resolution is checked without regard to orientation: the frame's long side against the longer cap and its
    short side against the shorter one. A 1080x1920 portrait phone clip fits a 1920x1080 limit; a frame
    whose area or long side is beyond the box does not.
    """
    if probe.durationMs > limits.max_duration_seconds * 1000:
        raise UploadRejected(
            RejectionCode.DURATION_TOO_LONG,
            f"the video is {probe.durationMs / 1000:.1f} s long; the limit is {limits.max_duration_seconds} s",
            probe=probe,
        )
    long_side, short_side = sorted((probe.width or 0, probe.height or 0), reverse=True)
    long_cap, short_cap = sorted((limits.max_width, limits.max_height), reverse=True)
    if long_side > long_cap or short_side > short_cap:
        raise UploadRejected(
            RejectionCode.RESOLUTION_TOO_HIGH,
            f"the video is {probe.width}x{probe.height}; the limit is {limits.max_width}x{limits.max_height}",
            probe=probe,
        )


# --------------------------------------------------------------------------------------------------------------
# What ffprobe's output means
# --------------------------------------------------------------------------------------------------------------

TAIL_SECONDS = 2.0
"""How much of the end of the video stream the decode check decodes (from the keyframe before it)."""
FRAME_TIME_FIELDS = ("best_effort_timestamp_time", "pts_time", "pkt_dts_time")
"""A decoded frame's time, best first: the decoder's best guess, else the presentation or decoding timestamp."""

# ffprobe at debug level names the demuxer that recognised the content, even when it then fails to read it.
_DETECTED = re.compile(r"Format (?P<name>\S+) probed with size=\d+ and score=(?P<score>\d+)")
_NOT_ON_WHITELIST = "not on whitelist"
# libavformat's AVPROBE_SCORE_RETRY: at or below it a match is a guess ("misdetection possible").
_CONFIDENT_SCORE = 25


@dataclass(frozen=True)
class ProbedMedia:
    """The job's probe plus what the decode check needs to find the video stream and where it should end."""

    probe: Probe
    """docs/CONTRACTS.md "Probe": durationMs, width, height (display), codedWidth, codedHeight, rotation, ..."""
    video_stream_index: int
    """Index of the video stream in the file (attached cover pictures are not video)."""
    video_end_seconds: float
    """Timestamp the video stream's last frame should reach: its start time plus its duration."""


def classify_probe_failure(stderr: str) -> UploadRejected:
    """UNSUPPORTED_FORMAT unless an allowed demuxer confidently recognised the content, then CORRUPT_MEDIA."""
    errors = error_lines(stderr)
    detected = _DETECTED.search(stderr)
    name = detected.group("name") if detected else None
    if _NOT_ON_WHITELIST in stderr:
        return UploadRejected(
            RejectionCode.UNSUPPORTED_FORMAT,
            f"the file is in the {name} format, which is not an accepted video container"
            if name
            else "the file's format is not an accepted video container",
            detail=errors,
        )
    if detected and int(detected.group("score")) > _CONFIDENT_SCORE and name in ACCEPTED_DEMUXERS:
        return UploadRejected(
            RejectionCode.CORRUPT_MEDIA, "the file looks like video but is truncated or damaged", detail=errors
        )
    return UploadRejected(
        RejectionCode.UNSUPPORTED_FORMAT, "the file is not a video in a supported format", detail=errors
    )


def summarize(raw: dict[str, Any], *, size_bytes: int) -> ProbedMedia:
    """The job's probe from ffprobe's JSON. Pure; rejects what cannot be transcoded.

    - `width`/`height` are the display size: the coded size scaled by the sample aspect ratio, then swapped
      when the rotation is 90 or 270. `codedWidth`/`codedHeight` are the frame as stored.
    - `rotation` is in degrees counter-clockwise, as ffprobe reports the display matrix (and as
      `ffmpeg -display_rotation` writes it), normalised to 0, 90, 180 or 270. A legacy `rotate` tag
      (clockwise, as old phones wrote it) is converted to the same convention.
    - The first video stream that is not an attached picture (cover art) is the video.
    """
    fmt = raw.get("format") or {}
    format_name = str(fmt.get("format_name") or "")
    if format_name not in ACCEPTED_DEMUXERS:
        raise UploadRejected(
            RejectionCode.UNSUPPORTED_FORMAT,
            f"the file is {format_name or 'an unknown format'}, which is not an accepted video container",
        )
    streams = [s for s in raw.get("streams") or [] if isinstance(s, dict)]
    video = next((s for s in streams if _is_video(s)), None)
    if video is None:
        raise UploadRejected(RejectionCode.NO_VIDEO_STREAM, "the file has no video stream")
    if not video.get("codec_name"):
        raise UploadRejected(RejectionCode.UNSUPPORTED_FORMAT, "the video stream's codec is not supported")
    coded_width, coded_height = _int_or_none(video.get("width")), _int_or_none(video.get("height"))
    if not coded_width or not coded_height or coded_width < 0 or coded_height < 0:
        raise UploadRejected(RejectionCode.CORRUPT_MEDIA, "the video stream has no frame size")
    duration = _seconds(fmt.get("duration")) or _seconds(video.get("duration"))
    if duration is None:
        raise UploadRejected(RejectionCode.CORRUPT_MEDIA, "the video has no readable duration")
    rotation = _rotation(video)
    display_width = _display_width(coded_width, video.get("sample_aspect_ratio"))
    width, height = (coded_height, display_width) if rotation in (90, 270) else (display_width, coded_height)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    probe = Probe(
        durationMs=round(duration * 1000),
        width=width,
        height=height,
        codedWidth=coded_width,
        codedHeight=coded_height,
        rotation=rotation,
        videoCodec=str(video["codec_name"]),
        audioCodec=str(audio["codec_name"]) if audio and audio.get("codec_name") else None,
        hasAudio=audio is not None,
        frameRate=_frame_rate(video),
        formatName=format_name,
        bitRate=_int_or_none(fmt.get("bit_rate")),
        sizeBytes=size_bytes,
    )
    start = _float_or_none(video.get("start_time"))
    if start is None:
        start = _float_or_none(fmt.get("start_time")) or 0.0
    video_duration = _seconds(video.get("duration")) or duration
    return ProbedMedia(probe=probe, video_stream_index=int(video["index"]), video_end_seconds=start + video_duration)


def tail_start_seconds(media: ProbedMedia) -> float:
    """Where the decode check starts: `TAIL_SECONDS` before the end the header promises."""
    return max(0.0, media.video_end_seconds - TAIL_SECONDS)


def last_frame_seconds(probe_output: str) -> float | None:
    """The latest frame timestamp in the tail decode's JSON, or None when no frame has one."""
    try:
        frames = json.loads(probe_output or "{}").get("frames") or []
    except (json.JSONDecodeError, AttributeError):
        return None
    times = []
    for frame in frames:
        if isinstance(frame, dict):
            found = (_float_or_none(frame.get(field)) for field in FRAME_TIME_FIELDS)
            times.append(next((value for value in found if value is not None), None))
    return max((value for value in times if value is not None), default=None)


def check_reaches_end(media: ProbedMedia, last_frame: float, *, detail: str) -> None:
    """Reject a video whose frames stop well before the end its header promises (a truncated or cut upload).

    The last frame must reach the end less a slack of a quarter of the duration, at most one second, plus one
    frame interval. (A video stream that legitimately stops more than that before a longer audio track in a
    container without per-stream durations, e.g. Matroska, is rejected too; uploads like that are rare and would
    transcode to a frozen picture anyway.)
    """
    end = media.video_end_seconds
    duration = media.probe.durationMs / 1000
    frame_rate = media.probe.frameRate or 0.0
    reached = last_frame + (1 / frame_rate if frame_rate > 0 else 0.0)
    if reached < end - min(1.0, duration / 4):
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA,
            f"the video is truncated: its frames stop at {reached:.1f} s of {end:.1f} s",
            probe=media.probe,
            detail=detail,
        )


def error_lines(stderr: str, *, keep: int = 5) -> str:
    """The last few error-level lines of an ffmpeg log, for the logs (never for the client)."""
    lines = [line for line in stderr.splitlines() if "[error]" in line or "[fatal]" in line or "[warning]" in line]
    return "\n".join((lines or stderr.splitlines())[-keep:])


def _is_video(stream: dict[str, Any]) -> bool:
    disposition = stream.get("disposition") or {}
    return stream.get("codec_type") == "video" and not disposition.get("attached_pic")


def _rotation(video: dict[str, Any]) -> int:
    for side_data in video.get("side_data_list") or []:
        if isinstance(side_data, dict) and "rotation" in side_data:
            return _quarter_turns(_float_or_none(side_data["rotation"]) or 0.0)
    legacy = _float_or_none((video.get("tags") or {}).get("rotate"))
    return _quarter_turns(-legacy) if legacy is not None else 0


def _quarter_turns(degrees: float) -> int:
    return (round(degrees / 90) * 90) % 360


def _display_width(coded_width: int, sample_aspect_ratio: Any) -> int:
    """Anamorphic sources (e.g. DV's 720x480 at 8:9) are displayed wider or narrower than they are stored."""
    ratio = _ratio(sample_aspect_ratio, separator=":")
    if ratio is None or math.isclose(ratio, 1.0):
        return coded_width
    return max(1, round(coded_width * ratio))


def _frame_rate(video: dict[str, Any]) -> float:
    for key in ("avg_frame_rate", "r_frame_rate"):
        rate = _ratio(video.get(key), separator="/")
        if rate is not None:
            return round(rate, 3)
    return 0.0


def _ratio(value: Any, *, separator: str) -> float | None:
    if not isinstance(value, str) or separator not in value:
        return None
    numerator, denominator = (_float_or_none(part) for part in value.split(separator, 1))
    if not numerator or not denominator or numerator < 0 or denominator < 0:
        return None
    return numerator / denominator


def _seconds(value: Any) -> float | None:
    """A positive duration in seconds, or None."""
    seconds = _float_or_none(value)
    return seconds if seconds is not None and seconds > 0 else None


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int_or_none(value: Any) -> int | None:
    number = _float_or_none(value)
    return int(number) if number is not None else None


# --------------------------------------------------------------------------------------------------------------
# Rendition planning: a pure function of the display frame and the ladder
# --------------------------------------------------------------------------------------------------------------


def plan_renditions(width: int, height: int, ladder: Sequence[Rendition]) -> list[dict[str, Any]]:
    """Plan every rendition of the ladder for a source displayed at `width` x `height` (after rotation).

    A rendition's height is the target for the *short* side of the display frame, so portrait and rotated sources
    keep their orientation: a 1080x1920 portrait source at 720p becomes 720x1280. The long side follows the display
    aspect ratio, rounded to the nearest even number (H.264 4:2:0 codes even sizes only).

    A rendition taller than the source's short side is SKIPPED ("source is 480p; no upscaling") with no size.

    When that would skip every rendition (a source smaller than the whole ladder), the lowest rendition is kept
    instead and encoded at the source's own short side, rounded down to even (a 640x480 source becomes a 640x480
    "720p" rendition): a valid upload always produces at least one output. Its `reason` says so.

    Items: `{name, status: QUEUED|SKIPPED, width, height, maxVideoBitrateKbps, audioBitrateKbps, reason?}`, in
    ladder order.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"display size must be positive, got {width}x{height}")
    short_side = min(width, height)
    plan = [_planned(rendition, width, height) for rendition in ladder]
    if plan and all(item["status"] == RenditionStatus.SKIPPED for item in plan):
        lowest = min(range(len(ladder)), key=lambda i: ladder[i].height)
        native = max(2, short_side - short_side % 2)
        plan[lowest] = _queued(ladder[lowest], width, height, native)
        plan[lowest]["reason"] = (
            f"source is {short_side}p, below every rendition; encoded at {native}p instead of {ladder[lowest].height}p"
        )
    return plan


def queued_names(plan: Sequence[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in plan if item["status"] == RenditionStatus.QUEUED]


def _planned(rendition: Rendition, width: int, height: int) -> dict[str, Any]:
    short_side = min(width, height)
    if rendition.height > short_side:
        return {
            "name": rendition.name,
            "status": RenditionStatus.SKIPPED.value,
            "width": None,
            "height": None,
            "maxVideoBitrateKbps": rendition.maxVideoBitrateKbps,
            "audioBitrateKbps": rendition.audioBitrateKbps,
            "reason": f"source is {short_side}p; no upscaling",
        }
    return _queued(rendition, width, height, rendition.height)


def _queued(rendition: Rendition, width: int, height: int, short_target: int) -> dict[str, Any]:
    long_target = _even(short_target * max(width, height) / min(width, height))
    target_width, target_height = (long_target, short_target) if width >= height else (short_target, long_target)
    return {
        "name": rendition.name,
        "status": RenditionStatus.QUEUED.value,
        "width": target_width,
        "height": target_height,
        "maxVideoBitrateKbps": rendition.maxVideoBitrateKbps,
        "audioBitrateKbps": rendition.audioBitrateKbps,
    }


def _even(value: float) -> int:
    """Nearest even integer (halves round up), at least 2."""
    return max(2, math.floor(value / 2 + 0.5) * 2)


# --------------------------------------------------------------------------------------------------------------
# Which engine encodes a job: ffmpeg in Lambda for inputs that fit one run, MediaConvert for the rest
#
# Two rules, both pure (README, "Engines: Lambda or MediaConvert"):
# - the stack's `engine` setting: `lambda` or `mediaconvert` fixed, or `auto`, which sends sources longer than
#   `mediaconvertThresholdSeconds` to MediaConvert (the threshold comes from the README's cost model);
# - a hard ceiling: a transcode function stops at its timeout, so a job whose estimated encode does not fit that
#   budget never goes to Lambda. `auto` sends it to MediaConvert; a stack fixed on `lambda` rejects it
#   (DURATION_TOO_LONG), because the operator chose not to pay for MediaConvert and a job that cannot finish would
#   only fail at its deadline.
#
# The estimate: a transcode decodes every source frame, scales it and encodes it, so its work grows with the
# source's pixels plus the rendition's. A rendition takes `duration x frame rate x (source + output megapixels) /
# throughput` seconds, where the throughput is what the function's vCPUs get through per second
# (bench/encode_speed.py measures it per CPU; Lambda gives one vCPU per 1,769 MB). Renditions are encoded in
# parallel by separate functions, so the job's estimate is that of its biggest QUEUED rendition.
# --------------------------------------------------------------------------------------------------------------

# Lambda allocates CPU in proportion to memory: one vCPU per 1,769 MB (so just under six at the 10,240 MB maximum).
LAMBDA_MB_PER_VCPU = 1769
# The measured per-CPU throughput is halved before it becomes the config default: Lambda's vCPUs are slower than the
# bench machine's and real sources (noise, motion, 10-bit) are harder to encode than a test pattern.
SAFETY_FACTOR = 0.5
FALLBACK_FRAME_RATE = 30.0


class Engine(StrEnum):
    LAMBDA = "lambda"
    MEDIACONVERT = "mediaconvert"


class EngineSetting(StrEnum):
    """The stack's `engine` config: a fixed engine, or `auto` to choose per job by duration."""

    AUTO = "auto"
    LAMBDA = "lambda"
    MEDIACONVERT = "mediaconvert"


@dataclass(frozen=True)
class LambdaCapacity:
    """What one transcode function can encode before its timeout."""

    megapixels_per_second: float
    """Output megapixels the function encodes per wall second (per-vCPU throughput x its vCPUs)."""
    budget_seconds: float
    """Seconds ffmpeg may run: the function's timeout less what the transcoder keeps back to upload and announce."""


def lambda_vcpus(memory_mb: int) -> float:
    """vCPUs Lambda gives a function of `memory_mb`."""
    return memory_mb / LAMBDA_MB_PER_VCPU


def lambda_capacity(
    *, megapixels_per_vcpu_second: float, memory_mb: int, timeout_seconds: int, reserve_seconds: float
) -> LambdaCapacity:
    return LambdaCapacity(
        megapixels_per_second=megapixels_per_vcpu_second * lambda_vcpus(memory_mb),
        budget_seconds=timeout_seconds - reserve_seconds,
    )


def estimated_encode_seconds(
    *,
    duration_ms: int,
    frame_rate: float | None,
    source_pixels: int,
    planned: Iterable[dict[str, Any]],
    megapixels_per_second: float,
) -> float:
    """Wall seconds the slowest QUEUED rendition needs in Lambda; 0 when nothing is queued.

    `source_pixels` is the coded frame (what the decoder works on), `planned` the rendition plan.
    """
    fps = frame_rate if frame_rate and frame_rate > 0 else FALLBACK_FRAME_RATE
    outputs = [item["width"] * item["height"] for item in planned if item["status"] == "QUEUED"]
    if not outputs:
        return 0.0
    return duration_ms / 1000 * fps * (source_pixels + max(outputs)) / 1e6 / megapixels_per_second


def choose_engine(setting: EngineSetting, *, duration_ms: int, threshold_seconds: int) -> Engine:
    """A fixed setting wins; `auto` sends sources longer than the threshold to MediaConvert (equal stays in Lambda)."""
    if setting is EngineSetting.AUTO:
        return Engine.MEDIACONVERT if duration_ms > threshold_seconds * 1000 else Engine.LAMBDA
    return Engine(setting.value)


def route(
    setting: EngineSetting,
    *,
    duration_ms: int,
    threshold_seconds: int,
    estimate_seconds: float,
    capacity: LambdaCapacity,
    probe: Probe | None = None,
) -> Engine:
    """`choose_engine`, then the ceiling: a job that would not fit a transcode function's budget never goes to Lambda.

    Raises `UploadRejected` (DURATION_TOO_LONG) when the stack is fixed on `lambda` and the job does not fit.
    """
    engine = choose_engine(setting, duration_ms=duration_ms, threshold_seconds=threshold_seconds)
    if engine is Engine.MEDIACONVERT or estimate_seconds <= capacity.budget_seconds:
        return engine
    if setting is EngineSetting.AUTO:
        return Engine.MEDIACONVERT
    raise UploadRejected(
        RejectionCode.DURATION_TOO_LONG,
        f"the video would take about {estimate_seconds:.0f} s to encode; this service encodes at most "
        f"{capacity.budget_seconds:.0f} s of work per rendition",
        probe=probe,
        detail=f"engine=lambda, estimate {estimate_seconds:.1f} s > budget {capacity.budget_seconds:.0f} s",
    )


# --------------------------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    size: int
    etag: str
    """Quoted, as S3 returns it and as `If-Match` wants it."""


class Rules(Protocol):
    """What an upload must meet and how it is routed (`IngestSettings` is one)."""

    @property
    def limits(self) -> Limits: ...
    @property
    def renditions(self) -> tuple[Rendition, ...]: ...
    @property
    def engine(self) -> EngineSetting: ...
    @property
    def mediaconvert_threshold_seconds(self) -> int: ...
    @property
    def processing_deadline_seconds(self) -> int: ...
    @property
    def lambda_capacity(self) -> LambdaCapacity: ...


class JobStore(Protocol):
    def get(self, job_id: str) -> JobRecord:
        """The job; raises `JobNotFound`."""
        ...

    def change(
        self, job_id: str, transition: Callable[[JobRecord], JobRecord | None]
    ) -> tuple[JobRecord, JobRecord] | None:
        """Apply a pure transition with a conditional write; (before, after), or None for a no-op."""
        ...


class SourceStore(Protocol):
    def head(self, bucket: str, key: str, *, etag: str | None) -> StoredObject:
        """Size and ETag of the upload; with `etag`, only that version. Raises UPLOAD_MISSING when it is gone."""
        ...

    def download(self, bucket: str, key: str, stored: StoredObject, destination: Path, *, max_bytes: int) -> int:
        """Copy the version HEAD saw to `destination`, never more than `max_bytes`; returns the bytes written."""
        ...


class MediaInspector(Protocol):
    def probe(self, path: Path, *, size_bytes: int) -> ProbedMedia:
        """What the local copy is; raises `UploadRejected` when it is not an accepted video."""
        ...

    def check_decodes_to_end(self, path: Path, media: ProbedMedia) -> None:
        """Raises `UploadRejected` (CORRUPT_MEDIA) when the video's frames stop before its header says."""
        ...


class FanOutTopic(Protocol):
    def publish(self, body: str, attributes: dict[str, dict[str, str]]) -> str:
        """Publish the fan-out message; returns its message ID. Errors propagate (the record is retried)."""
        ...


class EventSink(Protocol):
    def publish(self, detail_type: DetailType, detail: EventDetail) -> None: ...


# --------------------------------------------------------------------------------------------------------------
# The use case
# --------------------------------------------------------------------------------------------------------------


class Outcome(StrEnum):
    ACCEPTED = "ACCEPTED"
    """Validated: PROCESSING, fan-out published, `Job Accepted` put."""
    REJECTED = "REJECTED"
    """A rule was broken: REJECTED, `Job Rejected` put."""
    REANNOUNCED = "REANNOUNCED"
    """Redelivery: what an earlier attempt wrote was published again."""
    DUPLICATE = "DUPLICATE"
    """The job was already past this point; nothing done."""
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    """No such job (never created, or deleted after retention); nothing done."""


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    status: str | None = None
    """The job's status afterwards, when known."""
    code: str | None = None
    """The rejection code, for REJECTED."""
    engine: str | None = None
    renditions: tuple[str, ...] = ()
    """QUEUED renditions, for ACCEPTED."""
    duration_ms: int | None = None


@dataclass(frozen=True)
class Inspection:
    """A valid upload: what it is, and what will be made of it."""

    probe: Probe
    planned: list[dict[str, Any]]
    engine: str


class UploadIngest:
    def __init__(
        self,
        *,
        rules: Rules,
        jobs: JobStore,
        store: SourceStore,
        media: MediaInspector,
        fanout: FanOutTopic,
        events: EventSink,
        clock: Callable[[], int],
        scratch_dir: Path | None = None,
    ) -> None:
        self._rules = rules
        self._jobs = jobs
        self._store = store
        self._media = media
        self._fanout = fanout
        self._events = events
        self._clock = clock
        self._scratch_dir = scratch_dir

    def ingest(self, upload: Upload, *, redelivered: bool) -> IngestResult:
        """Handle one upload notification; raises only for infrastructure errors (the message is then retried)."""
        now = self._clock()
        deadline = now + self._rules.processing_deadline_seconds * 1000
        try:
            moved = self._jobs.change(
                upload.job_id, lambda job: job_state.begin_validation(job, now=now, deadline=deadline)
            )
            if moved is not None:
                return self._validate(upload)
            job = self._jobs.get(upload.job_id)
        except JobNotFound:
            logger.warning("upload for a job that does not exist; dropped")
            return IngestResult(Outcome.JOB_NOT_FOUND)
        return self._repeat(job, upload, redelivered=redelivered)

    def _repeat(self, job: JobRecord, upload: Upload, *, redelivered: bool) -> IngestResult:
        status = job.status
        if not redelivered:
            logger.info(
                "duplicate upload notification; the job is already past AWAITING_UPLOAD", extra={"status": status}
            )
            return IngestResult(Outcome.DUPLICATE, status=status)
        if status == JobStatus.VALIDATING:
            logger.warning("redelivered while VALIDATING: an earlier attempt stopped mid-way; validating again")
            return self._validate(upload)
        if status == JobStatus.PROCESSING:
            logger.warning("redelivered while PROCESSING: publishing the fan-out an earlier attempt may have missed")
            self._announce_acceptance(job, upload)
            return IngestResult(Outcome.REANNOUNCED, status=status, engine=job.engine)
        if status == JobStatus.REJECTED:
            logger.warning("redelivered while REJECTED: announcing the rejection an earlier attempt may have missed")
            self._events.publish(DetailType.JOB_REJECTED, JobOutcome.of(job))
            return IngestResult(Outcome.REANNOUNCED, status=status, code=job.error.code if job.error else None)
        logger.info("redelivered, but the job has moved on; nothing to do", extra={"status": status})
        return IngestResult(Outcome.DUPLICATE, status=status)

    def _validate(self, upload: Upload) -> IngestResult:
        try:
            inspection = self._inspect(upload)
        except UploadRejected as rejection:
            return self._reject(upload, rejection)
        now = self._clock()
        moved = self._jobs.change(
            upload.job_id,
            lambda job: job_state.begin_processing(
                job,
                media_type=MediaType.VIDEO,
                engine=inspection.engine,
                probe=inspection.probe,
                planned=inspection.planned,
                now=now,
            ),
        )
        if moved is None:
            logger.info("another attempt decided this job first; not publishing")
            return IngestResult(Outcome.DUPLICATE)
        job = moved[1]
        self._announce_acceptance(job, upload)
        queued = tuple(queued_names(inspection.planned))
        logger.info("upload accepted", extra={"engine": inspection.engine, "renditions": list(queued)})
        return IngestResult(
            Outcome.ACCEPTED,
            status=job.status,
            engine=inspection.engine,
            renditions=queued,
            duration_ms=inspection.probe.durationMs,
        )

    def _inspect(self, upload: Upload) -> Inspection:
        """Everything that can reject an upload, cheapest first; raises `UploadRejected`."""
        rules = self._rules
        stored = self._store.head(upload.bucket, upload.key, etag=upload.etag)
        check_size(stored.size, rules.limits)
        with TemporaryDirectory(prefix="ingest-", dir=self._scratch_dir) as workdir:
            local = Path(workdir) / "source"  # no extension: nothing may guess the type from a name
            self._store.download(upload.bucket, upload.key, stored, local, max_bytes=rules.limits.max_upload_bytes)
            media = self._media.probe(local, size_bytes=stored.size)
            check_media(media.probe, rules.limits)
            self._media.check_decodes_to_end(local, media)
        probe = media.probe
        width, height = probe.width or 0, probe.height or 0
        planned = plan_renditions(width, height, rules.renditions)
        capacity = rules.lambda_capacity
        estimate = estimated_encode_seconds(
            duration_ms=probe.durationMs,
            frame_rate=probe.frameRate,
            source_pixels=(probe.codedWidth or width) * (probe.codedHeight or height),
            planned=planned,
            megapixels_per_second=capacity.megapixels_per_second,
        )
        engine = route(
            rules.engine,
            duration_ms=probe.durationMs,
            threshold_seconds=rules.mediaconvert_threshold_seconds,
            estimate_seconds=estimate,
            capacity=capacity,
            probe=probe,
        )
        logger.info(
            "engine chosen",
            extra={
                "engine": engine.value,
                "lambdaEstimateSeconds": round(estimate, 1),
                "lambdaBudgetSeconds": capacity.budget_seconds,
            },
        )
        return Inspection(probe=probe, planned=planned, engine=engine.value)

    def _reject(self, upload: Upload, rejection: UploadRejected) -> IngestResult:
        logger.info(
            "upload rejected",
            extra={"code": rejection.code.value, "reason": rejection.message, "detail": rejection.detail},
        )
        now = self._clock()
        moved = self._jobs.change(
            upload.job_id,
            lambda job: job_state.reject(
                job, code=rejection.code.value, message=rejection.message, now=now, probe=rejection.probe
            ),
        )
        if moved is None:
            logger.info("another attempt decided this job first; not announcing the rejection")
            return IngestResult(Outcome.DUPLICATE)
        rejected = moved[1]
        self._events.publish(DetailType.JOB_REJECTED, JobOutcome.of(rejected))
        return IngestResult(Outcome.REJECTED, status=rejected.status, code=rejection.code.value)

    def _announce_acceptance(self, job: JobRecord, upload: Upload) -> None:
        """The fan-out message, built from the job as written (a retried publish sends the same plan), then the event.

        `source.etag` (beyond the contract's bucket and key) names the exact object that was validated, so a
        consumer can read it with `If-Match` and never transcode a file re-posted after validation.
        """
        message = FanOutMessage.for_job(job, bucket=upload.bucket, key=upload.key, etag=_unquoted(upload.etag))
        attributes = message.attributes(job.mediaType)
        message_id = self._fanout.publish(message.body(), attributes)
        self._events.publish(DetailType.JOB_ACCEPTED, JobAccepted.of(job))
        logger.info("fan-out published", extra={"messageId": message_id, "attributes": attributes})


def _unquoted(etag: str | None) -> str | None:
    return etag.strip('"') or None if etag else None
