"""Reading an encoded rendition back (from ffprobe's JSON) and checking it is what was planned. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.transcode.messages import EncodePlan


class OutputUnreadable(ValueError):
    """ffprobe's report has no video stream or no usable size: the output is not a video."""


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


def stream_rotation(stream: dict[str, Any]) -> int:
    """Display rotation in degrees (0, 90, 180, 270) from the display matrix side data or the legacy `rotate` tag."""
    for side_data in stream.get("side_data_list") or []:
        if "rotation" in side_data:
            return round(float(side_data["rotation"])) % 360
    rotate = (stream.get("tags") or {}).get("rotate")
    return int(rotate) % 360 if rotate and str(rotate).lstrip("-").isdigit() else 0


def parse_output_probe(report: dict[str, Any]) -> OutputMedia:
    """The rendition as `ffprobe -show_format -show_streams -print_format json` describes it."""
    streams = report.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise OutputUnreadable("no video stream in the output")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    coded_width, coded_height = int(video.get("width") or 0), int(video.get("height") or 0)
    if coded_width <= 0 or coded_height <= 0:
        raise OutputUnreadable("the output's video stream has no size")
    rotation = stream_rotation(video)
    width, height = (coded_height, coded_width) if rotation in (90, 270) else (coded_width, coded_height)
    fmt = report.get("format") or {}
    duration = fmt.get("duration") or video.get("duration")
    try:
        duration_ms = round(float(duration) * 1000) if duration is not None else 0
        size = int(fmt.get("size") or 0)
    except ValueError as err:
        raise OutputUnreadable(f"the output's duration or size is not a number: {err}") from err
    return OutputMedia(
        width=width,
        height=height,
        durationMs=duration_ms,
        bytes=size,
        videoCodec=str(video.get("codec_name")),
        profile=video.get("profile"),
        pixelFormat=video.get("pix_fmt"),
        rotation=rotation,
        audioCodec=audio.get("codec_name") if audio else None,
    )


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
