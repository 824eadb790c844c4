"""The transcoder's ports on S3 and ffmpeg/ffprobe, their errors mapped to the service's.

S3 and the bus are the unit functions' shared adapters (`functions/common/unit_adapters.py`, which says what the
role needs and which errors are a domain answer); here is what the transcoder stores with a rendition and when it
reuses one.

ffmpeg and ffprobe run through `functions/common/ffmpeg_runner.py`: child processes with a deadline, live progress
and the end of stderr on failure, without the function's AWS credentials.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import ClientError

from functions.common.ffmpeg_runner import FfmpegFailed, probe_file, run_process
from functions.common.media_tools import ffmpeg_path
from functions.common.observability import logger
from functions.common.unit_adapters import (
    FORBIDDEN_CODES,
    NOT_FOUND_CODES,
    S3UnitStore,
    error_code,
    made_by,
    object_metadata,
    source_unavailable,
)
from functions.common.unit_worker import OutputUnreadable, SourceMissing, StoredOutput
from functions.contracts.fanout import SourceObject
from functions.transcode.service import CONTENT_TYPE, OutputMedia

PART_CONTENT_TYPE = "application/octet-stream"  # a part is for the stitch, never served

# --- S3 -----------------------------------------------------------------------------------------------------------


def output_key(job_id: str, rendition: str) -> str:
    return f"outputs/{job_id}/{rendition}.mp4"


def part_key(job_id: str, rendition: str, part: str, *, attempt: int) -> str:
    """Where a part of a segment-parallel rendition is kept until the stitch (under the job's prefix, so a deleted
    job's parts go with it)."""
    return f"outputs/{job_id}/segments/{rendition}/{attempt}/{part}"


def output_metadata(job_id: str, rendition: str, media: OutputMedia, *, attempt: int) -> dict[str, str]:
    """User metadata (x-amz-meta-*) stored with a rendition, so a redelivered message can re-announce it from HEAD."""
    return object_metadata(
        job_id, rendition, attempt=attempt, width=media.width, height=media.height, duration_ms=media.durationMs
    )


def stored_rendition_from_head(
    head: dict[str, Any], bucket: str, key: str, job_id: str, rendition: str, *, attempt: int
) -> StoredOutput | None:
    """The rendition a HEAD response describes, or None unless its metadata says this job's attempt made it for this
    rendition, at a size and duration it states."""
    metadata = head.get("Metadata") or {}
    if not made_by(metadata, job_id, rendition, attempt):
        return None
    facts = [metadata.get(name, "") for name in ("width", "height", "duration-ms")]
    if not all(value.isdigit() for value in facts):
        return None
    width, height, duration_ms = (int(value) for value in facts)
    return StoredOutput(bucket, key, int(head.get("ContentLength") or 0), CONTENT_TYPE, width, height, duration_ms)


class S3MediaStore(S3UnitStore):
    """The uploads and outputs buckets, on S3."""

    def download_source(self, source: SourceObject, destination: Path) -> None:
        """As every unit function does with an ETag; without one (nothing to match), with the managed transfer's
        parallel ranged GETs, which a large video gains from."""
        if source.etag:
            super().download_source(source, destination)
            return
        try:
            self._s3.download_file(source.bucket, source.key, str(destination))
        except ClientError as err:
            unavailable = source_unavailable(err, source)
            if unavailable is None:
                raise
            raise unavailable from err

    def download_source_window(
        self, source: SourceObject, destination: Path, *, start_seconds: float, seconds: float, format_name: str | None
    ) -> None:
        """The whole source, for now: every segment unit reads all of it."""
        del start_seconds, seconds, format_name
        self.download_source(source, destination)

    def find_output(self, job_id: str, rendition: str, *, attempt: int) -> StoredOutput | None:
        key = output_key(job_id, rendition)
        head = self.head_output(key)
        if head is None:
            return None
        return stored_rendition_from_head(head, self.outputs_bucket, key, job_id, rendition, attempt=attempt)

    def upload_output(
        self, path: Path, job_id: str, rendition: str, media: OutputMedia, *, attempt: int
    ) -> StoredOutput:
        key = output_key(job_id, rendition)
        metadata = output_metadata(job_id, rendition, media, attempt=attempt)
        size = self.upload_file(path, key, content_type=CONTENT_TYPE, metadata=metadata)
        return StoredOutput(self.outputs_bucket, key, size, CONTENT_TYPE, media.width, media.height, media.durationMs)

    def find_part(self, job_id: str, rendition: str, part: str, *, attempt: int) -> bool:
        head = self.head_output(part_key(job_id, rendition, part, attempt=attempt))
        return head is not None and made_by(head.get("Metadata") or {}, job_id, rendition, attempt)

    def upload_part(self, path: Path, job_id: str, rendition: str, part: str, *, attempt: int) -> int:
        metadata = object_metadata(job_id, rendition, attempt=attempt, plan=part)
        key = part_key(job_id, rendition, part, attempt=attempt)
        return self.upload_file(path, key, content_type=PART_CONTENT_TYPE, metadata=metadata)

    def download_part(self, job_id: str, rendition: str, part: str, destination: Path, *, attempt: int) -> None:
        key = part_key(job_id, rendition, part, attempt=attempt)
        try:
            self._s3.download_file(self.outputs_bucket, key, str(destination))
        except ClientError as err:
            if error_code(err) not in NOT_FOUND_CODES | FORBIDDEN_CODES:
                raise
            logger.warning("a part of the rendition is missing", extra={"key": key, "s3": error_code(err)})
            raise SourceMissing(f"part {part} is not stored") from err

    def delete_parts(self, job_id: str, rendition: str, parts: list[str], *, attempt: int) -> None:
        keys = [{"Key": part_key(job_id, rendition, part, attempt=attempt)} for part in parts]
        try:
            response = self._s3.delete_objects(Bucket=self.outputs_bucket, Delete={"Objects": keys, "Quiet": True})
        except ClientError as err:
            logger.warning("the parts could not be deleted; the job's deletion removes them", extra={"s3": str(err)})
            return
        if response.get("Errors"):
            logger.warning("some parts could not be deleted", extra={"errors": response["Errors"][:3]})


# --- ffmpeg and ffprobe -------------------------------------------------------------------------------------------


def run_ffmpeg(args: list[str], *, timeout_seconds: float, on_progress_line: Callable[[str], None]) -> None:
    """Run ffmpeg (whose `-progress pipe:1` lines go to `on_progress_line`) and kill it at the deadline."""

    def read_progress(stdout: IO[bytes]) -> None:
        for line in io.TextIOWrapper(stdout, errors="replace"):
            on_progress_line(line)

    run_process(args, timeout_seconds=timeout_seconds, read_stdout=read_progress)


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


class FfmpegTools:
    """ffmpeg and ffprobe as child processes."""

    def ffmpeg_binary(self) -> str:
        return ffmpeg_path()

    def run_ffmpeg(self, args: list[str], *, timeout_seconds: float, on_progress_line: Callable[[str], None]) -> None:
        run_ffmpeg(args, timeout_seconds=timeout_seconds, on_progress_line=on_progress_line)

    def read_output(self, path: Path) -> OutputMedia:
        try:
            return parse_output_probe(probe_file(path))
        except FfmpegFailed as err:
            raise OutputUnreadable(str(err)) from err
