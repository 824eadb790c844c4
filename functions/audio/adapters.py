"""The audio function's ports on S3, ffmpeg/ffprobe, Pillow and the event bus, their errors mapped to the service's.

S3: only "the object is not there" (and, for the source, "it is no longer the object ingest validated": 412 on the
IfMatch GET) is turned into a domain answer (SourceMissing, or None from `find_output`); any other ClientError is
transient or a permissions defect and propagates, so SQS delivers the message again.

The function's role needs s3:GetObject on `uploads/*` and s3:PutObject on `outputs/*`; for the redelivery shortcut
also s3:GetObject on `outputs/*` (HEAD is authorised by GetObject) and s3:ListBucket on the outputs bucket (without
it, HEAD of a key that does not exist answers 403, which is read as "nothing to reuse": correct, only slower).

ffmpeg and ffprobe run as child processes with a deadline and the end of stderr on failure, in
`media_tools.tool_env()`, not the function's environment: a parser of uploaded files has no use for the function's
AWS credentials.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image, ImageDraw

from functions.audio.service import (
    AudioMedia,
    EventNotPublished,
    FfmpegFailed,
    FfmpegKilled,
    FfmpegTimedOut,
    OutputFacts,
    OutputUnreadable,
    SourceMissing,
    StoredOutput,
)
from functions.common.event_bus import EventPublisher, EventPublishFailed
from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from functions.common.observability import logger
from functions.contracts.events import DetailType, EventDetail
from functions.contracts.fanout import SourceObject

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_FORBIDDEN_CODES = frozenset({"403", "AccessDenied", "Forbidden"})
_PRECONDITION_FAILED_CODES = frozenset({"412", "PreconditionFailed"})
_CHUNK_BYTES = 1024 * 1024
_PIPE_READ_BYTES = 64 * 1024
STDERR_TAIL_CHARS = 500
STDERR_KEPT_BYTES = 256 * 1024
"""The end of ffmpeg's stderr that is kept: loudnorm's report is its last lines, whatever warnings came before."""
PROBE_OPTIONS = ("-v", "error", "-protocol_whitelist", "file", "-print_format", "json", "-show_format", "-show_streams")
PROBE_TIMEOUT_SECONDS = 60
WAVEFORM_COLOUR = (37, 99, 235, 255)
"""The bars' colour, opaque, on a transparent background: the PNG sits on any page."""


# --- S3 -----------------------------------------------------------------------------------------------------------


def output_metadata(job_id: str, unit: str, facts: OutputFacts) -> dict[str, str]:
    """User metadata (x-amz-meta-*) stored with an output, so a redelivered message can re-announce it from HEAD."""
    metadata = {"job-id": job_id, "rendition": unit, "plan": facts.plan}
    for name, value in (("width", facts.width), ("height", facts.height), ("duration-ms", facts.durationMs)):
        if value is not None:
            metadata[name] = str(value)
    return metadata


def stored_output_from_head(head: dict[str, Any], bucket: str, key: str, job_id: str, unit: str) -> StoredOutput | None:
    """The output a HEAD response describes, or None unless its metadata says this job and unit made it."""
    metadata = head.get("Metadata") or {}
    if metadata.get("job-id") != job_id or metadata.get("rendition") != unit or not metadata.get("plan"):
        return None
    numbers: dict[str, int | None] = {}
    for name in ("width", "height", "duration-ms"):
        value = metadata.get(name)
        if value is not None and not value.isdigit():
            return None
        numbers[name] = int(value) if value is not None else None
    facts = OutputFacts(
        contentType=str(head.get("ContentType") or ""),
        plan=metadata["plan"],
        width=numbers["width"],
        height=numbers["height"],
        durationMs=numbers["duration-ms"],
    )
    return StoredOutput(bucket, key, int(head.get("ContentLength") or 0), facts)


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
        options = {"IfMatch": _quoted(source.etag)} if source.etag else {}
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key, **options)
        except ClientError as err:
            if _is_not_found(err):
                raise SourceMissing(f"s3://{bucket}/{key} does not exist") from err
            if _error_code(err) in _PRECONDITION_FAILED_CODES:
                raise SourceMissing(f"s3://{bucket}/{key} was replaced after it was validated") from err
            raise
        with destination.open("wb") as out:
            for chunk in response["Body"].iter_chunks(_CHUNK_BYTES):
                out.write(chunk)

    def find_output(self, job_id: str, unit: str, key: str) -> StoredOutput | None:
        try:
            head = self._s3.head_object(Bucket=self.outputs_bucket, Key=key)
        except ClientError as err:
            if _is_not_found(err):
                return None
            if _error_code(err) in _FORBIDDEN_CODES:
                logger.warning("cannot HEAD the output to reuse it (grant s3:GetObject and s3:ListBucket); redoing it")
                return None
            raise
        return stored_output_from_head(head, self.outputs_bucket, key, job_id, unit)

    def upload_output(self, path: Path, job_id: str, unit: str, key: str, facts: OutputFacts) -> StoredOutput:
        extra = {"ContentType": facts.contentType, "Metadata": output_metadata(job_id, unit, facts)}
        self._s3.upload_file(str(path), self.outputs_bucket, key, ExtraArgs=extra)
        return StoredOutput(self.outputs_bucket, key, path.stat().st_size, facts)


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


