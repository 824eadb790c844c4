"""The ffmpeg command that encodes one rendition, built with ffmpeg-python. Pure: paths and plain data in, args out.

What the command guarantees, and why:
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

from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from functions.transcode.messages import EncodePlan, SourceProbe

GOP_SECONDS = 2
# When ingest could not read a frame rate, assume the common one; the forced keyframes keep the 2 s grid anyway.
FALLBACK_FRAME_RATE = 30.0
# Demuxers allowed when the probe does not name one: the containers ingest accepts (no playlists, no image sequences).
DEFAULT_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv"


@dataclass(frozen=True)
class EncoderSettings:
    """The knobs that are the same for every rendition of a deployment."""

    preset: str = "veryfast"
    """x264 preset."""
    crf: int = 23
    """x264 constant rate factor."""
    threads: int = 2
    """Encoder threads."""


def keyframe_interval(frame_rate: float | None) -> int:
    """Frames per 2-second GOP at the source's frame rate (which the output keeps)."""
    fps = frame_rate if frame_rate and frame_rate > 0 else FALLBACK_FRAME_RATE
    return max(1, round(GOP_SECONDS * fps))


def build_transcode(
    source: Path, output: Path, *, plan: EncodePlan, probe: SourceProbe, encoder: EncoderSettings
) -> ffmpeg.nodes.OutputStream:
    """The ffmpeg-python graph that turns `source` into the planned rendition at `output` (an MP4)."""
    media = ffmpeg.input(str(source), protocol_whitelist="file", format_whitelist=probe.formatName or DEFAULT_DEMUXERS)
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
    ffmpeg_binary: str, source: Path, output: Path, *, plan: EncodePlan, probe: SourceProbe, encoder: EncoderSettings
) -> list[str]:
    """The full command line (argv, no shell) for `build_transcode`."""
    return build_transcode(source, output, plan=plan, probe=probe, encoder=encoder).compile(cmd=ffmpeg_binary)
