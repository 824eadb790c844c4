"""Test media generated on the spot with ffmpeg: nothing binary is committed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env


def make_video(
    path: Path,
    *,
    width: int = 1920,
    height: int = 1080,
    seconds: float = 2.0,
    audio: bool = True,
    rotation: int | None = None,
    fps: int = 30,
) -> Path:
    """An H.264/AAC MP4 of a moving test pattern (plus a tone when `audio`); `rotation` sets the display matrix."""
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k"]
    encoded = path.with_suffix(".unrotated.mp4") if rotation is not None else path
    args += ["-t", str(seconds), str(encoded)]
    subprocess.run(args, check=True, env=tool_env())
    if rotation is not None:
        # Phones store portrait video as landscape frames plus a display matrix; a stream copy keeps it that way.
        remux = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y"]
        display = [*remux, "-display_rotation", str(rotation), "-i", str(encoded), "-c", "copy", str(path)]
        if subprocess.run(display, check=False, capture_output=True, env=tool_env()).returncode != 0:
            # ffmpeg before 6.0 has no -display_rotation; its MP4 muxer writes the same display matrix from the legacy
            # `rotate` tag.
            legacy = [*remux, "-i", str(encoded), "-c", "copy", "-metadata:s:v:0", f"rotate={rotation}"]
            subprocess.run([*legacy, str(path)], check=True, env=tool_env())
        encoded.unlink()
    return path


def probe(path: Path) -> dict:
    """ffprobe's JSON for a file: format and streams."""
    result = subprocess.run(
        [ffprobe_path(), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=tool_env(),
    )
    return json.loads(result.stdout)


def is_faststart(path: Path) -> bool:
    """True when the moov atom precedes mdat, so playback can start before the download ends."""
    data = path.read_bytes()
    moov, mdat = data.find(b"moov"), data.find(b"mdat")
    return 0 <= moov < mdat
