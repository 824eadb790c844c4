"""The packager's ports on S3 and ffmpeg/ffprobe, their errors mapped to the service's.

S3: the role may GET and PUT `outputs/*` of the outputs bucket and list it (so that a key that is not there answers
404, not 403), and has nothing on the uploads bucket. Only "the rendition is not there" (404) is a domain answer
(RenditionMissing: permanent); any other ClientError, 403 included, is transient or a permissions defect and
propagates, so SQS delivers the message again and, after the last try, parks it in the DLQ. Every file of the
package carries user metadata (x-amz-meta-*) naming the job, the unit (`playback`) and the attempt that made it, as
every other output does.

ffmpeg and ffprobe run through `functions/common/ffmpeg_runner.py`: child processes with a deadline and the end of
stderr on failure, without the function's AWS credentials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import ClientError

from functions.common.ffmpeg_runner import FfmpegFailed, probe_file, run_process
from functions.common.media_tools import ffmpeg_path
from functions.common.unit_adapters import NOT_FOUND_CODES, error_code, object_metadata
from functions.common.unit_worker import OutputUnreadable
from functions.contracts.playback import PackagingSource
from functions.packager.service import PackagedFile, RenditionMedia, RenditionMissing, RenditionRefused

PLAYBACK_UNIT = "playback"
"""The unit named in every package file's metadata (`x-amz-meta-rendition`)."""
UPLOAD_THREADS = 8
"""Files uploaded at once: a long video has thousands of small segments, and each PUT mostly waits."""
_PIPE_READ_BYTES = 64 * 1024


# --- S3 -----------------------------------------------------------------------------------------------------------


class S3PlaybackStore:
    """The outputs bucket, on S3."""

    def __init__(self, s3_client: Any, outputs_bucket: str) -> None:
        self._s3 = s3_client
        self.outputs_bucket = outputs_bucket

    def download_rendition(self, source: PackagingSource, destination: Path) -> None:
        """With the managed transfer's parallel ranged GETs, which a large rendition gains from."""
        try:
            self._s3.download_file(source.bucket, source.key, str(destination))
        except ClientError as err:
            if error_code(err) in NOT_FOUND_CODES:
                raise RenditionMissing(f"rendition {source.rendition} is missing from the job's outputs") from err
            raise

    def upload_files(self, files: Sequence[PackagedFile], job_id: str, *, attempt: int) -> int:
        metadata = object_metadata(job_id, PLAYBACK_UNIT, attempt=attempt)
        if not files:
            return 0

        def upload(packaged: PackagedFile) -> int:
            extra = {"ContentType": packaged.contentType, "Metadata": metadata}
            self._s3.upload_file(str(packaged.path), self.outputs_bucket, packaged.key, ExtraArgs=extra)
            return packaged.path.stat().st_size

        with ThreadPoolExecutor(max_workers=min(UPLOAD_THREADS, len(files)), thread_name_prefix="upload") as pool:
            # list() waits for every upload and re-raises the first error, so a failed PUT fails the message.
            return sum(list(pool.map(upload, files)))


# --- ffmpeg and ffprobe -------------------------------------------------------------------------------------------


def stream_ffmpeg(args: list[str], *, timeout_seconds: float, on_chunk: Callable[[bytes], None]) -> None:
    """Run ffmpeg, hand its stdout to `on_chunk` as it is written, kill it at the deadline."""

    def read_chunks(stdout: IO[bytes]) -> None:
        while chunk := stdout.read(_PIPE_READ_BYTES):
            on_chunk(chunk)

    run_process(args, timeout_seconds=timeout_seconds, read_stdout=read_chunks)


def frame_rate(value: Any) -> float | None:
    """Frames per second from ffprobe's `30000/1001`; None for `0/0` or anything unreadable."""
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate > 0 else None


def _seconds_to_ms(value: Any) -> int:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 0
    return round(seconds * 1000) if math.isfinite(seconds) and seconds > 0 else 0


def _optional_int(value: Any) -> int | None:
    return int(value) if value is not None and str(value).lstrip("-").isdigit() else None


def parse_rendition_probe(report: dict[str, Any]) -> RenditionMedia:
    """A rendition as `ffprobe -show_format -show_streams -print_format json` describes it: its first video stream
    (size, duration, frame rate, codec, H.264 profile and level) and its first audio stream's codec and profile.
    Without a video stream, the video facts are empty (no codec, size 0), which the service refuses."""
    streams = report.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), {})
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration_ms = _seconds_to_ms(video.get("duration")) or _seconds_to_ms((report.get("format") or {}).get("duration"))
    return RenditionMedia(
        width=_optional_int(video.get("width")) or 0,
        height=_optional_int(video.get("height")) or 0,
        durationMs=duration_ms,
        frameRate=frame_rate(video.get("avg_frame_rate")) or frame_rate(video.get("r_frame_rate")),
        videoCodec=video.get("codec_name"),
        profile=video.get("profile"),
        level=_optional_int(video.get("level")),
        audioCodec=audio.get("codec_name") if audio else None,
        audioProfile=audio.get("profile") if audio else None,
    )


class FfmpegTools:
    """ffmpeg and ffprobe as child processes."""

    def ffmpeg_binary(self) -> str:
        return ffmpeg_path()

    def run_ffmpeg(self, args: list[str], *, timeout_seconds: float) -> None:
        run_process(args, timeout_seconds=timeout_seconds, read_stdout=None)

    def stream_ffmpeg(self, args: list[str], *, timeout_seconds: float, on_chunk: Callable[[bytes], None]) -> None:
        stream_ffmpeg(args, timeout_seconds=timeout_seconds, on_chunk=on_chunk)

    def read_rendition(self, path: Path) -> RenditionMedia:
        try:
            return parse_rendition_probe(probe_file(path))
        except FfmpegFailed as err:
            reason = str(err).replace(str(path), path.name)
            raise RenditionRefused(f"rendition {path.stem} cannot be read: {reason}") from err

    def read_image_size(self, path: Path) -> tuple[int, int]:
        if not path.is_file():
            raise OutputUnreadable(f"ffmpeg wrote no {path.name}")
        try:
            report = probe_file(path)
        except FfmpegFailed as err:
            raise OutputUnreadable(f"{path.name} does not read back: {err}") from err
        video = next((s for s in report.get("streams") or [] if s.get("codec_type") == "video"), None)
        if video is None:
            raise OutputUnreadable(f"{path.name} is not an image")
        return _optional_int(video.get("width")) or 0, _optional_int(video.get("height")) or 0
