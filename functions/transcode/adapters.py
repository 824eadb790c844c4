"""The transcoder's ports on S3 and ffmpeg/ffprobe, their errors mapped to the service's.

S3 and the bus are the unit functions' shared adapters (`functions/common/unit_adapters.py`, which says what the
role needs and which errors are a domain answer); here is what the transcoder stores with a rendition and when it
reuses one.

ffmpeg and ffprobe run through `functions/common/ffmpeg_runner.py`: child processes with a deadline, live progress
and the end of stderr on failure, without the function's AWS credentials.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from botocore.exceptions import ClientError

from functions.common.ffmpeg_runner import PROBE_TIMEOUT_SECONDS, FfmpegFailed, probe_file, run_process
from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from functions.common.observability import logger
from functions.common.unit_adapters import (
    FORBIDDEN_CODES,
    NOT_FOUND_CODES,
    S3UnitStore,
    error_code,
    made_by,
    object_metadata,
    pinned_source,
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


# --- a video segment's window of the source -----------------------------------------------------------------------
# A segment's encode seeks (`-ss`) through the container's index to the keyframe before its start and reads on to its
# end: of an MP4 it reads the index and one run of packets. A sparse copy (the source's size, zeros elsewhere) holding
# those bytes at their offsets makes the same frames, at a fraction of the download.

SPARSE_FORMAT_PREFIX = "mov,mp4"
"""The demuxer (ffprobe's format_name) of MP4 and QuickTime, whose index says where each packet is."""
HEAD_BYTES = 64 * 1024
"""The first GET: the top-level box headers at the start, and the whole index of a small faststart file."""
BOX_HEADER_BYTES = 16
"""The most a top-level box header takes: size and type, then a 64-bit size when the 32-bit one is 1."""
UNINDEXED_BOXES = frozenset({b"mdat", b"free", b"skip"})
"""Top-level boxes whose contents the demuxer does not read to open the file: only their headers are copied."""
MAX_TOP_LEVEL_BOXES = 64
"""More is a fragmented file (a moof per fragment, the index spread through it): the whole of it is read."""
PRELUDE_SECONDS = 6.0
"""ffmpeg's stream analysis reads up to 5 s of packets from the start before it seeks; with those packets in the
copy it concludes what it does on the whole file (frame rate, reordering delay), so the encode is the same."""
LEAD_SECONDS = 0.5
"""The listing seeks this much before the window, so it starts at or before the keyframe ffmpeg seeks to."""
TAIL_SECONDS = 4.0
"""Packets copied after the window's end: the frames reordered after its last ones, and what ffmpeg reads ahead."""
MIN_TRAILING_VIDEO_PACKETS = 16
"""H.264 and HEVC reorder up to 16 frames: fewer video packets in the tail (a low frame rate) is too short."""
MERGE_GAP_PARTS = 16
"""Spans less than a sixteenth of a part apart (1 MiB of the 16 MiB parts) are fetched as one: a GET costs more
than the bytes between them."""


class SparseCopyRefused(Exception):
    """The source cannot be copied sparsely with confidence (the reason is logged): the whole of it is read."""


@dataclass(frozen=True)
class Box:
    """A top-level box of an MP4: where it is, its type and the bytes of its header."""

    offset: int
    size: int
    kind: bytes
    header: bytes

    @property
    def end(self) -> int:
        return self.offset + self.size


def parse_box(data: bytes, offset: int, file_size: int) -> Box:
    """The box whose header `data` (read at `offset`) holds: a 32-bit size and a type, a 64-bit size after them when
    the first is 1, or 0 for a box that runs to the end of the file."""
    if len(data) < 8:
        raise SparseCopyRefused(f"the box header at byte {offset} is cut short")
    size, kind = struct.unpack(">I4s", data[:8])
    header_bytes = 8
    if size == 1:
        if len(data) < BOX_HEADER_BYTES:
            raise SparseCopyRefused(f"the box header at byte {offset} is cut short")
        (size,) = struct.unpack(">Q", data[8:BOX_HEADER_BYTES])
        header_bytes = BOX_HEADER_BYTES
    elif size == 0:
        size = file_size - offset
    if size < header_bytes or offset + size > file_size:
        raise SparseCopyRefused(f"the {kind!r} box at byte {offset} does not fit in the file")
    return Box(offset, size, kind, data[:header_bytes])


def object_size(response: dict[str, Any]) -> int:
    """The whole object's size, from a ranged GET's Content-Range (`bytes 0-65535/7340032000`)."""
    total = str(response.get("ContentRange") or "").rpartition("/")[2]
    if not total.isdigit():
        raise SparseCopyRefused("S3 did not say the source's size")
    return int(total)


def read_intervals(start_time: float, start_seconds: float, seconds: float) -> str:
    """ffprobe's `-read_intervals` for the packets the encode reads: the first PRELUDE_SECONDS (the stream analysis),
    and the window from LEAD_SECONDS before its start (ffprobe seeks as ffmpeg does, to the keyframe before) to
    TAIL_SECONDS after its end. Times are the file's, ffmpeg's `-ss` and `-t` are from its start time."""
    end = start_time + start_seconds + seconds + TAIL_SECONDS
    if start_seconds <= 0:  # the first segment is not seeked: read from the start
        return f"%{max(end, start_time + PRELUDE_SECONDS):.6f}"
    return f"%+{PRELUDE_SECONDS},{start_time + start_seconds - LEAD_SECONDS:.6f}%{end:.6f}"


def run_ffprobe(path: Path, format_name: str, *args: str) -> dict[str, Any]:
    """ffprobe's JSON about the sparse copy, with only the file protocol and the demuxer ingest validated. It reads
    the index and the packets' sizes, positions and times from it; decoding the missing payloads fails, which is
    not what is asked (`-v quiet`)."""
    command = [ffprobe_path(), "-v", "quiet", "-protocol_whitelist", "file", "-format_whitelist", format_name]
    try:
        result = subprocess.run(
            [*command, *args, "-print_format", "json", str(path)],
            stdin=subprocess.DEVNULL,
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise SparseCopyRefused("ffprobe did not list the packets in time") from err
    if result.returncode != 0:
        raise SparseCopyRefused(f"ffprobe cannot read the index (exit status {result.returncode})")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise SparseCopyRefused(f"ffprobe printed no JSON: {err}") from err


def packet_time(packet: dict[str, Any]) -> float | None:
    for name in ("pts_time", "dts_time"):
        value = packet.get(name)
        if value not in (None, "N/A"):
            return float(value)
    return None


def packet_spans(packets: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Where the packets' bytes are in the file, `[start, end)` (a cover picture's are in the index)."""
    spans = []
    for packet in packets:
        position, size = str(packet.get("pos", "")), str(packet.get("size", ""))
        if not (position.isdigit() and size.isdigit()):
            raise SparseCopyRefused("a packet of the window has no position in the file")
        spans.append((int(position), int(position) + int(size)))
    return spans


def merge_spans(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """The spans sorted, overlapping ones and those less than `gap` bytes apart joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@dataclass(frozen=True)
class Timeline:
    """The file's start and end time (seconds, as its packets are timed) and which streams are video."""

    start: float
    end: float
    video: frozenset[int]


def read_timeline(path: Path, format_name: str) -> Timeline:
    report = run_ffprobe(path, format_name, "-show_entries", "format=start_time,duration:stream=index,codec_type")
    try:
        start = float(report["format"].get("start_time") or 0)
        end = start + float(report["format"]["duration"])
        video = frozenset(s["index"] for s in report.get("streams") or [] if s.get("codec_type") == "video")
    except (KeyError, TypeError, ValueError) as err:
        raise SparseCopyRefused(f"ffprobe does not say when the file starts and ends: {err!r}") from err
    return Timeline(start, end, video)


def check_tail(packets: list[dict[str, Any]], timeline: Timeline, window_start: float, window_end: float) -> None:
    """Refuse a listing without the window's video, or with too short a tail after it (unless it runs to the end)."""
    try:
        times = [packet_time(p) for p in packets if p.get("stream_index") in timeline.video]
    except ValueError as err:
        raise SparseCopyRefused(f"a packet's time is not a number: {err}") from err
    if not any(time is not None and window_start <= time < window_end for time in times):
        raise SparseCopyRefused("no video packet in the window")
    trailing = sum(1 for time in times if time is not None and time >= window_end)
    if trailing < MIN_TRAILING_VIDEO_PACKETS and window_end + TAIL_SECONDS < timeline.end:
        raise SparseCopyRefused(f"only {trailing} video packets in the {TAIL_SECONDS} s after the window")


def audio_spans(path: Path, format_name: str) -> list[tuple[int, int]]:
    """The byte spans of the packets the audio part's encode reads of the copy of the index at `path`: every stream's
    for the first PRELUDE_SECONDS (the stream analysis), then every packet of the first audio stream; the video's
    packets after the prelude are demuxed and dropped unread, so the copy holds zeros there."""
    entries = "packet=stream_index,pos,size"
    prelude = run_ffprobe(path, format_name, "-read_intervals", f"%+{PRELUDE_SECONDS}", "-show_entries", entries)
    audio = run_ffprobe(path, format_name, "-select_streams", "a:0", "-show_entries", entries).get("packets")
    if not audio:
        raise SparseCopyRefused("the index lists no audio packet")
    return packet_spans([*(prelude.get("packets") or []), *audio])


def window_spans(path: Path, format_name: str, start_seconds: float, seconds: float) -> list[tuple[int, int]]:
    """The byte spans of the packets (every stream's: the demuxer reads them interleaved) an encode of
    `[start_seconds, start_seconds + seconds)` reads, from ffprobe on the copy of the index at `path`."""
    timeline = read_timeline(path, format_name)
    intervals = read_intervals(timeline.start, start_seconds, seconds)
    entries = "packet=stream_index,pts_time,dts_time,pos,size"
    packets = run_ffprobe(path, format_name, "-read_intervals", intervals, "-show_entries", entries).get("packets")
    window_start = timeline.start + start_seconds
    check_tail(packets or [], timeline, window_start, window_start + seconds)
    return packet_spans(packets or [])


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
        """For an MP4, a sparse copy holding its index and the packets the window's encode reads, every GET only of
        the object the first one read (IfMatch: the copy cannot mix two uploads); for any other container, or an MP4
        whose layout is not understood, the whole source."""
        self._sparse_copy(
            source,
            destination,
            format_name,
            lambda copy: window_spans(copy, format_name or "", start_seconds, seconds),
            what={"startSeconds": start_seconds, "seconds": seconds},
        )

    def download_source_audio(self, source: SourceObject, destination: Path, *, format_name: str | None) -> None:
        """For an MP4, a sparse copy holding its index, the first seconds and the audio's packets: what the audio
        part's encode reads (a 128 kbit/s track is under a hundredth of a 16 Mbit/s source); otherwise as
        `download_source_window`."""
        self._sparse_copy(
            source, destination, format_name, lambda copy: audio_spans(copy, format_name or ""), what={"audio": True}
        )

    def _sparse_copy(
        self,
        source: SourceObject,
        destination: Path,
        format_name: str | None,
        spans_of: Callable[[Path], list[tuple[int, int]]],
        *,
        what: dict[str, Any],
    ) -> None:
        try:
            if not (format_name or "").startswith(SPARSE_FORMAT_PREFIX):
                raise SparseCopyRefused(f"{format_name} has no index of where its packets are")
            fetched, size = self._copy_spans(source, destination, spans_of)
        except SparseCopyRefused as err:
            logger.info("downloading the whole source for the part", extra={"reason": str(err), **what})
            self.download_source(source, destination)
            return
        logger.info("source copied sparsely", extra={"bytesFetched": fetched, "sourceBytes": size, **what})

    def _copy_spans(
        self, source: SourceObject, destination: Path, spans_of: Callable[[Path], list[tuple[int, int]]]
    ) -> tuple[int, int]:
        """Write the sparse copy: the index, then the spans `spans_of` finds with it; the bytes fetched and the
        source's size."""
        response = self.get_source_range(source, 0, HEAD_BYTES)
        size = object_size(response)
        pinned = pinned_source(source, response)
        head = response["Body"].read()
        with destination.open("wb") as out:
            out.truncate(size)
            os.pwrite(out.fileno(), head, 0)
            fetched = len(head) + self._copy_index(pinned, out, head, size)
            spans = spans_of(destination)
            fetched += self.download_source_ranges(pinned, out, merge_spans(spans, self._part_bytes // MERGE_GAP_PARTS))
        return fetched, size

    def _copy_index(self, source: SourceObject, out: BinaryIO, head: bytes, size: int) -> int:
        """Copy every top-level box but the media data's (and free space's) contents: their headers, which the
        demuxer walks, and the index (moov) wherever it is; the bytes fetched beyond `head`."""
        boxes, fetched = self._top_level_boxes(source, head, size)
        if not any(box.kind == b"moov" for box in boxes):
            raise SparseCopyRefused("the file has no moov box")
        for box in boxes:
            os.pwrite(out.fileno(), box.header, box.offset)
        index = [(max(box.offset, len(head)), box.end) for box in boxes if box.kind not in UNINDEXED_BOXES]
        return fetched + self.download_source_ranges(source, out, [span for span in index if span[0] < span[1]])

    def _top_level_boxes(self, source: SourceObject, head: bytes, size: int) -> tuple[list[Box], int]:
        """The file's top-level boxes, each header read from `head` or with a small ranged GET; and the bytes those
        fetched."""
        boxes: list[Box] = []
        offset = fetched = 0
        while offset < size:
            if len(boxes) == MAX_TOP_LEVEL_BOXES:
                raise SparseCopyRefused(f"more than {MAX_TOP_LEVEL_BOXES} top-level boxes (a fragmented file)")
            end = min(offset + BOX_HEADER_BYTES, size)
            data = head[offset:end]
            if len(data) < end - offset:
                data = self.get_source_range(source, offset, end)["Body"].read()
                fetched += len(data)
            box = parse_box(data, offset, size)
            boxes.append(box)
            offset = box.end
        return boxes, fetched

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
