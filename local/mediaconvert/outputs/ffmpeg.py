"""ffmpeg and ffprobe for the local MediaConvert: the commands its settings stand for, and running them with progress.

Commands are built with ffmpeg-python, as the Lambda transcoder's are (functions/transcode/service.py), with the
same x264 preset and the same guard on untrusted input: the source is opened with `-protocol_whitelist file` and only
container demuxers (`INPUT_FORMATS`: no playlists, no image sequences), so a crafted upload cannot make ffmpeg read
other files or the network. The tools run with `media_tools.tool_env()` (no AWS credentials).

An encode (`encode_args`) writes one MP4 per distinct video + audio description: H.264 by libx264 (QVBR as CRF capped
by -maxrate/-bufsize; CBR and VBR by bitrate), keyframes on the GOP grid, AAC, the index first.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from functions.transcode.service import FALLBACK_FRAME_RATE, EncoderSettings
from local.mediaconvert.settings import AudioSpec, InputSpec, VideoSpec

# Container demuxers of the files MediaConvert takes as inputs (by ffmpeg's demuxer names).
INPUT_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,flv,mxf,asf"
PROGRESS_ARGS = ("-nostdin", "-loglevel", "error", "-nostats", "-progress", "pipe:1")
STDERR_LINES_KEPT = 20
PROBE_TIMEOUT_SECONDS = 60
WATCH_SECONDS = 0.2


class ProbeFailed(RuntimeError):
    """ffprobe could not read the file as media."""


class FfmpegFailed(RuntimeError):
    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(stderr or f"ffmpeg exited with {returncode}")
        self.returncode = returncode
        self.stderr = stderr


class FfmpegCancelled(RuntimeError):
    """The run was stopped because the job was canceled (or the local cloud is stopping)."""


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a file: the first video stream (display size) and whether there is audio."""

    duration_s: float
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    frame_rate: float | None
    video_codec: str
    pixel_format: str | None
    sample_aspect_ratio: str | None
    has_audio: bool
    audio_codec: str | None
    format_name: str

    @property
    def duration_ms(self) -> int:
        return round(self.duration_s * 1000)


def probe_args(path: Path) -> list[str]:
    return [
        ffprobe_path(),
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        INPUT_FORMATS,
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        f"file:{path}",
    ]


def _rate(value: Any) -> float | None:
    numerator, _, denominator = str(value or "").partition("/")
    try:
        rate = float(numerator) / float(denominator or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return rate if rate > 0 else None


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return round(float(side["rotation"])) % 360
    return 0


def media_info(raw: dict[str, Any]) -> MediaInfo:
    """ffprobe's JSON as MediaInfo; raises ProbeFailed when it holds no video stream with a size and a duration."""
    streams = [s for s in raw.get("streams") or [] if isinstance(s, dict)]
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")),
        None,
    )
    if video is None or not video.get("width") or not video.get("height"):
        raise ProbeFailed("no video stream with a frame size")
    fmt = raw.get("format") or {}
    try:
        duration = float(fmt.get("duration") or video.get("duration"))
    except (TypeError, ValueError) as err:
        raise ProbeFailed("no readable duration") from err
    rotation = _rotation(video)
    coded_width, coded_height = int(video["width"]), int(video["height"])
    width, height = (coded_height, coded_width) if rotation in (90, 270) else (coded_width, coded_height)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    return MediaInfo(
        duration_s=duration,
        width=width,
        height=height,
        coded_width=coded_width,
        coded_height=coded_height,
        rotation=rotation,
        frame_rate=_rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")),
        video_codec=str(video.get("codec_name") or ""),
        pixel_format=video.get("pix_fmt"),
        sample_aspect_ratio=video.get("sample_aspect_ratio"),
        has_audio=audio is not None,
        audio_codec=audio.get("codec_name") if audio else None,
        format_name=str(fmt.get("format_name") or ""),
    )


def probe(path: Path) -> MediaInfo:
    """MediaInfo of a local file; raises ProbeFailed with ffprobe's reason."""
    try:
        result = subprocess.run(
            probe_args(path), check=False, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS, env=tool_env()
        )
    except subprocess.TimeoutExpired as err:
        raise ProbeFailed(f"ffprobe did not finish within {PROBE_TIMEOUT_SECONDS} s") from err
    if result.returncode != 0:
        raise ProbeFailed(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "ffprobe failed")
    try:
        return media_info(json.loads(result.stdout))
    except json.JSONDecodeError as err:
        raise ProbeFailed("ffprobe printed no JSON") from err


# --- commands -------------------------------------------------------------------------------------------------


def qvbr_crf(quality_level: int) -> int:
    """x264 CRF for a QVBR quality level (1-10): level 7, MediaConvert's usual choice, is the transcoder's CRF 23."""
    return max(0, min(51, 51 - 4 * quality_level))


def _open(source: Path, spec: InputSpec) -> Any:
    options: dict[str, Any] = {"protocol_whitelist": "file", "format_whitelist": INPUT_FORMATS}
    if not spec.auto_rotate:
        options["noautorotate"] = None
    return ffmpeg.input(str(source), **options)


def _display_size(spec: InputSpec, info: MediaInfo) -> tuple[int, int]:
    return (info.width, info.height) if spec.auto_rotate else (info.coded_width, info.coded_height)


