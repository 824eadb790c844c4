"""Ingest's use case over ports: an upload arrived for a job; accept it with a plan, or reject it.

An upload is an image, an audio file or a video by its content alone, never by its name or declared type:
- an image when its first bytes are the signature of an accepted image format (`ACCEPTED_IMAGE_FORMATS`; a HEIC
  photo is refused as UNSUPPORTED_FORMAT by its signature alone). Its bytes
  are checked before Pillow reads its header, its pixels (width x height in the header) before a pixel is decoded;
  then it is decoded whole (a truncated file is CORRUPT_MEDIA). Its units: one per (derivative, format) of
  `IMAGE_DERIVATIVES`, and `metadata`;
- otherwise ffprobe decides (the video and audio demuxers allowed): a video stream (attached pictures such as cover
  art do not count) in an accepted video container is a video, as before; no video stream but an audio stream in an
  accepted audio container is audio, whose units are `audio` and `waveform`; neither stream is NO_VIDEO_STREAM.

Image and audio jobs run in Lambda and fan out one message per unit; a video job is one message, as before.

Writes come before announcements, and every write is a conditional state transition:

1. AWAITING_UPLOAD -> VALIDATING (`begin_validation`). A no-op means the job is already past that point: the
   notification is a duplicate (S3 and SQS both deliver at least once) or a retry of this one.
2. HEAD, size checks, download, image or audio/video, limits, decode check, plan, engine. A broken rule raises
   `UploadRejected`.
3. VALIDATING -> PROCESSING with the plan, then the fan-out message(s) to SNS, then `Job Accepted`;
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
from functions.common.client_messages import client_safe
from functions.common.jobs_table import JobNotFound
from functions.common.observability import logger
from functions.common.renditions import Rendition
from functions.contracts.events import DetailType, EventDetail, JobAccepted, JobDeletionRequested, JobOutcome
from functions.contracts.fanout import FanOutMessage
from functions.contracts.jobs import JobRecord, JobStatus, Probe, RenditionStatus, RerunRequest
from functions.contracts.media import (
    ACCEPTED_AUDIO_DEMUXERS,
    ACCEPTED_DEMUXERS,
    ACCEPTED_IMAGE_FORMATS,
    IMAGE_OUTPUT_FORMATS,
    MediaType,
    UnitKind,
)

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
    """Largest video accepted (the presigned POST enforces it too, by the declared type; this is the second check)."""
    max_duration_seconds: int
    """Longest video or audio accepted."""
    max_width: int
    """Largest frame width, for the frame in the orientation the limit box is given in (see `check_media`)."""
    max_height: int
    """Largest frame height, likewise."""
    max_image_upload_bytes: int
    """Largest image accepted."""
    max_audio_upload_bytes: int
    """Largest audio-only file accepted."""
    max_image_pixels: int
    """Most pixels (width x height) an image may have; Pillow's decompression-bomb guard is set to it too."""

    def upload_bytes_for(self, media_type: MediaType) -> int:
        """The byte limit for what the content turned out to be."""
        if media_type is MediaType.IMAGE:
            return self.max_image_upload_bytes
        if media_type is MediaType.AUDIO:
            return self.max_audio_upload_bytes
        return self.max_upload_bytes

    @property
    def largest_upload_bytes(self) -> int:
        """Before the content is known, nothing larger than this can be accepted as anything."""
        return max(self.max_upload_bytes, self.max_image_upload_bytes, self.max_audio_upload_bytes)


def check_size(size_bytes: int, limits: Limits) -> None:
    """Before anything is downloaded: an empty object, or one over the limit of every kind of media, is rejected."""
    if size_bytes <= 0:
        raise UploadRejected(RejectionCode.EMPTY_UPLOAD, "the uploaded file is empty")
    if size_bytes > limits.largest_upload_bytes:
        raise UploadRejected(
            RejectionCode.UPLOAD_TOO_LARGE,
            f"the uploaded file is {size_bytes} bytes; the limit is {limits.largest_upload_bytes} bytes",
        )


MEDIA_NOUNS = {
    MediaType.VIDEO: ("video", "videos"),
    MediaType.IMAGE: ("image", "images"),
    MediaType.AUDIO: ("audio file", "audio files"),
}


