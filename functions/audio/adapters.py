"""The audio function's ports on S3, ffmpeg/ffprobe and Pillow, their errors mapped to the service's.

S3 and the bus are the unit functions' shared adapters (`functions/common/unit_adapters.py`, which says what the
role needs and which errors are a domain answer); here is what the audio function stores with an output and when it
reuses one: only one made by the same job's unit, in the same attempt, to the same plan.

ffmpeg and ffprobe run through `functions/common/ffmpeg_runner.py`: child processes with a deadline and the end of
stderr on failure, without the function's AWS credentials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageDraw

from functions.audio.service import AudioMedia, OutputFacts, StoredUnit
from functions.common.ffmpeg_runner import FfmpegFailed, probe_file, run_process
from functions.common.media_tools import ffmpeg_path
from functions.common.unit_adapters import S3UnitStore, made_by, object_metadata
from functions.common.unit_worker import OutputUnreadable

_PIPE_READ_BYTES = 64 * 1024
WAVEFORM_COLOUR = (37, 99, 235, 255)
"""The bars' colour, opaque, on a transparent background: the PNG sits on any page."""


# --- S3 -----------------------------------------------------------------------------------------------------------


def output_metadata(job_id: str, unit: str, facts: OutputFacts, *, attempt: int) -> dict[str, str]:
    """User metadata (x-amz-meta-*) stored with an output, so a redelivered message can re-announce it from HEAD."""
    return object_metadata(
        job_id,
        unit,
        attempt=attempt,
        plan=facts.plan,
        width=facts.width,
        height=facts.height,
        duration_ms=facts.durationMs,
    )


def stored_output_from_head(
    head: dict[str, Any], bucket: str, key: str, job_id: str, unit: str, *, attempt: int
) -> StoredUnit | None:
    """The output a HEAD response describes, or None unless its metadata says this job's attempt made it for this unit,
    to a plan."""
    metadata = head.get("Metadata") or {}
    if not made_by(metadata, job_id, unit, attempt) or not metadata.get("plan"):
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
    return StoredUnit(bucket, key, int(head.get("ContentLength") or 0), facts)


class S3MediaStore(S3UnitStore):
    """The uploads and outputs buckets, on S3."""

    def find_output(self, job_id: str, unit: str, key: str, *, attempt: int) -> StoredUnit | None:
        head = self.head_output(key)
        if head is None:
            return None
        return stored_output_from_head(head, self.outputs_bucket, key, job_id, unit, attempt=attempt)

    def upload_output(
        self, path: Path, job_id: str, unit: str, key: str, facts: OutputFacts, *, attempt: int
    ) -> StoredUnit:
        metadata = output_metadata(job_id, unit, facts, attempt=attempt)
        size = self.upload_file(path, key, content_type=facts.contentType, metadata=metadata)
        return StoredUnit(self.outputs_bucket, key, size, facts)


# --- ffmpeg and ffprobe -------------------------------------------------------------------------------------------


def run_ffmpeg(args: list[str], *, timeout_seconds: float) -> str:
    """Run ffmpeg, kill it at the deadline, return (the end of) what it wrote to stderr."""
    return run_process(args, timeout_seconds=timeout_seconds, read_stdout=None)


def stream_ffmpeg(args: list[str], *, timeout_seconds: float, on_chunk: Callable[[bytes], None]) -> None:
    """Run ffmpeg, hand its stdout to `on_chunk` as it is written, kill it at the deadline."""

    def read_chunks(stdout: IO[bytes]) -> None:
        while chunk := stdout.read(_PIPE_READ_BYTES):
            on_chunk(chunk)

    run_process(args, timeout_seconds=timeout_seconds, read_stdout=read_chunks)


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
            reason = str(err).replace(str(destination), destination.name)  # Pillow names the file; not its folder
            raise OutputUnreadable(f"the PNG does not read back: {reason}") from err
        if written_format != "PNG":
            raise OutputUnreadable(f"the file is {written_format}, not PNG")
        return size
