"""A video segment's window of the source (`S3MediaStore.download_source_window`) and the audio part's share of it
(`download_source_audio`): of an MP4, a sparse copy holding the index and the packets the part's encode reads, which
encodes exactly as the whole file does; of anything else, the whole source (real ffmpeg, S3 in moto)."""

from __future__ import annotations

import struct
import subprocess
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.common.media_tools import ffmpeg_path, tool_env
from functions.common.unit_worker import SourceMissing, SourceReplaced
from functions.contracts.fanout import Segment, SourceObject
from functions.contracts.jobs import Probe
from functions.contracts.media import SegmentPart
from functions.transcode import adapters
from functions.transcode.adapters import (
    S3MediaStore,
    SparseCopyRefused,
    merge_spans,
    parse_box,
    read_intervals,
)
from functions.transcode.service import EncoderSettings, build_audio_part, build_segment_video
from tests.functions.conftest import REGION
from tests.functions.transcode.conftest import PLAN, UPLOADS, source_probe
from tests.media_samples import probe

SECONDS = 30
WINDOW = 4
KEY = "uploads/job-1/source"
MP4 = "mov,mp4,m4a,3gp,3g2,mj2"


JITTER = r"setpts=(N/30+0.013*sin(N*1.7)+0.02*not(mod(N\,7)))/TB"
"""Frame times off the 30 fps grid, as a phone's variable frame rate puts them."""