def check_upload_bytes(media_type: MediaType, size_bytes: int, limits: Limits, *, probe: Probe | None = None) -> None:
    """Once the content shows what the upload is: the byte limit of that kind of media (UPLOAD_TOO_LARGE)."""
    limit = limits.upload_bytes_for(media_type)
    if size_bytes > limit:
        noun, plural = MEDIA_NOUNS[media_type]
        raise UploadRejected(
            RejectionCode.UPLOAD_TOO_LARGE,
            f"the {noun} is {size_bytes} bytes; the limit for {plural} is {limit} bytes",
            probe=probe,
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


def check_audio(probe: Probe, limits: Limits) -> None:
    """The duration cap, for audio as for video."""
    if probe.durationMs > limits.max_duration_seconds * 1000:
        raise UploadRejected(
            RejectionCode.DURATION_TOO_LONG,
            f"the audio is {probe.durationMs / 1000:.1f} s long; the limit is {limits.max_duration_seconds} s",
            probe=probe,
        )


# --------------------------------------------------------------------------------------------------------------
# What ffprobe's output means
# --------------------------------------------------------------------------------------------------------------

TAIL_SECONDS = 2.0
"""How much of the end of the video stream the tail check reads (from the keyframe before it)."""
FRAME_TIME_FIELDS = ("best_effort_timestamp_time", "pts_time", "pkt_dts_time")
"""A decoded frame's time, best first: the decoder's best guess, else the presentation or decoding timestamp."""
PACKET_TIME_FIELDS = ("pts_time", "dts_time")
"""A packet's time, best first: its presentation timestamp, else its decoding timestamp."""

# ffprobe at debug level names the demuxer that recognised the content, even when it then fails to read it.
_DETECTED = re.compile(r"Format (?P<name>\S+) probed with size=\d+ and score=(?P<score>\d+)")
_NOT_ON_WHITELIST = "not on whitelist"
_IMAGE_DEMUXER_SUFFIX = "_pipe"
"""ffmpeg names its single-image demuxers `<format>_pipe` (tiff_pipe, bmp_pipe, psd_pipe, ...)."""
# libavformat's AVPROBE_SCORE_RETRY: at or below it a match is a guess ("misdetection possible").
_CONFIDENT_SCORE = 25

PROBE_DEMUXERS: tuple[str, ...] = tuple(dict.fromkeys((*ACCEPTED_DEMUXERS, *ACCEPTED_AUDIO_DEMUXERS)))
"""What ffprobe may read an upload with: the video and the audio demuxers. Which list the result must be in depends
on what the file holds (`summarize`): a video in the video list, an audio-only file in the audio list."""
PROBE_WHITELIST = ",".join(PROBE_DEMUXERS)


@dataclass(frozen=True)
class ProbedMedia:
    """The job's probe plus what the decode check needs to find the video stream and where it should end."""

    probe: Probe
    """docs/CONTRACTS.md "Probe": durationMs, width, height (display), codedWidth, codedHeight, rotation, ..."""
    video_stream_index: int
    """Index of the video stream in the file (attached cover pictures are not video)."""
    video_end_seconds: float
    """Timestamp the video stream's last frame should reach: its start time plus its duration."""


@dataclass(frozen=True)
class ProbedAudio:
    """An audio-only upload: no video stream (cover art aside), an audio stream, in an accepted audio container."""

    probe: Probe
    """durationMs, audioCodec, channels, sampleRate, bitRate, formatName, hasAudio, sizeBytes."""


def unsupported_image_message(image_format: str) -> str:
    """What a client reads about an image in a format the pipeline does not take (TIFF, BMP, HEIF, ...)."""
    accepted = ACCEPTED_IMAGE_FORMATS
    return (
        f"the file is a {image_format} image, which is not accepted; images must be "
        f"{', '.join(accepted[:-1])} or {accepted[-1]}"
    )


def classify_probe_failure(stderr: str) -> UploadRejected:
    """UNSUPPORTED_FORMAT unless an allowed demuxer confidently recognised the content, then CORRUPT_MEDIA."""
    errors = error_lines(stderr)
    detected = _DETECTED.search(stderr)
    name = detected.group("name") if detected else None
    if _NOT_ON_WHITELIST in stderr:
        if name and name.endswith(_IMAGE_DEMUXER_SUFFIX):  # ffmpeg's image demuxers: tiff_pipe, bmp_pipe, ...
            message = unsupported_image_message(name.removesuffix(_IMAGE_DEMUXER_SUFFIX).upper())
        elif name:
            message = f"the file is in the {name} format, which is not an accepted image, audio or video format"
        else:
            message = "the file's format is not an accepted image, audio or video format"
        return UploadRejected(RejectionCode.UNSUPPORTED_FORMAT, message, detail=errors)
    if detected and int(detected.group("score")) > _CONFIDENT_SCORE and name in PROBE_DEMUXERS:
        kind = "video" if name in ACCEPTED_DEMUXERS else "audio"
        return UploadRejected(
            RejectionCode.CORRUPT_MEDIA, f"the file looks like {kind} but is truncated or damaged", detail=errors
        )
    return UploadRejected(
        RejectionCode.UNSUPPORTED_FORMAT,
        "the file is not an image, audio or video in a supported format",
        detail=errors,
    )


def summarize(raw: dict[str, Any], *, size_bytes: int) -> ProbedMedia | ProbedAudio:
    """The job's probe from ffprobe's JSON. Pure; rejects what cannot be transcoded.

    - The first video stream that is not an attached picture (cover art) is the video; a file with none but with an
      audio stream is audio (`summarize_audio`); a file with neither is NO_VIDEO_STREAM.
    - A video must be in an accepted video container, audio in an accepted audio container (UNSUPPORTED_FORMAT).
    - `width`/`height` are the display size: the coded size scaled by the sample aspect ratio, then swapped
      when the rotation is 90 or 270. `codedWidth`/`codedHeight` are the frame as stored.
    - `rotation` is in degrees counter-clockwise, as ffprobe reports the display matrix (and as
      `ffmpeg -display_rotation` writes it), normalised to 0, 90, 180 or 270. A legacy `rotate` tag
      (clockwise, as old phones wrote it) is converted to the same convention.
    """
    fmt = raw.get("format") or {}
    format_name = str(fmt.get("format_name") or "")
    if format_name not in PROBE_DEMUXERS:
        raise UploadRejected(
            RejectionCode.UNSUPPORTED_FORMAT,
            f"the file is {format_name or 'an unknown format'}, which is not an accepted audio or video container",
        )
    streams = [s for s in raw.get("streams") or [] if isinstance(s, dict)]
    video = next((s for s in streams if _is_video(s)), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        if audio is None:
            raise UploadRejected(RejectionCode.NO_VIDEO_STREAM, "the file has no video or audio stream")
        return summarize_audio(fmt, audio, size_bytes=size_bytes)
    if format_name not in ACCEPTED_DEMUXERS:
        raise UploadRejected(
            RejectionCode.UNSUPPORTED_FORMAT, f"the file is {format_name}, which is not an accepted video container"
        )
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


def summarize_audio(fmt: dict[str, Any], audio: dict[str, Any], *, size_bytes: int) -> ProbedAudio:
    """The probe of an audio-only upload (its first audio stream), or why it is rejected.

    A demuxer that only guessed (probe score at or below libavformat's "misdetection possible") is not trusted with
    a file that holds nothing but audio: noise can look like a few MPEG audio frames.
    """
    format_name = str(fmt.get("format_name") or "")
    if format_name not in ACCEPTED_AUDIO_DEMUXERS:
        raise UploadRejected(
            RejectionCode.UNSUPPORTED_FORMAT,
            f"the file is audio in {format_name or 'an unknown format'}, which is not an accepted audio container",
        )
    score = _int_or_none(fmt.get("probe_score"))
    if score is not None and score <= _CONFIDENT_SCORE:
        raise UploadRejected(
            RejectionCode.UNSUPPORTED_FORMAT,
            "the file is not an image, audio or video in a supported format",
            detail=f"{format_name} recognised with probe score {score} only",
        )
    if not audio.get("codec_name"):
        raise UploadRejected(RejectionCode.UNSUPPORTED_FORMAT, "the audio stream's codec is not supported")
    channels, sample_rate = _int_or_none(audio.get("channels")), _int_or_none(audio.get("sample_rate"))
    if not channels or not sample_rate or channels < 0 or sample_rate < 0:
        raise UploadRejected(RejectionCode.CORRUPT_MEDIA, "the audio stream has no channels or sample rate")
    duration = _seconds(fmt.get("duration")) or _seconds(audio.get("duration"))
    if duration is None:
        raise UploadRejected(RejectionCode.CORRUPT_MEDIA, "the audio has no readable duration")
    probe = Probe(
        durationMs=round(duration * 1000),
        audioCodec=str(audio["codec_name"]),
        hasAudio=True,
        channels=channels,
        sampleRate=sample_rate,
        formatName=format_name,
        bitRate=_int_or_none(fmt.get("bit_rate")) or _int_or_none(audio.get("bit_rate")),
        sizeBytes=size_bytes,
    )
    return ProbedAudio(probe=probe)


def tail_start_seconds(media: ProbedMedia) -> float:
    """Where the decode check starts: `TAIL_SECONDS` before the end the header promises."""
    return max(0.0, media.video_end_seconds - TAIL_SECONDS)


def tail_reach_seconds(probe_output: str) -> float | None:
    """How far the tail check got, from its JSON (`packets_and_frames`): the latest time of any packet read or frame
    decoded; None when no frame decoded, whatever packets were read (the video's keyframes do not decode).

    The check decodes keyframes only and reads every packet: the packets show where the data stops (a truncated
    file's stop early), the keyframes that the decoder accepts the stream, for a fraction of a full decode's CPU.
    """
    try:
        parsed = json.loads(probe_output or "{}")
        entries = parsed.get("packets_and_frames") or []
    except (json.JSONDecodeError, AttributeError):
        return None
    frame_times = [_entry_time(entry, FRAME_TIME_FIELDS) for entry in entries if _is_entry(entry, "frame")]
    packet_times = [_entry_time(entry, PACKET_TIME_FIELDS) for entry in entries if _is_entry(entry, "packet")]
    decoded = [value for value in frame_times if value is not None]
    if not decoded:
        return None
    return max([*decoded, *(value for value in packet_times if value is not None)])


def _is_entry(entry: object, kind: str) -> bool:
    return isinstance(entry, dict) and entry.get("type") == kind


def _entry_time(entry: dict[str, Any], fields: Sequence[str]) -> float | None:
    found = (_float_or_none(entry.get(field)) for field in fields)
    return next((value for value in found if value is not None), None)


def check_reaches_end(media: ProbedMedia, reached_seconds: float, *, detail: str) -> None:
    """Reject a video whose frames stop well before the end its header promises (a truncated or cut upload).

    The tail (`tail_reach_seconds`) must reach the end less a slack of a quarter of the duration, at most one
    second, plus one frame interval. (A video stream that legitimately stops more than that before a longer audio
    track in a container without per-stream durations, e.g. Matroska, is rejected too; uploads like that are rare and
    would transcode to a frozen picture anyway.)
    """
    end = media.video_end_seconds
    duration = media.probe.durationMs / 1000
    frame_rate = media.probe.frameRate or 0.0
    reached = reached_seconds + (1 / frame_rate if frame_rate > 0 else 0.0)
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
# Images: what the header says, the checks made before a pixel is decoded, the probe
# --------------------------------------------------------------------------------------------------------------

ANIMATION_PIXELS_FACTOR = 20
"""An animation may hold this many times `max_image_pixels` in all its frames (frames x width x height).

Ingest decodes every frame to prove the file is whole; without a cap, a small file of thousands of large frames
would keep it decoding until its timeout. 20 x 50 megapixels is a 10-second 1080p animation at 25 frames a second
with room to spare."""

SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
"""EXIF orientations whose upright picture is the stored one turned a quarter: width and height swap."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding a pixel."""

    format: str
    """Pillow's name, one of `ACCEPTED_IMAGE_FORMATS`."""
    width: int
    """As stored (before the EXIF orientation)."""
    height: int
    mode: str
    """The first frame's colour mode, as Pillow names it (`RGB`, `RGBA`, `CMYK`, `P`, `I;16`, ...)."""
    frames: int = 1
    orientation: int = 1
    """The EXIF orientation the header carries (1 when none); the full read may still find one (`DecodedImage`)."""

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class DecodedImage:
    """What decoding the whole image added to its header."""

    orientation: int = 1
    """The EXIF orientation (1 when none): what the images function turns the picture by."""


def display_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The upright size of a picture stored at `width` x `height` with an EXIF orientation."""
    return (height, width) if orientation in SWAPPING_ORIENTATIONS else (width, height)


def image_probe(header: ImageHeader, *, orientation: int, size_bytes: int) -> Probe:
    """The probe of an image: no duration, the upright size, its frames and mode, Pillow's format in lower case."""
    width, height = display_size(header.width, header.height, orientation)
    return Probe(
        durationMs=0,
        width=width,
        height=height,
        frames=header.frames,
        mode=header.mode,
        formatName=header.format.lower(),
        sizeBytes=size_bytes,
    )


def check_image(header: ImageHeader, *, size_bytes: int, limits: Limits) -> None:
    """Before any pixel is decoded: the image's bytes, then its pixels (width x height from the header), then the
    pixels of all its frames. The rejection keeps the probe (as the header gives it) for the client."""
    probe = image_probe(header, orientation=header.orientation, size_bytes=size_bytes)
    check_upload_bytes(MediaType.IMAGE, size_bytes, limits, probe=probe)
    if header.pixels > limits.max_image_pixels:
        raise UploadRejected(
            RejectionCode.RESOLUTION_TOO_HIGH,
            f"the image is {header.width}x{header.height} ({header.pixels} pixels); the limit is "
            f"{limits.max_image_pixels} pixels",
            probe=probe,
        )
    budget = limits.max_image_pixels * ANIMATION_PIXELS_FACTOR
    if header.frames * header.pixels > budget:
        raise UploadRejected(
            RejectionCode.RESOLUTION_TOO_HIGH,
            f"the animation has {header.frames} frames of {header.width}x{header.height} "
            f"({header.frames * header.pixels} pixels in all); the limit is {budget} pixels in all",
            probe=probe,
        )


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
# Image and audio units: what the images and audio functions make of an upload, one unit of work each
# --------------------------------------------------------------------------------------------------------------

METADATA_UNIT = "metadata"
AUDIO_UNIT = "audio"
WAVEFORM_UNIT = "waveform"
WAVEFORM_WIDTH = 1800
WAVEFORM_HEIGHT = 280


@dataclass(frozen=True)
class ImageDerivative:
    """One derivative every image gets (`IMAGE_DERIVATIVES`): one unit per format, named `{name}-{format}`."""

    name: str
    long_edge: int
    """The output's longest edge in pixels; a smaller source keeps its size (never upscaled)."""
    formats: tuple[str, ...]
    """Keys of `IMAGE_OUTPUT_FORMATS`."""
    watermark: bool = False

    def unit_names(self) -> list[str]:
        return [f"{self.name}-{output_format}" for output_format in self.formats]


DEFAULT_IMAGE_DERIVATIVES = (
    ImageDerivative(name="thumb", long_edge=320, formats=("webp", "jpeg"), watermark=False),
    ImageDerivative(name="large", long_edge=1280, formats=("webp", "jpeg"), watermark=True),
)
"""The stack default (Pulumi.yaml `imageDerivatives`), used when `IMAGE_DERIVATIVES` is unset."""


def fitted_size(width: int, height: int, long_edge: int) -> tuple[int, int]:
    """`width` x `height` scaled so its longest edge is `long_edge`, aspect kept (halves round up, at least 1 pixel);
    a picture already that small keeps its size."""
    longest = max(width, height)
    if longest <= long_edge:
        return width, height
    scale = long_edge / longest
    fitted = (max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5)))
    return (long_edge, fitted[1]) if width >= height else (fitted[0], long_edge)