def _read_end(stderr_file: IO[bytes]) -> str:
    stderr_file.seek(0, 2)
    stderr_file.seek(max(0, stderr_file.tell() - STDERR_KEPT_BYTES))
    return stderr_file.read().decode("utf-8", "replace")


def _run(args: list[str], timeout_seconds: float, on_chunk: Callable[[bytes], None] | None) -> str:
    """Run ffmpeg with a deadline; stdout to `on_chunk` (or nowhere); the end of its stderr returned."""
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if on_chunk else subprocess.DEVNULL,
            stderr=stderr_file,
            env=tool_env(),
        )

        def kill_at_deadline() -> None:
            timed_out.set()
            process.kill()

        watchdog = threading.Timer(timeout_seconds, kill_at_deadline)
        watchdog.start()
        try:
            if on_chunk is not None and process.stdout is not None:
                while chunk := process.stdout.read(_PIPE_READ_BYTES):
                    on_chunk(chunk)
            returncode = process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if timed_out.is_set():
            raise FfmpegTimedOut(f"ffmpeg was still running after {timeout_seconds:.0f} s")
        if returncode < 0:
            raise FfmpegKilled(f"ffmpeg was killed by signal {-returncode}")
        stderr = _read_end(stderr_file)
        if returncode > 0:
            raise FfmpegFailed(returncode, stderr_tail(stderr))
        return stderr


def run_ffmpeg(args: list[str], *, timeout_seconds: float) -> str:
    """Run ffmpeg, kill it at the deadline, return (the end of) what it wrote to stderr."""
    return _run(args, timeout_seconds, None)


def stream_ffmpeg(args: list[str], *, timeout_seconds: float, on_chunk: Callable[[bytes], None]) -> None:
    """Run ffmpeg, hand its stdout to `on_chunk` as it is written, kill it at the deadline."""
    _run(args, timeout_seconds, on_chunk)


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


def _optional_int(value: Any) -> int | None:
    return int(value) if value is not None and str(value).isdigit() else None


def parse_audio_probe(report: dict[str, Any]) -> AudioMedia:
    """The AAC rendition as `ffprobe -show_format -show_streams -print_format json` describes it."""
    streams = report.get("streams") or []
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio:
        raise OutputUnreadable("no audio stream in the output")
    fmt = report.get("format") or {}
    duration = fmt.get("duration") or audio[0].get("duration")
    try:
        seconds = float(duration) if duration is not None else 0.0
        size = int(fmt.get("size") or 0)
    except ValueError as err:
        raise OutputUnreadable(f"the output's duration or size is not a number: {err}") from err
    return AudioMedia(
        codec=audio[0].get("codec_name"),
        durationMs=round(seconds * 1000) if math.isfinite(seconds) else 0,
        sampleRate=_optional_int(audio[0].get("sample_rate")),
        channels=_optional_int(audio[0].get("channels")),
        bytes=size,
        otherStreams=len(streams) - 1,
    )


class FfmpegTools:
    """ffmpeg and ffprobe as child processes."""

    def ffmpeg_binary(self) -> str:
        return ffmpeg_path()

    def run_ffmpeg(self, args: list[str], *, timeout_seconds: float) -> str:
        return run_ffmpeg(args, timeout_seconds=timeout_seconds)

    def stream_ffmpeg(self, args: list[str], *, timeout_seconds: float, on_chunk: Callable[[bytes], None]) -> None:
        stream_ffmpeg(args, timeout_seconds=timeout_seconds, on_chunk=on_chunk)

    def read_audio(self, path: Path) -> AudioMedia:
        try:
            return parse_audio_probe(probe_file(path))
        except FfmpegFailed as err:
            raise OutputUnreadable(str(err)) from err


# --- Pillow -------------------------------------------------------------------------------------------------------


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


class PillowWaveform:
    """The waveform PNG, drawn with Pillow: one bar per column, symmetric about the middle row, on transparency."""

    def render(self, levels: Sequence[float], *, width: int, height: int, destination: Path) -> tuple[int, int]:
        image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        middle = (height - 1) / 2
        for x, level in enumerate(levels[:width]):
            reach = max(0.0, min(1.0, level)) * middle
            draw.line([(x, _half_up(middle - reach)), (x, _half_up(middle + reach))], fill=WAVEFORM_COLOUR)
        image.save(destination, format="PNG", optimize=True)
        try:
            with Image.open(destination) as written:
                size, written_format = written.size, written.format
                written.verify()
        except (OSError, SyntaxError) as err:
            raise OutputUnreadable(f"the PNG does not read back: {err}") from err
        if written_format != "PNG":
            raise OutputUnreadable(f"the file is {written_format}, not PNG")
        return size


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
