"""What an upload is, decided by ffprobe on a local copy: never by its name or Content-Type.

ffprobe and ffmpeg run with `-protocol_whitelist file` (nothing but the local file can be opened) and
`-format_whitelist` set to the container demuxers below. The whitelist is checked when the input is opened, before
a demuxer reads its header, so an HLS, DASH or concat playlist is refused before it can open the files or URLs it
names (the classic way to make a transcoder read `/proc/self/environ` into a video). Nested inputs inherit both
whitelists. The detected format is checked against the same list again on the result.

Three steps, each usable on its own:
- `read_probe_json`: ffprobe's JSON, or a rejection (UNSUPPORTED_FORMAT when no allowed demuxer recognised the
  content, CORRUPT_MEDIA when one did but could not read it);
- `summarize`: the job's probe (docs/CONTRACTS.md "Probe"), pure;
- `check_decodes_to_end`: decodes the last seconds of the video stream, because a truncated file often still
  has a complete header (MP4 with the index first, Matroska) and probes fine.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.common.media_tools import ffprobe_path, tool_env
from functions.ingest.rejections import RejectionCode, UploadRejected

# Demuxer names as ffprobe reports them in `format_name`. Containers only: no playlists (hls, dash, concat),
# no image sequences (image2, *_pipe), no devices or text formats (tty, lavfi).
ALLOWED_FORMATS: tuple[str, ...] = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "mpegts",
    "flv",
)
FORMAT_WHITELIST = ",".join(ALLOWED_FORMATS)

PROBE_TIMEOUT_SECONDS = 30
DECODE_TIMEOUT_SECONDS = 120
TAIL_SECONDS = 2.0
FRAME_TIME_FIELDS = ("best_effort_timestamp_time", "pts_time", "pkt_dts_time")
"""A decoded frame's time, best first: the decoder's best guess, else the presentation or decoding timestamp."""
"""How much of the end of the video stream `check_decodes_to_end` decodes (from the keyframe before it)."""

# ffprobe at debug level names the demuxer that recognised the content, even when it then fails to read it.
_DETECTED = re.compile(r"Format (?P<name>\S+) probed with size=\d+ and score=(?P<score>\d+)")
_NOT_ON_WHITELIST = "not on whitelist"
# libavformat's AVPROBE_SCORE_RETRY: at or below it a match is a guess ("misdetection possible").
_CONFIDENT_SCORE = 25


@dataclass(frozen=True)
class ProbedMedia:
    """The job's probe plus what the decode check needs to find the video stream and where it should end."""

    probe: dict[str, Any]
    """docs/CONTRACTS.md "Probe": durationMs, width, height (display), codedWidth, codedHeight, rotation, ..."""
    video_stream_index: int
    """Index of the video stream in the file (attached cover pictures are not video)."""
    video_end_seconds: float
    """Timestamp the video stream's last frame should reach: its start time plus its duration."""


def ffprobe_args(path: Path) -> list[str]:
    """The probe command: local file only, allowed demuxers only, debug log (for the detected demuxer), JSON out."""
    return [
        ffprobe_path(),
        "-hide_banner",
        "-loglevel",
        "level+debug",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        FORMAT_WHITELIST,
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        f"file:{path}",
    ]


def read_probe_json(path: Path, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> dict[str, Any]:
    """ffprobe's JSON for the file, or the rejection its failure means."""
    try:
        result = _run(ffprobe_args(path), timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA,
            f"the file could not be read as video within {timeout:g} s",
            detail=f"ffprobe timed out after {timeout} s",
        ) from err
    if result.returncode != 0:
        rejection = classify_probe_failure(result.stderr)
        if result.returncode < 0:  # a crash is worth an operator's look, not only a rejection
            rejection.detail = f"ffprobe killed by signal {-result.returncode}\n{rejection.detail}"
        raise rejection
    try:
        parsed = json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA, "the file could not be read as video", detail="ffprobe printed no JSON"
        ) from err
    return parsed if isinstance(parsed, dict) else {}


def classify_probe_failure(stderr: str) -> UploadRejected:
    """UNSUPPORTED_FORMAT unless an allowed demuxer confidently recognised the content, then CORRUPT_MEDIA."""
    errors = _error_lines(stderr)
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
    if detected and int(detected.group("score")) > _CONFIDENT_SCORE and name in ALLOWED_FORMATS:
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
    if format_name not in ALLOWED_FORMATS:
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
    probe = {
        "durationMs": round(duration * 1000),
        "width": width,
        "height": height,
        "codedWidth": coded_width,
        "codedHeight": coded_height,
        "rotation": rotation,
        "videoCodec": str(video["codec_name"]),
        "audioCodec": str(audio["codec_name"]) if audio and audio.get("codec_name") else None,
        "hasAudio": audio is not None,
        "frameRate": _frame_rate(video),
        "formatName": format_name,
        "bitRate": _int_or_none(fmt.get("bit_rate")),
        "sizeBytes": size_bytes,
    }
    start = _float_or_none(video.get("start_time"))
    if start is None:
        start = _float_or_none(fmt.get("start_time")) or 0.0
    video_duration = _seconds(video.get("duration")) or duration
    return ProbedMedia(probe=probe, video_stream_index=int(video["index"]), video_end_seconds=start + video_duration)