def plan_image_units(width: int, height: int, derivatives: Sequence[ImageDerivative]) -> list[dict[str, Any]]:
    """The units of an image displayed at `width` x `height` (after its EXIF orientation), all QUEUED.

    One per (derivative, format), in the configured order, at its fitted size; then `metadata`. A derivative larger
    than the source keeps the source's size, and its `reason` says so.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"display size must be positive, got {width}x{height}")
    plan: list[dict[str, Any]] = []
    for derivative in derivatives:
        out_width, out_height = fitted_size(width, height, derivative.long_edge)
        for output_format, name in zip(derivative.formats, derivative.unit_names(), strict=True):
            unit: dict[str, Any] = {
                "name": name,
                "status": RenditionStatus.QUEUED.value,
                "kind": UnitKind.IMAGE.value,
                "width": out_width,
                "height": out_height,
                "format": output_format,
                "watermark": derivative.watermark,
            }
            if max(width, height) < derivative.long_edge:
                unit["reason"] = (
                    f"source's longest edge is {max(width, height)} px, below {derivative.long_edge}; no upscaling"
                )
            plan.append(unit)
    plan.append({"name": METADATA_UNIT, "status": RenditionStatus.QUEUED.value, "kind": UnitKind.METADATA.value})
    return plan


def plan_audio_units(audio_bitrate_kbps: int) -> list[dict[str, Any]]:
    """The units of an audio upload: the AAC rendition (`audio.m4a`) and the waveform picture (`waveform.png`)."""
    return [
        {
            "name": AUDIO_UNIT,
            "status": RenditionStatus.QUEUED.value,
            "kind": UnitKind.AUDIO.value,
            "format": "m4a",
            "audioBitrateKbps": audio_bitrate_kbps,
        },
        {
            "name": WAVEFORM_UNIT,
            "status": RenditionStatus.QUEUED.value,
            "kind": UnitKind.WAVEFORM.value,
            "format": "png",
            "width": WAVEFORM_WIDTH,
            "height": WAVEFORM_HEIGHT,
        },
    ]


def parse_image_derivatives(raw: str) -> tuple[ImageDerivative, ...]:
    """`IMAGE_DERIVATIVES`: a JSON list of `{name, longEdge, formats, watermark}`; raises ValueError saying what is
    wrong. Names are lower-case letters, digits and `-`; `longEdge` 16 to 8192; formats among `IMAGE_OUTPUT_FORMATS`;
    every unit name `{name}-{format}` unique and at most 20 characters (the fan-out's limit)."""
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"must be JSON ({err.msg})") from err
    if not isinstance(entries, list) or not entries:
        raise ValueError("must be a non-empty JSON list of derivatives")
    derivatives = tuple(_derivative(index, entry) for index, entry in enumerate(entries))
    seen: set[str] = set()
    for name in (unit for derivative in derivatives for unit in derivative.unit_names()):
        if name in seen:
            raise ValueError(f"unit {name!r} is planned twice; derivative names and their formats must be unique")
        seen.add(name)
    return derivatives


