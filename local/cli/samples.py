"""Sample media for the demo, generated with the same ffmpeg the transcoders use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from functions.common.media_tools import ffmpeg_path, ffprobe_path


def make_sample_video(path: Path, *, width: int = 1920, height: int = 1080, seconds: float = 4.0) -> Path:
    """An H.264/AAC MP4 of a moving test pattern with a tone."""
    subprocess.run(
        [
            ffmpeg_path(),
            *("-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={seconds}"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
            *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"),
            *("-movflags", "+faststart", "-t", str(seconds), str(path)),
        ],
        check=True,
    )
    return path


def probe_media(path: Path) -> dict[str, Any]:
    """Resolution, duration, bitrate and size of a media file, read with ffprobe."""
    result = subprocess.run(
        [ffprobe_path(), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(result.stdout)
    video = next((s for s in info.get("streams", []) if s.get("codec_type") == "video"), {})
    audio = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), {})
    fmt = info.get("format", {})
    return {
        "width": video.get("width"),
        "height": video.get("height"),
        "videoCodec": video.get("codec_name"),
        "audioCodec": audio.get("codec_name"),
        "durationSeconds": float(fmt.get("duration") or 0),
        "bitRate": int(fmt.get("bit_rate") or 0),
        "sizeBytes": int(fmt.get("size") or path.stat().st_size),
    }
