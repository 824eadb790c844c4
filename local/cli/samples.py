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


def probe_playback(master_url: str) -> list[dict[str, Any]]:
    """The variants ffprobe plays from a signed master playlist over HTTP (it fetches the variants and segments with
    the cookies the CDN sets), smallest first: width, height, bit rate, duration."""
    result = subprocess.run(
        [ffprobe_path(), "-v", "error", "-print_format", "json", "-show_programs", "-show_format", master_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    info = json.loads(result.stdout)
    duration = float(info.get("format", {}).get("duration") or 0)
    variants = []
    for program in info.get("programs", []):
        video = next((s for s in program.get("streams", []) if s.get("codec_type") == "video"), {})
        bandwidth = int(program.get("tags", {}).get("variant_bitrate") or 0)
        variants.append({"width": video.get("width"), "height": video.get("height"), "bandwidth": bandwidth})
    variants.sort(key=lambda v: (v["height"] or 0, v["width"] or 0))
    return [{**v, "durationSeconds": duration} for v in variants]


def make_sample_image(path: Path, *, width: int = 2400, height: int = 1600) -> Path:
    """A JPEG photo stand-in: a gradient sky over hills, with the EXIF a camera writes (make, model, time, GPS) so the
    demo shows what the pipeline keeps and what it strips."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        shade = y * 255 // height
        draw.line([(0, y), (width, y)], fill=(90 + shade // 3, 140 + shade // 4, 255 - shade // 2))
    for index, colour in enumerate(((60, 120, 60), (40, 95, 45), (30, 70, 35))):
        base = height * (6 + index) // 10
        draw.polygon(
            [(0, height), (0, base), (width // 3, base - height // 8), (width, base + height // 20), (width, height)],
            fill=colour,
        )
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "DemoCam", "D-1"  # Make, Model
    exif.get_ifd(0x8769)[0x9003] = "2026:11:30 09:00:00"  # DateTimeOriginal
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 29.6), 3: "E", 4: (2.0, 17.0, 40.1)})  # GPS: never kept
    image.save(path, "JPEG", quality=88, exif=exif)
    return path


def make_sample_audio(path: Path, *, seconds: float = 4.0) -> Path:
    """An MP3 of a quiet two-note chord: the pipeline normalises its loudness."""
    subprocess.run(
        [
            ffmpeg_path(),
            *("-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"),
            *("-f", "lavfi", "-i", f"sine=frequency=660:sample_rate=44100:duration={seconds}"),
            *("-filter_complex", "[0:a][1:a]amix=inputs=2,volume=-20dB,aformat=channel_layouts=stereo"),
            *("-c:a", "libmp3lame", "-b:a", "128k", str(path)),
        ],
        check=True,
    )
    return path