_DERIVATIVE_NAME = re.compile(r"[a-z0-9-]+")
_DERIVATIVE_KEYS = frozenset({"name", "longEdge", "formats", "watermark"})
MIN_LONG_EDGE, MAX_LONG_EDGE = 16, 8192
MAX_UNIT_NAME = 20


def _derivative(index: int, entry: Any) -> ImageDerivative:
    where = f"derivative {index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object with name, longEdge, formats and watermark")
    unknown = sorted(set(entry) - _DERIVATIVE_KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}")
    name = entry.get("name")
    if not isinstance(name, str) or not _DERIVATIVE_NAME.fullmatch(name):
        raise ValueError(f"{where}: name must match ^[a-z0-9-]+$, got {name!r}")
    where = f"derivative {name!r}"
    long_edge = entry.get("longEdge")
    if isinstance(long_edge, bool) or not isinstance(long_edge, int) or not MIN_LONG_EDGE <= long_edge <= MAX_LONG_EDGE:
        raise ValueError(
            f"{where}: longEdge must be an integer from {MIN_LONG_EDGE} to {MAX_LONG_EDGE}, got {long_edge!r}"
        )
    formats = entry.get("formats")
    if not isinstance(formats, list) or not formats:
        raise ValueError(f"{where}: formats must be a non-empty list of {sorted(IMAGE_OUTPUT_FORMATS)}")
    for output_format in formats:
        if not isinstance(output_format, str) or output_format not in IMAGE_OUTPUT_FORMATS:
            raise ValueError(f"{where}: format {output_format!r} is not one of {sorted(IMAGE_OUTPUT_FORMATS)}")
    watermark = entry.get("watermark", False)
    if not isinstance(watermark, bool):
        raise ValueError(f"{where}: watermark must be true or false, got {watermark!r}")
    derivative = ImageDerivative(name=name, long_edge=long_edge, formats=tuple(formats), watermark=watermark)
    for unit in derivative.unit_names():
        if len(unit) > MAX_UNIT_NAME:
            raise ValueError(f"{where}: unit name {unit!r} is longer than {MAX_UNIT_NAME} characters")
    return derivative


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
    segment_target_seconds: float = 60.0
    """Estimated encode seconds one (rendition, segment) unit should take: a longer job is encoded in segments."""