def output_size(width: int | None, height: int | None, source: tuple[int, int]) -> tuple[int, int]:
    """The frame size of an output: as specified, a missing side from the source's aspect ratio (even), else the
    source's own size."""
    if width and height:
        return width, height
    if width:
        return width, max(2, round(width * source[1] / source[0] / 2) * 2)
    if height:
        return max(2, round(height * source[0] / source[1] / 2) * 2), height
    return source


def _scaled(stream: Any, size: tuple[int, int], stretch: bool) -> Any:
    width, height = size
    if stretch:
        return stream.filter("scale", width, height)
    fitted = stream.filter("scale", width, height, force_original_aspect_ratio="decrease", force_divisible_by=2)
    return fitted.filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2")


def _video_options(video: VideoSpec, frame_rate: float, encoder: EncoderSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "c:v": "libx264",
        "profile:v": video.profile,
        "pix_fmt": "yuv420p",
        "preset": encoder.preset,
    }
    if video.rate_control == "QVBR":
        cap = int(video.max_bitrate or 0)
        options |= {"crf": qvbr_crf(video.quality_level or 7), "maxrate": cap, "bufsize": video.buffer_size or 2 * cap}
    elif video.rate_control == "CBR":
        rate = int(video.bitrate or 0)
        options |= {"b:v": rate, "minrate": rate, "maxrate": rate, "bufsize": video.buffer_size or 2 * rate}
    else:
        rate = int(video.bitrate or 0)
        cap = int(video.max_bitrate or rate)
        options |= {"b:v": rate, "maxrate": cap, "bufsize": video.buffer_size or 2 * cap}
    keyint = int(video.gop_size) if video.gop_in_frames else max(1, round(video.gop_size * frame_rate))
    options |= {"g": keyint, "keyint_min": keyint}
    if not video.scene_change_keyframes:
        options["sc_threshold"] = 0
    if not video.gop_in_frames:
        options["force_key_frames"] = f"expr:gte(t,n_forced*{video.gop_size:g})"
    return options


def encode_args(
    source: Path,
    output: Path,
    *,
    input_spec: InputSpec,
    video: VideoSpec,
    audio: AudioSpec | None,
    info: MediaInfo,
    encoder: EncoderSettings | None = None,
) -> list[str]:
    """One encode: H.264 (+ AAC when `audio`) in an MP4 with the index first, at `output`."""
    encoder = encoder or EncoderSettings()
    media = _open(source, input_spec)
    stream = media["v:0"]
    frame_rate = info.frame_rate or FALLBACK_FRAME_RATE
    if video.frame_rate is not None:
        stream = stream.filter("fps", fps=f"{video.frame_rate[0]}/{video.frame_rate[1]}")
        frame_rate = video.frame_rate[0] / video.frame_rate[1]
    size = output_size(video.width, video.height, _display_size(input_spec, info))
    stream = _scaled(stream, size, video.stretch)
    if video.pixel_aspect is not None:
        stream = stream.filter("setsar", f"{video.pixel_aspect[0]}/{video.pixel_aspect[1]}")
    options = _video_options(video, frame_rate, encoder)
    if audio is not None:
        streams = [stream, media["a:0"]]
        options |= {"c:a": "aac", "b:a": audio.bitrate, "ar": audio.sample_rate, "ac": audio.channels}
    else:
        streams = [stream]
        options["an"] = None
    options |= {"movflags": "+faststart", "map_metadata": -1}
    graph = ffmpeg.output(*streams, str(output), format="mp4", **options)
    return graph.global_args(*PROGRESS_ARGS).overwrite_output().compile(cmd=ffmpeg_path())


# --- running --------------------------------------------------------------------------------------------------

Progress = Callable[[float, int], None]
"""Called with the output time reached (seconds) and the frames written so far."""


def run_ffmpeg(args: list[str], *, on_progress: Progress, cancelled: Callable[[], bool], timeout: float) -> None:
    """Runs ffmpeg, reporting `-progress` as it comes. A watchdog kills it once `cancelled()` or after `timeout`
    seconds, whether or not it is still reporting.

    Raises FfmpegCancelled, or FfmpegFailed with the last lines of its log (or the timeout).
    """
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tool_env(), stdin=subprocess.DEVNULL
    )
    assert process.stdout is not None and process.stderr is not None
    log: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
    reader = threading.Thread(target=lambda: log.extend(line.rstrip() for line in process.stderr), daemon=True)
    reader.start()
    verdict: list[str] = []
    finished = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not finished.wait(WATCH_SECONDS):
            if cancelled():
                verdict.append("cancelled")
            elif time.monotonic() > deadline:
                verdict.append("timeout")
            else:
                continue
            process.kill()
            return

    watchdog = threading.Thread(target=watch, name="ffmpeg-watchdog", daemon=True)
    watchdog.start()
    frames = 0
    try:
        for line in process.stdout:
            key, _, value = line.strip().partition("=")
            if key == "frame" and value.isdigit():
                frames = int(value)
            elif key == "out_time_us" and value.lstrip("-").isdigit():
                on_progress(max(0, int(value)) / 1e6, frames)
    except BaseException:
        process.kill()
        raise
    finally:
        process.wait()
        finished.set()
        watchdog.join()
        reader.join(timeout=5)
    if verdict == ["cancelled"]:
        raise FfmpegCancelled("stopped")
    if verdict == ["timeout"]:
        raise FfmpegFailed(process.returncode, f"ffmpeg did not finish within {timeout:.0f} s")
    if process.returncode != 0:
        raise FfmpegFailed(process.returncode, "\n".join(log))
