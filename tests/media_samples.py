"""Test media generated on the spot with ffmpeg: nothing binary is committed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

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


# --- images ----------------------------------------------------------------------------------------------------------
# Made with Pillow on the spot. A red square marks the top-left corner of what a viewer should see, so a test can
# tell an upright output from a rotated one.

MARKER = (255, 0, 0)
GPS_LATITUDE = (48.0, 51.0, 29.64)


def _pattern(width: int, height: int) -> Any:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, max(8, width // 12)):
        draw.line([(x, 0), (x, height)], fill=(230, 230, 230), width=max(1, width // 200))
    side = max(4, min(width, height) // 6)
    draw.rectangle([0, 0, side, side], fill=MARKER)
    return image


def exif_rotated_jpeg(path: Path, *, width: int = 1200, height: int = 800) -> Path:
    """A portrait photo stored as landscape pixels with EXIF orientation 6 (rotate 90° clockwise to view), with GPS,
    camera make/model and capture time. Displayed upright it is `height` x `width`, the marker top-left."""
    from PIL import Image

    upright = _pattern(height, width)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what orientation 6 turns back clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "TestCam"  # Make
    exif[0x0110] = "Model X"  # Model
    exif.get_ifd(0x8769)[0x9003] = "2026:11:30 12:34:56"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: GPS_LATITUDE, 3: "E", 4: (2.0, 17.0, 40.14)})
    stored.save(path, "JPEG", exif=exif, quality=90)
    return path


def cmyk_jpeg(path: Path, *, width: int = 640, height: int = 480, icc_profile: bytes | None = None) -> Path:
    """A CMYK JPEG (as print workflows make them), with `icc_profile` (a CMYK profile's bytes) embedded if given."""
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    _pattern(width, height).convert("CMYK").save(path, "JPEG", quality=90, **extra)
    return path


def rgba_png(path: Path, *, width: int = 800, height: int = 600) -> Path:
    """An RGBA PNG whose right half is fully transparent."""
    image = _pattern(width, height).convert("RGBA")
    alpha = image.getchannel("A").point(lambda _: 255)
    alpha.paste(0, (width // 2, 0, width, height))
    image.putalpha(alpha)
    image.save(path, "PNG")
    return path


def palette_png(path: Path, *, width: int = 400, height: int = 300) -> Path:
    """A palette PNG whose index 0 is transparent (the `transparency` chunk)."""
    image = _pattern(width, height).convert("P", palette=1, colors=16)  # 1 = Palette.ADAPTIVE
    image.save(path, "PNG", transparency=0)
    return path


def png_16bit(path: Path, *, width: int = 320, height: int = 240) -> Path:
    """A 16-bit greyscale PNG (mode I;16) with a full-range horizontal gradient."""
    from PIL import Image

    image = Image.new("I;16", (width, height))
    image.putdata([(x * 65535) // (width - 1) for _ in range(height) for x in range(width)])
    image.save(path, "PNG")
    return path


def animated_gif(path: Path, *, width: int = 320, height: int = 240, frames: int = 6) -> Path:
    """An animated GIF; its first frame carries the marker."""
    first = _pattern(width, height)
    others = [first.rotate(15 * (index + 1)) for index in range(frames - 1)]
    first.save(path, "GIF", save_all=True, append_images=others, duration=100, loop=0)
    return path


def large_webp(path: Path, *, width: int = 6000, height: int = 4000) -> Path:
    _pattern(width, height).save(path, "WEBP", quality=60, method=0)
    return path


def avif_image(path: Path, *, width: int = 640, height: int = 480) -> Path:
    _pattern(width, height).save(path, "AVIF", quality=60)
    return path


def truncated_jpeg(path: Path, *, width: int = 1024, height: int = 768) -> Path:
    """A JPEG cut off after 60% of its bytes, as an interrupted transfer leaves one."""
    whole = path.with_suffix(".whole.jpg")
    _pattern(width, height).save(whole, "JPEG", quality=95)
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def png_claiming(path: Path, *, width: int, height: int) -> Path:
    """A tiny PNG whose header claims `width` x `height` pixels: the classic decompression bomb's front."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


# --- audio -----------------------------------------------------------------------------------------------------------

AUDIO_CONTAINERS = {
    "mp3": ("libmp3lame", "mp3"),
    "m4a": ("aac", "ipod"),
    "wav": ("pcm_s16le", "wav"),
    "flac": ("flac", "flac"),
    "ogg": ("libopus", "ogg"),
    "webm": ("libopus", "webm"),
    "aac": ("aac", "adts"),
}
"""A file extension -> (ffmpeg's encoder, its muxer) for the audio containers the pipeline accepts."""


def make_tone(path: Path, *, seconds: float = 3.0, volume_db: float = -12.0, frequency: int = 440) -> Path:
    """A stereo sine tone at `volume_db`, in the container `path`'s extension names (see AUDIO_CONTAINERS)."""
    encoder, muxer = AUDIO_CONTAINERS[path.suffix.lstrip(".")]
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=48000:duration={seconds}"]
    args += ["-af", f"volume={volume_db}dB", "-ac", "2", "-c:a", encoder, "-f", muxer, str(path)]
    subprocess.run(args, check=True, env=tool_env())
    return path


def text_file(path: Path) -> Path:
    """Plain text, whatever name it is given: no image, audio or video inside."""
    path.write_text("just some notes, not a picture\n" * 40)
    return path