def lambda_vcpus(memory_mb: int) -> float:
    """vCPUs Lambda gives a function of `memory_mb`."""
    return memory_mb / LAMBDA_MB_PER_VCPU


def lambda_capacity(
    *,
    megapixels_per_vcpu_second: float,
    memory_mb: int,
    timeout_seconds: int,
    reserve_seconds: float,
    segment_target_seconds: float = 60.0,
) -> LambdaCapacity:
    budget = timeout_seconds - reserve_seconds
    return LambdaCapacity(
        megapixels_per_second=megapixels_per_vcpu_second * lambda_vcpus(memory_mb),
        budget_seconds=budget,
        segment_target_seconds=min(segment_target_seconds, budget),
    )


GOP_SECONDS = 2
"""Segments start on the encoder's 2 s keyframe grid (functions/transcode/service.py)."""
MAX_SEGMENTS = 400
"""Most video segments of one rendition: bounds the fan-out, the job record and the fan-in's writes."""


def segment_seconds(*, duration_ms: int, encode_seconds_per_media_second: float, target_seconds: float) -> int | None:
    """The length of a segment-parallel rendition's segments, or None when one unit encodes it whole.

    Each (rendition, segment) unit should take about `target_seconds` by the estimate: the segment length is the
    longest multiple of the 2 s GOP within it (2 s at least, and long enough for at most MAX_SEGMENTS segments).
    A source that fits one such segment is encoded whole, as before.
    """
    if duration_ms <= 0 or encode_seconds_per_media_second <= 0:
        return None
    fitting = int(target_seconds / encode_seconds_per_media_second) // GOP_SECONDS * GOP_SECONDS
    bounded = math.ceil(duration_ms / 1000 / MAX_SEGMENTS / GOP_SECONDS) * GOP_SECONDS
    seconds = max(GOP_SECONDS, fitting, bounded)
    return seconds if segment_count(duration_ms, seconds) > 1 else None