def decode_tail_args(path: Path, *, stream_index: int, from_seconds: float) -> list[str]:
    """Decode the video stream from the keyframe before `from_seconds` to the end; each frame's timestamps as JSON."""
    return [
        ffprobe_path(),
        "-hide_banner",
        # Warnings too: ffprobe reports a decoder that fails to open (e.g. it cannot start its threads) at warning
        # level, and exits 1 with nothing else said.
        "-loglevel",
        "level+warning",
        # One decoding thread: a couple of seconds of frames need no more, and a sandbox with a low task limit
        # then cannot make the decoder fail to open.
        "-threads",
        "1",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        FORMAT_WHITELIST,
        "-select_streams",
        str(stream_index),
        "-read_intervals",
        f"{from_seconds:.3f}%",
        "-show_entries",
        f"frame={','.join(FRAME_TIME_FIELDS)}",
        # JSON, not CSV: a frame that carries side data (x264's SEI on the first one, a display matrix) gets extra
        # separators and blank lines in CSV, and which frames carry it differs between ffmpeg builds.
        "-print_format",
        "json",
        f"file:{path}",
    ]


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


def check_decodes_to_end(path: Path, media: ProbedMedia, *, timeout: float = DECODE_TIMEOUT_SECONDS) -> None:
    """Reject a video whose frames stop well before the end its header promises (a truncated or cut upload).

    Decodes from `TAIL_SECONDS` before the end. The last frame must reach the end less a slack of a quarter of
    the duration, at most one second, plus one frame interval. (A video stream that legitimately stops more than
    that before a longer audio track in a container without per-stream durations, e.g. Matroska, is rejected
    too; uploads like that are rare and would transcode to a frozen picture anyway.)
    """
    end = media.video_end_seconds
    duration = media.probe["durationMs"] / 1000
    from_seconds = max(0.0, end - TAIL_SECONDS)
    args = decode_tail_args(path, stream_index=media.video_stream_index, from_seconds=from_seconds)
    try:
        result = _run(args, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA,
            f"the video could not be decoded within {timeout:g} s",
            probe=media.probe,
            detail=f"tail decode timed out after {timeout} s",
        ) from err
    last = last_frame_seconds(result.stdout)
    if result.returncode != 0 or last is None:
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA,
            "the video's frames could not be decoded",
            probe=media.probe,
            detail=tool_failure_detail(result),
        )
    frame_rate = media.probe["frameRate"]
    reached = last + (1 / frame_rate if frame_rate > 0 else 0.0)
    if reached < end - min(1.0, duration / 4):
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA,
            f"the video is truncated: its frames stop at {reached:.1f} s of {end:.1f} s",
            probe=media.probe,
            detail=_error_lines(result.stderr),
        )


def probe_media(path: Path, *, size_bytes: int) -> ProbedMedia:
    """Probe and summarize; the decode check is separate so callers can apply cheaper limits first."""
    return summarize(read_probe_json(path), size_bytes=size_bytes)


def _run(args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a media tool on untrusted input: no stdin, no inherited environment, a time limit; never raises on exit."""
    return subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env=tool_env(),
        check=False,
    )


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


def tool_failure_detail(result: subprocess.CompletedProcess[str]) -> str:
    """For the logs: how the tool ended (an exit code, or the signal that killed it) and its last error lines."""
    if result.returncode < 0:
        ended = f"{Path(result.args[0]).name} killed by signal {-result.returncode}"
    else:
        ended = f"{Path(result.args[0]).name} exited {result.returncode}"
    errors = _error_lines(result.stderr)
    if errors:
        return f"{ended}: {errors}"
    return f"{ended}, no error output; stdout began {result.stdout[:200]!r}"


def _error_lines(stderr: str, *, keep: int = 5) -> str:
    """The last few error-level lines of an ffmpeg log, for the logs (never for the client)."""
    lines = [line for line in stderr.splitlines() if "[error]" in line or "[fatal]" in line or "[warning]" in line]
    return "\n".join((lines or stderr.splitlines())[-keep:])