def make_source(
    path: Path, *, faststart: bool = False, variable_rate: bool = False, video_bitrate: str | None = None
) -> Path:
    """320x180 H.264 with B-frames (what reordering needs) and 1.4 s GOPs (the windows start inside one), and AAC: the
    moov at the end, as ffmpeg writes it, or first. ffmpeg interleaves every frame with the audio beside it; at
    `video_bitrate` the frames between two audio packets are larger than the copy's merge gap, as a phone's second
    of video between its audio chunks is larger than the one production uses."""
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=30:duration={SECONDS}"]
    args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}"]
    if variable_rate:
        args += ["-vf", JITTER, "-fps_mode", "passthrough"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-g", "42", "-bf", "3", "-pix_fmt", "yuv420p"]
    if video_bitrate:
        args += ["-b:v", video_bitrate, "-minrate", video_bitrate, "-maxrate", video_bitrate, "-bufsize", video_bitrate]
    args += ["-c:a", "aac", "-b:a", "64k", *(["-movflags", "+faststart"] if faststart else []), str(path)]
    subprocess.run(args, check=True, env=tool_env())
    return path


def remux(source: Path, path: Path) -> Path:
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-c", "copy", str(path)]
    subprocess.run(args, check=True, env=tool_env())
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("window-media")
    moov_last = make_source(folder / "moov-last.mp4", faststart=False)
    return {
        "moov-last": moov_last,
        "faststart": make_source(folder / "faststart.mp4", faststart=True),
        "variable-rate": make_source(folder / "variable-rate.mp4", variable_rate=True),
        "mkv": remux(moov_last, folder / "source.mkv"),
        "busy-moov-last": make_source(folder / "busy-moov-last.mp4", video_bitrate="3M"),
        "busy-faststart": make_source(folder / "busy-faststart.mp4", faststart=True, video_bitrate="3M"),
    }


class CountingS3:
    """The S3 client, counting what every get_object asked for and the bytes S3 answered with."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.gets: list[dict[str, Any]] = []
        self.bytes = 0

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        response = self._client.get_object(**kwargs)
        with self._lock:
            self.gets.append(kwargs)
            self.bytes += int(response["ContentLength"])
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def upload(path: Path) -> SourceObject:
    s3 = boto3.client("s3", region_name=REGION)
    s3.upload_file(str(path), UPLOADS, KEY)
    etag = s3.head_object(Bucket=UPLOADS, Key=KEY)["ETag"]
    return SourceObject(bucket=UPLOADS, key=KEY, etag=etag.strip('"'))


def segment_packets(source: Path, output: Path, start: int) -> str:
    """The packets (times, sizes, hashes) of the video segment `build_segment_video` encodes from `source`."""
    probe = Probe.model_validate(source_probe(source)) if source.suffix else None
    segment = Segment(part=SegmentPart.VIDEO, index=start // WINDOW, count=SECONDS // WINDOW, seconds=WINDOW)
    graph = build_segment_video(
        source, output, plan=PLAN, probe=probe, encoder=EncoderSettings(preset="ultrafast", threads=1), segment=segment
    )
    subprocess.run(graph.compile(cmd=ffmpeg_path()), check=True, env=tool_env(), capture_output=True)
    hashes = [ffmpeg_path(), "-v", "error", "-i", str(output), "-map", "0:v", "-c", "copy", "-f", "framemd5", "-"]
    return subprocess.run(hashes, check=True, env=tool_env(), capture_output=True, text=True).stdout


@pytest.mark.media
@pytest.mark.parametrize("layout", ["moov-last", "faststart", "variable-rate"])
@pytest.mark.parametrize("start", [0, 12, 24])
def test_a_sparse_window_encodes_exactly_as_the_whole_file(
    buckets: dict[str, str],
    tmp_path: Path,
    media: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    *,
    layout: str,
    start: int,
) -> None:
    # GIVEN a 30 s MP4 in the uploads bucket, and a first GET of 1 KiB: the box headers and the index past it take GETs
    # of their own, and the packets ffmpeg analyses at the start are not in it by chance
    monkeypatch.setattr(adapters, "HEAD_BYTES", 1024)
    whole = media[layout]
    source = upload(whole)
    client = CountingS3(boto3.client("s3", region_name=REGION))
    sparse = tmp_path / "sparse.mp4"  # named like the source, so the probe of the whole one stands for both

    # WHEN a segment unit copies the window [start, start + 4 s)
    S3MediaStore(client, "test-outputs", part_bytes=64 * 1024).download_source_window(
        source, sparse, start_seconds=start, seconds=WINDOW, format_name=MP4
    )

    # THEN the copy has the source's size, from far fewer bytes, each GET only of the validated object
    assert sparse.stat().st_size == whole.stat().st_size
    assert client.bytes < 0.75 * whole.stat().st_size
    assert all(get["IfMatch"] == f'"{source.etag}"' and get["Range"] for get in client.gets)
    # AND ffmpeg's analysis of the streams reads it as the whole file (it decodes the first seconds)
    assert probe(sparse) == probe(whole) | {"format": probe(whole)["format"] | {"filename": str(sparse)}}
    # AND the segment encoded from it is the one encoded from the whole file, packet for packet
    expected = segment_packets(whole, tmp_path / "from-whole.mp4", start)
    assert segment_packets(sparse, tmp_path / "from-sparse.mp4", start) == expected
    assert expected.count("\n0,") > 100  # 4 s at 30 fps, not an empty encode


def audio_packets(source: Path, output: Path) -> str:
    """The packets (times, sizes, hashes) of the audio part `build_audio_part` encodes from `source`."""
    probe = Probe.model_validate(source_probe(source)) if source.suffix else None
    graph = build_audio_part(source, output, plan=PLAN, probe=probe)
    subprocess.run(graph.compile(cmd=ffmpeg_path()), check=True, env=tool_env(), capture_output=True)
    hashes = [ffmpeg_path(), "-v", "error", "-i", str(output), "-map", "0:a", "-c", "copy", "-f", "framemd5", "-"]
    return subprocess.run(hashes, check=True, env=tool_env(), capture_output=True, text=True).stdout


@pytest.mark.media
@pytest.mark.parametrize("layout", ["busy-moov-last", "busy-faststart"])
def test_the_audio_part_reads_a_sparse_copy_and_encodes_exactly_as_from_the_whole_file(
    buckets: dict[str, str], tmp_path: Path, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch, *, layout: str
) -> None:
    # GIVEN a 30 s MP4 with 3 Mbit/s of video and a 64 kbit/s AAC track in the uploads bucket, and a first GET of 1 KiB
    monkeypatch.setattr(adapters, "HEAD_BYTES", 1024)
    whole = media[layout]
    source = upload(whole)
    client = CountingS3(boto3.client("s3", region_name=REGION))
    sparse = tmp_path / "sparse.mp4"

    # WHEN the audio part copies what its encode reads
    S3MediaStore(client, "test-outputs", part_bytes=64 * 1024).download_source_audio(source, sparse, format_name=MP4)

    # THEN the copy has the source's size, from far fewer bytes (the index, the first seconds, the audio), each GET
    # only of the validated object
    assert sparse.stat().st_size == whole.stat().st_size
    assert client.bytes < 0.3 * whole.stat().st_size
    assert all(get["IfMatch"] == f'"{source.etag}"' and get["Range"] for get in client.gets)
    # AND the audio encoded from it is the one encoded from the whole file, packet for packet, to the end
    expected = audio_packets(whole, tmp_path / "from-whole.m4a")
    assert audio_packets(sparse, tmp_path / "from-sparse.m4a") == expected
    assert expected.count("\n0,") > 30 * 48000 // 1024 - 5  # every AAC frame of the 30 s, not an empty encode


@pytest.mark.media
def test_the_audio_part_of_another_container_reads_it_whole(
    buckets: dict[str, str], tmp_path: Path, media: dict[str, Path]
) -> None:
    source = upload(media["mkv"])
    client = CountingS3(boto3.client("s3", region_name=REGION))

    S3MediaStore(client, "test-outputs").download_source_audio(source, tmp_path / "source", format_name="matroska,webm")

    assert (tmp_path / "source").read_bytes() == media["mkv"].read_bytes()
    assert all("Range" not in get for get in client.gets)


@pytest.mark.media
def test_another_container_is_downloaded_whole(buckets: dict[str, str], tmp_path: Path, media: dict[str, Path]) -> None:
    source = upload(media["mkv"])
    client = CountingS3(boto3.client("s3", region_name=REGION))

    S3MediaStore(client, "test-outputs").download_source_window(
        source, tmp_path / "source", start_seconds=12, seconds=WINDOW, format_name="matroska,webm"
    )

    assert (tmp_path / "source").read_bytes() == media["mkv"].read_bytes()
    assert all("Range" not in get for get in client.gets)


@pytest.mark.media
def test_an_mp4_without_its_index_is_downloaded_whole(
    buckets: dict[str, str], tmp_path: Path, media: dict[str, Path]
) -> None:
    # GIVEN an MP4 cut off before its moov (an interrupted upload)
    data = media["moov-last"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: data.rfind(b"moov") - 4])
    source = upload(cut)

    S3MediaStore(boto3.client("s3", region_name=REGION), "test-outputs").download_source_window(
        source, tmp_path / "source", start_seconds=12, seconds=WINDOW, format_name=MP4
    )

    assert (tmp_path / "source").read_bytes() == cut.read_bytes()


@pytest.mark.media
def test_a_replaced_source_is_source_replaced(buckets: dict[str, str], tmp_path: Path, media: dict[str, Path]) -> None:
    source = upload(media["faststart"])
    upload(media["moov-last"])  # the upload form POSTed again with another file

    with pytest.raises(SourceReplaced):
        S3MediaStore(boto3.client("s3", region_name=REGION), "test-outputs").download_source_window(
            source, tmp_path / "source", start_seconds=12, seconds=WINDOW, format_name=MP4
        )


def test_a_deleted_source_is_source_missing(buckets: dict[str, str], tmp_path: Path) -> None:
    source = SourceObject(bucket=UPLOADS, key=KEY, etag="abc123")

    with pytest.raises(SourceMissing) as raised:
        S3MediaStore(boto3.client("s3", region_name=REGION), "test-outputs").download_source_window(
            source, tmp_path / "source", start_seconds=12, seconds=WINDOW, format_name=MP4
        )
    assert type(raised.value) is SourceMissing


def test_box_headers_with_32_bit_64_bit_and_to_the_end_sizes() -> None:
    assert parse_box(struct.pack(">I4s", 24, b"ftyp"), 0, 100).end == 24
    header = struct.pack(">I4sQ", 1, b"mdat", 5_000_000_000)
    large = parse_box(header + b"media", 32, 6_000_000_000)
    assert (large.kind, large.end, large.header) == (b"mdat", 5_000_000_032, header)
    assert parse_box(struct.pack(">I4s", 0, b"mdat"), 40, 1000).size == 960
    for data in (struct.pack(">I4s", 200, b"moov"), struct.pack(">I4s", 4, b"moov"), b"\x00\x00"):
        with pytest.raises(SparseCopyRefused):
            parse_box(data, 0, 100)


def test_spans_are_joined_when_close_and_intervals_cover_the_analysis_and_the_window() -> None:
    assert merge_spans([(50, 60), (0, 10), (12, 20), (8, 11)], gap=5) == [(0, 20), (50, 60)]
    assert read_intervals(0.0, 0, 48) == "%52.000000"
    assert read_intervals(0.0, 0, 1) == "%6.000000"
    assert read_intervals(-0.021, 48, 48) == "%+6.0,47.479000%99.979000"
