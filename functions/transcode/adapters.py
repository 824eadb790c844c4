"""The transcoder's ports on S3, ffmpeg/ffprobe and the event bus, their errors mapped to the service's.

S3: only "the object is not there" is turned into a domain answer (SourceMissing, or None from `find_output`); any
other ClientError is transient or a permissions defect and propagates, so SQS delivers the message again.

The transcoder's role needs s3:GetObject on `uploads/*` and s3:PutObject on `outputs/*`. For the redelivery shortcut
it also needs s3:GetObject on `outputs/*` (HEAD is authorised by GetObject) and s3:ListBucket on the outputs bucket
(without it, HEAD of a key that does not exist answers 403 instead of 404). Until it has them, a 403 on that HEAD is
read as "nothing to reuse" and the rendition is encoded again, which is correct, only slower.

ffmpeg and ffprobe run as child processes with a deadline, live progress and the end of stderr on failure, in
`media_tools.tool_env()`, not the function's environment: a parser of uploaded files has no use for the function's
AWS credentials.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.event_bus import EventPublisher, EventPublishFailed
from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from functions.common.observability import logger
from functions.contracts.events import DetailType, EventDetail
from functions.contracts.fanout import SourceObject
from functions.transcode.service import (
    CONTENT_TYPE,
    EventNotPublished,
    FfmpegFailed,
    FfmpegKilled,
    FfmpegTimedOut,
    OutputMedia,
    OutputUnreadable,
    SourceMissing,
    StoredRendition,
)

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_FORBIDDEN_CODES = frozenset({"403", "AccessDenied", "Forbidden"})
_PRECONDITION_FAILED_CODES = frozenset({"412", "PreconditionFailed"})
_CHUNK_BYTES = 1024 * 1024
STDERR_TAIL_CHARS = 500
PROBE_OPTIONS = ("-v", "error", "-protocol_whitelist", "file", "-print_format", "json", "-show_format", "-show_streams")
PROBE_TIMEOUT_SECONDS = 60


# --- S3 -----------------------------------------------------------------------------------------------------------


def output_key(job_id: str, rendition: str) -> str:
    return f"outputs/{job_id}/{rendition}.mp4"


def output_metadata(job_id: str, rendition: str, media: OutputMedia) -> dict[str, str]:
    """User metadata (x-amz-meta-*) stored with a rendition, so a redelivered message can re-announce it from HEAD."""
    return {
        "job-id": job_id,
        "rendition": rendition,
        "width": str(media.width),
        "height": str(media.height),
        "duration-ms": str(media.durationMs),
    }


def stored_rendition_from_head(
    head: dict[str, Any], bucket: str, key: str, job_id: str, rendition: str
) -> StoredRendition | None:
    """The rendition a HEAD response describes, or None unless its metadata says this job and rendition made it."""
    metadata = head.get("Metadata") or {}
    if metadata.get("job-id") != job_id or metadata.get("rendition") != rendition:
        return None
    facts = [metadata.get(name, "") for name in ("width", "height", "duration-ms")]
    if not all(value.isdigit() for value in facts):
        return None
    width, height, duration_ms = (int(value) for value in facts)
    return StoredRendition(bucket, key, width, height, duration_ms, int(head.get("ContentLength") or 0))


def _error_code(err: ClientError) -> str | None:
    return err.response.get("Error", {}).get("Code")


def _is_not_found(err: ClientError) -> bool:
    return _error_code(err) in _NOT_FOUND_CODES


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


class S3MediaStore:
    """The uploads and outputs buckets, on S3."""

    def __init__(self, s3_client: Any, outputs_bucket: str) -> None:
        self._s3 = s3_client
        self.outputs_bucket = outputs_bucket

    def download_source(self, source: SourceObject, destination: Path) -> None:
        """Copy the source to `destination`; with its `etag`, only the object ingest validated (a presigned POST can
        be reused until it expires, so the key may since hold a file nobody validated)."""
        bucket, key = source.bucket, source.key
        if source.etag is None:
            try:
                self._s3.download_file(bucket, key, str(destination))
            except ClientError as err:
                if _is_not_found(err):
                    raise SourceMissing(f"s3://{bucket}/{key} does not exist") from err
                raise
            return
        # download_file takes no IfMatch, so the one conditional GET is streamed to disk.
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key, IfMatch=_quoted(source.etag))
        except ClientError as err:
            if _is_not_found(err):
                raise SourceMissing(f"s3://{bucket}/{key} does not exist") from err
            if _error_code(err) in _PRECONDITION_FAILED_CODES:
                raise SourceMissing(f"s3://{bucket}/{key} was replaced after it was validated") from err
            raise
        with destination.open("wb") as out:
            for chunk in response["Body"].iter_chunks(_CHUNK_BYTES):
                out.write(chunk)

    def find_output(self, job_id: str, rendition: str) -> StoredRendition | None:
        key = output_key(job_id, rendition)
        try:
            head = self._s3.head_object(Bucket=self.outputs_bucket, Key=key)
        except ClientError as err:
            if _is_not_found(err):
                return None
            if _error_code(err) in _FORBIDDEN_CODES:
                logger.warning("cannot HEAD the output to reuse it (grant s3:GetObject and s3:ListBucket); encoding")
                return None
            raise
        return stored_rendition_from_head(head, self.outputs_bucket, key, job_id, rendition)

    def upload_output(self, path: Path, job_id: str, rendition: str, media: OutputMedia) -> StoredRendition:
        key = output_key(job_id, rendition)
        extra = {"ContentType": CONTENT_TYPE, "Metadata": output_metadata(job_id, rendition, media)}
        self._s3.upload_file(str(path), self.outputs_bucket, key, ExtraArgs=extra)
        return StoredRendition(
            self.outputs_bucket, key, media.width, media.height, media.durationMs, path.stat().st_size
        )


# --- ffmpeg and ffprobe -------------------------------------------------------------------------------------------


def stderr_tail(text: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last non-empty lines of `text` that fit in `limit` characters: where ffmpeg says what went wrong."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tail: list[str] = []
    size = 0
    for line in reversed(lines):
        if tail and size + len(line) + 1 > limit:
            break
        tail.insert(0, line[-limit:])
        size += len(line) + 1
    return "\n".join(tail)


def run_ffmpeg(args: list[str], *, timeout_seconds: float, on_progress_line: Callable[[str], None]) -> None:
    """Run ffmpeg (whose `-progress pipe:1` lines go to `on_progress_line`) and kill it at the deadline."""
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
            errors="replace",
            env=tool_env(),
        )

        def kill_at_deadline() -> None:
            timed_out.set()
            process.kill()

        watchdog = threading.Timer(timeout_seconds, kill_at_deadline)
        watchdog.start()
        try:
            for line in process.stdout or ():
                on_progress_line(line)
            returncode = process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        if timed_out.is_set():
            raise FfmpegTimedOut(f"ffmpeg was still running after {timeout_seconds:.0f} s")
        if returncode < 0:
            raise FfmpegKilled(f"ffmpeg was killed by signal {-returncode}")
        if returncode > 0:
            stderr_file.seek(0)
            raise FfmpegFailed(returncode, stderr_tail(stderr_file.read().decode("utf-8", "replace")))


def probe_file(path: Path, *, timeout_seconds: float = PROBE_TIMEOUT_SECONDS) -> dict[str, Any]:
    """ffprobe's JSON (format and streams) for a local file; FfmpegFailed when it cannot be read."""
    try:
        result = subprocess.run(
            [ffprobe_path(), *PROBE_OPTIONS, str(path)],
            stdin=subprocess.DEVNULL,
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise FfmpegTimedOut(f"ffprobe was still running after {timeout_seconds:.0f} s") from err
    if result.returncode != 0:
        raise FfmpegFailed(result.returncode, stderr_tail(result.stderr))
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise FfmpegFailed(0, f"ffprobe printed no JSON: {err}") from err


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


# --- the event bus ------------------------------------------------------------------------------------------------


class BusEvents:
    """The pipeline's EventPublisher; a refused put (failed entry, ClientError, no connection) is EventNotPublished."""

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def publish(self, detail_type: DetailType, detail: EventDetail) -> None:
        try:
            self._publisher.publish(detail_type, detail)
        except (ClientError, BotoCoreError, EventPublishFailed) as err:
            raise EventNotPublished(str(err)) from err