def segment_count(duration_ms: int, seconds: int) -> int:
    """Segments of `seconds` covering `duration_ms` (the last one is shorter)."""
    return max(1, math.ceil(duration_ms / (seconds * 1000)))


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
    """A fixed setting wins; `auto` sends to MediaConvert only what the stack asks for: sources longer than its
    threshold (equal stays in Lambda), when it sets one (0: none, Lambda encodes long sources in segments)."""
    if setting is EngineSetting.AUTO:
        over = threshold_seconds > 0 and duration_ms > threshold_seconds * 1000
        return Engine.MEDIACONVERT if over else Engine.LAMBDA
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
    """`choose_engine`, then the ceiling: a job whose largest unit would not fit a transcode function's budget never
    goes to Lambda (`estimate_seconds` is that unit's: the whole rendition's, or one segment's).

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
    @property
    def image_derivatives(self) -> tuple[ImageDerivative, ...]: ...
    @property
    def audio_bitrate_kbps(self) -> int: ...


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


class ImageInspector(Protocol):
    def signature(self, path: Path) -> str | None:
        """The image format (Pillow's name) the file's first bytes announce, or None; reads only those bytes. One of
        `ACCEPTED_IMAGE_FORMATS`, or the name of an image format that is not accepted."""
        ...

    def read_header(self, path: Path) -> ImageHeader:
        """The header of a file whose signature is an accepted format, without decoding a pixel, whatever size it
        claims. Raises `UploadRejected` (CORRUPT_MEDIA) when the header cannot be read."""
        ...

    def decode(self, path: Path, header: ImageHeader, *, max_pixels: int) -> DecodedImage:
        """Decode every frame, with the decompression-bomb guard at `max_pixels` and truncated files refused. Raises
        `UploadRejected`: CORRUPT_MEDIA when the file does not decode whole, RESOLUTION_TOO_HIGH from the guard."""
        ...


class MediaInspector(Protocol):
    def probe(self, path: Path, *, size_bytes: int) -> ProbedMedia | ProbedAudio:
        """What the local copy is; raises `UploadRejected` when it is not an accepted video or audio file."""
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
    """The source's duration, for an accepted video or audio file."""
    media_type: str | None = None
    """What the accepted upload is (`video`, `image`, `audio`)."""


@dataclass(frozen=True)
class Inspection:
    """A valid upload: what it is, and what will be made of it."""

    probe: Probe
    planned: list[dict[str, Any]]
    engine: str
    media_type: MediaType = MediaType.VIDEO


class UploadIngest:
    def __init__(
        self,
        *,
        rules: Rules,
        jobs: JobStore,
        store: SourceStore,
        images: ImageInspector,
        media: MediaInspector,
        fanout: FanOutTopic,
        events: EventSink,
        clock: Callable[[], int],
        scratch_dir: Path | None = None,
    ) -> None:
        self._rules = rules
        self._jobs = jobs
        self._store = store
        self._images = images
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
        if job.deletion is not None:
            # The form outlived the job: its owner deleted it before this upload arrived. The tracker deletes the
            # job's files; asking again makes it delete this one too.
            logger.info("upload for a deleted job; asking for its deletion again")
            self._events.publish(DetailType.JOB_DELETION_REQUESTED, JobDeletionRequested.of(job))
            return IngestResult(Outcome.DUPLICATE, status=job.status)
        return self._repeat(job, upload, redelivered=redelivered)

    def rerun(self, request: RerunRequest, *, redelivered: bool) -> IngestResult:
        """The next attempt of a job its owner retried or reprocessed (the api moved it to VALIDATING): planned again
        from the probe recorded at its first validation, with the stack's current ladder and engine rules, then fanned
        out as a fresh upload is. A job that never got through validation is validated again from its upload."""
        try:
            job = self._jobs.get(request.jobId)
        except JobNotFound:
            logger.warning("re-run of a job that does not exist; dropped")
            return IngestResult(Outcome.JOB_NOT_FOUND)
        if job.attempt != request.attempt:
            logger.info("re-run of an attempt no longer current; dropped", extra={"attempt": job.attempt})
            return IngestResult(Outcome.DUPLICATE, status=job.status)
        source = job.source
        if source.bucket is None or source.key is None:
            raise ValueError(f"job {job.jobId} records no source object")
        upload = Upload(job_id=job.jobId, bucket=source.bucket, key=source.key, etag=source.etag)
        if job.status != JobStatus.VALIDATING:
            return self._repeat(job, upload, redelivered=redelivered)
        if job.probe is None or job.mediaType is None:
            return self._validate(upload)
        try:
            inspection = self._replan(job.probe, MediaType(job.mediaType))
        except UploadRejected as rejection:
            return self._reject(upload, rejection)
        return self._accept(upload, inspection)

    def _replan(self, probe: Probe, media_type: MediaType) -> Inspection:
        if media_type == MediaType.IMAGE:
            planned = plan_image_units(probe.width or 0, probe.height or 0, self._rules.image_derivatives)
            return Inspection(probe=probe, planned=planned, engine=Engine.LAMBDA.value, media_type=media_type)
        if media_type == MediaType.AUDIO:
            planned = plan_audio_units(self._rules.audio_bitrate_kbps)
            return Inspection(probe=probe, planned=planned, engine=Engine.LAMBDA.value, media_type=media_type)
        return self._plan_video(probe)

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
        return self._accept(upload, inspection)

    def _accept(self, upload: Upload, inspection: Inspection) -> IngestResult:
        now = self._clock()
        moved = self._jobs.change(
            upload.job_id,
            lambda job: job_state.begin_processing(
                job,
                media_type=inspection.media_type.value,
                engine=inspection.engine,
                probe=inspection.probe,
                planned=inspection.planned,
                now=now,
                source_etag=_unquoted(upload.etag),
            ),
        )
        if moved is None:
            logger.info("another attempt decided this job first; not publishing")
            return IngestResult(Outcome.DUPLICATE)
        job = moved[1]
        self._announce_acceptance(job, upload)
        queued = tuple(queued_names(inspection.planned))
        logger.info(
            "upload accepted",
            extra={"mediaType": inspection.media_type.value, "engine": inspection.engine, "renditions": list(queued)},
        )
        return IngestResult(
            Outcome.ACCEPTED,
            status=job.status,
            engine=inspection.engine,
            renditions=queued,
            duration_ms=None if inspection.media_type is MediaType.IMAGE else inspection.probe.durationMs,
            media_type=inspection.media_type.value,
        )

    def _inspect(self, upload: Upload) -> Inspection:
        """Everything that can reject an upload, cheapest first; raises `UploadRejected`.

        Images are recognised first, by Pillow, and ffprobe never sees them; the rest is for ffprobe to tell.
        """
        limits = self._rules.limits
        stored = self._store.head(upload.bucket, upload.key, etag=upload.etag)
        check_size(stored.size, limits)
        with TemporaryDirectory(prefix="ingest-", dir=self._scratch_dir) as workdir:
            local = Path(workdir) / "source"  # no extension: nothing may guess the type from a name
            self._store.download(upload.bucket, upload.key, stored, local, max_bytes=limits.largest_upload_bytes)
            image_format = self._images.signature(local)
            if image_format is not None:
                return self._inspect_image(local, image_format, stored.size)
            largest = max(limits.max_upload_bytes, limits.max_audio_upload_bytes)
            if stored.size > largest:
                raise UploadRejected(
                    RejectionCode.UPLOAD_TOO_LARGE,
                    f"the file is not an image, and at {stored.size} bytes it is over the limit for audio files and "
                    f"videos ({largest} bytes)",
                )
            media = self._media.probe(local, size_bytes=stored.size)
            if isinstance(media, ProbedAudio):
                return self._inspect_audio(media, stored.size)
            check_upload_bytes(MediaType.VIDEO, stored.size, limits, probe=media.probe)
            check_media(media.probe, limits)
            self._media.check_decodes_to_end(local, media)
        return self._plan_video(media.probe)

    def _inspect_image(self, local: Path, image_format: str, size_bytes: int) -> Inspection:
        """An image: its format, its bytes before Pillow reads more than its signature, its pixels before a pixel is
        decoded, then a full decode (the file must be whole)."""
        if image_format not in ACCEPTED_IMAGE_FORMATS:
            raise UploadRejected(RejectionCode.UNSUPPORTED_FORMAT, unsupported_image_message(image_format))
        limits = self._rules.limits
        check_upload_bytes(MediaType.IMAGE, size_bytes, limits)
        header = self._images.read_header(local)
        check_image(header, size_bytes=size_bytes, limits=limits)
        decoded = self._images.decode(local, header, max_pixels=limits.max_image_pixels)
        probe = image_probe(header, orientation=decoded.orientation, size_bytes=size_bytes)
        planned = plan_image_units(probe.width or 0, probe.height or 0, self._rules.image_derivatives)
        return Inspection(probe=probe, planned=planned, engine=Engine.LAMBDA.value, media_type=MediaType.IMAGE)

    def _inspect_audio(self, media: ProbedAudio, size_bytes: int) -> Inspection:
        check_upload_bytes(MediaType.AUDIO, size_bytes, self._rules.limits, probe=media.probe)
        check_audio(media.probe, self._rules.limits)
        planned = plan_audio_units(self._rules.audio_bitrate_kbps)
        return Inspection(probe=media.probe, planned=planned, engine=Engine.LAMBDA.value, media_type=MediaType.AUDIO)

    def _plan_video(self, probe: Probe) -> Inspection:
        """The ladder for a valid video, the engine that encodes it (which may still reject it), and, for a Lambda job
        too long for one unit, its segments (`segment_seconds`)."""
        rules = self._rules
        width, height = probe.width or 0, probe.height or 0
        planned = plan_renditions(width, height, rules.renditions)
        capacity = rules.lambda_capacity
        per_media_second = estimated_encode_seconds(
            duration_ms=1000,
            frame_rate=probe.frameRate,
            source_pixels=(probe.codedWidth or width) * (probe.codedHeight or height),
            planned=planned,
            megapixels_per_second=capacity.megapixels_per_second,
        )
        estimate = per_media_second * probe.durationMs / 1000
        seconds = segment_seconds(
            duration_ms=probe.durationMs,
            encode_seconds_per_media_second=per_media_second,
            target_seconds=capacity.segment_target_seconds,
        )
        unit_estimate = estimate if seconds is None else per_media_second * seconds
        engine = route(
            rules.engine,
            duration_ms=probe.durationMs,
            threshold_seconds=rules.mediaconvert_threshold_seconds,
            estimate_seconds=unit_estimate,
            capacity=capacity,
            probe=probe,
        )
        if engine is Engine.LAMBDA and seconds is not None:
            plan = {"count": segment_count(probe.durationMs, seconds), "seconds": seconds, "audio": probe.hasAudio}
            for item in planned:
                if item["status"] == RenditionStatus.QUEUED:
                    item["segments"] = dict(plan)
        logger.info(
            "engine chosen",
            extra={
                "engine": engine.value,
                "lambdaEstimateSeconds": round(estimate, 1),
                "lambdaUnitEstimateSeconds": round(unit_estimate, 1),
                "lambdaBudgetSeconds": capacity.budget_seconds,
                "segmentSeconds": seconds if engine is Engine.LAMBDA else None,
            },
        )
        return Inspection(probe=probe, planned=planned, engine=engine.value)

    def _reject(self, upload: Upload, rejection: UploadRejected) -> IngestResult:
        logger.info(
            "upload rejected",
            extra={"code": rejection.code.value, "reason": rejection.message, "detail": rejection.detail},
        )
        now = self._clock()
        message = client_safe(rejection.message)  # written for the client already; the net under it, in case
        moved = self._jobs.change(
            upload.job_id,
            lambda job: job_state.reject(
                job, code=rejection.code.value, message=message, now=now, probe=rejection.probe
            ),
        )
        if moved is None:
            logger.info("another attempt decided this job first; not announcing the rejection")
            return IngestResult(Outcome.DUPLICATE)
        rejected = moved[1]
        self._events.publish(DetailType.JOB_REJECTED, JobOutcome.of(rejected))
        return IngestResult(Outcome.REJECTED, status=rejected.status, code=rejection.code.value)

    def _announce_acceptance(self, job: JobRecord, upload: Upload) -> None:
        """The fan-out, built from the job as written (a retried publish sends the same plan), then the event.

        A video job is one message listing its renditions, or, for renditions encoded in segments, one message per
        part (each video segment, the audio); an image or audio job is one message per unit, so each unit is
        received, retried and dead-lettered on its own. `source.etag` (beyond the contract's bucket and key)
        names the exact object that was validated, so a consumer can read it with `If-Match` and never process a
        file re-posted after validation.
        """
        media_type = job.mediaType or MediaType.VIDEO.value
        message = FanOutMessage.for_job(job, bucket=upload.bucket, key=upload.key, etag=_unquoted(upload.etag))
        messages = message.per_segment(job) if media_type == MediaType.VIDEO else message.per_unit()
        for each in messages:
            attributes = each.attributes(media_type)
            message_id = self._fanout.publish(each.body(), attributes)
            logger.info("fan-out published", extra={"messageId": message_id, "attributes": attributes})
        self._events.publish(DetailType.JOB_ACCEPTED, JobAccepted.of(job))


def _unquoted(etag: str | None) -> str | None:
    return etag.strip('"') or None if etag else None
