"""Builders for ingest's tests: generated media, the ingest environment, the validated topic, a pipeline to drive.

Media is generated on the spot (tests/media_samples.py); tests that run ffmpeg are marked `media`.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from functions.common.event_bus import EventPublisher
from functions.common.fanout_topic import SnsFanOut
from functions.common.job_state import new_job
from functions.common.jobs_table import JobsTable
from functions.common.media_tools import ffmpeg_path, tool_env
from functions.common.renditions import DEFAULT_RENDITIONS, renditions_to_json
from functions.contracts.jobs import JobRecord, JobSource, JobStatus
from functions.ingest import handler as ingest_handler
from functions.ingest.adapters import Ffprobe, PillowImages, S3Source
from functions.ingest.service import RejectionCode, StoredObject, Upload, UploadIngest
from functions.ingest.settings import IngestSettings
from tests import media_samples as samples
from tests.functions.conftest import FIXTURES, REGION, CapturedEvents, FakeLambdaContext
from tests.media_samples import make_video

OWNER = "user-7c1f"
JOB_ID = "01JD2Y5V7Q8ZK3M4N5P6R7S8T9"
BYSTANDER_ID = "01JD2Y5V7Q8ZK3M4N5P6R7S8ZZ"
TOPIC_ARN = f"arn:aws:sns:{REGION}:123456789012:validated"
NOW_MS = 1_700_000_000_000  # when the test jobs were created (the past)
SERVICE_NOW_MS = NOW_MS + 5_000  # the service's fixed clock
DEADLINE_SECONDS = 3600
NO_FAILURES = {"batchItemFailures": []}
IMAGE_LIMIT_BYTES = 20 * 1024 * 1024
AUDIO_LIMIT_BYTES = 30 * 1024 * 1024
IMAGE_PIXEL_LIMIT = 50_000_000
IMAGE_DERIVATIVES = [
    {"name": "thumb", "longEdge": 320, "formats": ["webp", "jpeg"], "watermark": False},
    {"name": "large", "longEdge": 1280, "formats": ["webp", "jpeg"], "watermark": True},
]
"""The stack default (Pulumi.yaml `imageDerivatives`)."""


# --------------------------------------------------------------------------------------------------------------
# Generated media, made once per session and only when a test asks for it.
# --------------------------------------------------------------------------------------------------------------


class MediaLibrary:
    """Small clips for the tests; every property generates its file on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / name

    @cached_property
    def landscape_1080p(self) -> Path:
        return make_video(self._path("landscape-1080p.mp4"), width=1920, height=1080, seconds=1)

    @cached_property
    def small(self) -> Path:
        return make_video(self._path("small.mp4"), width=320, height=240, seconds=1)

    @cached_property
    def small_two_seconds(self) -> Path:
        return make_video(self._path("small-2s.mp4"), width=320, height=240, seconds=2, audio=False)

    @cached_property
    def sd_480p(self) -> Path:
        return make_video(self._path("sd-480p.mp4"), width=854, height=480, seconds=1, audio=False)

    @cached_property
    def rotated_portrait(self) -> Path:
        """Coded 1920x1080 with a 90-degree display matrix, as phones store portrait video."""
        return make_video(self._path("rotated.mp4"), width=1920, height=1080, seconds=1, audio=False, rotation=90)

    @cached_property
    def coded_portrait(self) -> Path:
        return make_video(self._path("portrait.mp4"), width=1080, height=1920, seconds=1, audio=False)

    @cached_property
    def no_audio(self) -> Path:
        return make_video(self._path("no-audio.mp4"), width=320, height=240, seconds=1, audio=False)

    @cached_property
    def odd_dimensions(self) -> Path:
        """1281x721 with square pixels (4:4:4, since H.264 4:2:0 cannot code odd sizes)."""
        path = self._path("odd.mp4")
        _ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=1",
            "-vf", "scale=1281:721,setsar=1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p",
            str(path),
        )  # fmt: skip
        return path

    @cached_property
    def mpegts(self) -> Path:
        path = self._path("small.ts")
        _ffmpeg("-i", str(self.small), "-c", "copy", "-f", "mpegts", str(path))
        return path

    @cached_property
    def subtitles_only(self) -> Path:
        """An MP4 holding nothing but a subtitle track: neither video nor audio."""
        subtitles = self._path("subtitles.srt")
        subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n")
        path = self._path("subtitles-only.mp4")
        _ffmpeg("-i", str(subtitles), "-c:s", "mov_text", str(path))
        return path

    # --- images (Pillow; tests/media_samples.py) ---------------------------------------------------------------

    @cached_property
    def rotated_jpeg(self) -> Path:
        """Stored 1200x800 with EXIF orientation 6 (upright 800x1200), GPS and camera tags."""
        return samples.exif_rotated_jpeg(self._path("rotated.jpg"))

    @cached_property
    def cmyk_jpeg(self) -> Path:
        return samples.cmyk_jpeg(self._path("cmyk.jpg"))

    @cached_property
    def rgba_png(self) -> Path:
        return samples.rgba_png(self._path("rgba.png"))

    @cached_property
    def palette_png(self) -> Path:
        return samples.palette_png(self._path("palette.png"))

    @cached_property
    def png_16bit(self) -> Path:
        return samples.png_16bit(self._path("16bit.png"))

    @cached_property
    def animated_gif(self) -> Path:
        return samples.animated_gif(self._path("animated.gif"))

    @cached_property
    def large_webp(self) -> Path:
        return samples.large_webp(self._path("large.webp"))

    @cached_property
    def avif(self) -> Path:
        return samples.avif_image(self._path("photo.avif"))

    @cached_property
    def truncated_jpeg(self) -> Path:
        return samples.truncated_jpeg(self._path("truncated.jpg"))

    @cached_property
    def png_bomb(self) -> Path:
        """A few hundred bytes whose IHDR claims 100000x100000 pixels (30 GB decoded)."""
        return samples.png_claiming(self._path("bomb.png"), width=100_000, height=100_000)

    @cached_property
    def png_named_mp4(self) -> Path:
        """A real PNG whose name says video."""
        return samples.rgba_png(self._path("movie.mp4"))

    @cached_property
    def text_named_png(self) -> Path:
        return samples.text_file(self._path("notes.png"))

    # --- audio (ffmpeg) ----------------------------------------------------------------------------------------

    def tone(self, extension: str) -> Path:
        """A one-second stereo 48 kHz tone in the container `extension` names (tests/media_samples.py)."""
        path = self._path(f"stereo-tone.{extension}")
        return path if path.exists() else samples.make_tone(path, seconds=1)

    @cached_property
    def adts_aac(self) -> Path:
        """Raw AAC in ADTS frames (`.aac`), the `aac` demuxer's."""
        path = self._path("tone.aac")
        _ffmpeg("-i", str(self.tone("m4a")), "-c", "copy", "-f", "adts", str(path))
        return path

    @cached_property
    def mp3_with_cover(self) -> Path:
        """An MP3 with cover art (an attached JPEG picture: a video stream with disposition attached_pic)."""
        cover = self._path("cover.jpg")
        Image.new("RGB", (300, 300), (200, 60, 40)).save(cover, "JPEG")
        path = self._path("with-cover.mp3")
        _ffmpeg(
            "-i", str(self.tone("mp3")), "-i", str(cover), "-map", "0:a", "-map", "1:v", "-c", "copy",
            "-disposition:v:0", "attached_pic", "-id3v2_version", "3", str(path),
        )  # fmt: skip
        return path

    @cached_property
    def two_second_tone(self) -> Path:
        return samples.make_tone(self._path("long.flac"), seconds=2)

    @cached_property
    def audio_in_matroska(self) -> Path:
        """Audio alone in Matroska (`.mka`), as browsers' MediaRecorder writes WebM audio: accepted as audio."""
        path = self._path("tone.mka")
        _ffmpeg("-i", str(self.tone("flac")), "-c", "copy", "-f", "matroska", str(path))
        return path

    @cached_property
    def audio_in_avi(self) -> Path:
        """Audio alone in AVI: an accepted video container, but not an accepted audio one."""
        path = self._path("tone.avi")
        _ffmpeg("-i", str(self.tone("wav")), "-c", "copy", "-f", "avi", str(path))
        return path

    @cached_property
    def text_named_mp4(self) -> Path:
        path = self._path("notes.mp4")
        path.write_text("These are my holiday notes, not a video.\n" * 20)
        return path

    @cached_property
    def truncated(self) -> Path:
        """An MP4 cut in half; its index (moov) is written last, so it is lost with the second half."""
        return _first_half(self.small, self._path("truncated.mp4"))

    @cached_property
    def truncated_faststart(self) -> Path:
        """An MP4 with its index first, cut in half: it still probes, only decoding finds the missing frames."""
        faststart = self._path("faststart.mp4")
        _ffmpeg("-i", str(self.small), "-c", "copy", "-movflags", "+faststart", str(faststart))
        return _first_half(faststart, self._path("truncated-faststart.mp4"))

    @cached_property
    def zeroed_tail_faststart(self) -> Path:
        """A 4 s MP4 with 1 s GOPs and its index first, whose bytes from 40% on are zeros: the file is whole and its
        index names every packet, but no keyframe of its last two seconds can be decoded."""
        faststart = self._path("one-second-gops-faststart.mp4")
        pattern = "testsrc2=size=320x240:rate=30:duration=4"
        _ffmpeg("-f", "lavfi", "-i", pattern, "-c:v", "libx264", "-g", "30", "-movflags", "+faststart", str(faststart))
        data = bytearray(faststart.read_bytes())
        kept = len(data) * 2 // 5
        data[kept:] = bytes(len(data) - kept)
        destination = self._path("zeroed-tail.mp4")
        destination.write_bytes(bytes(data))
        return destination

    @cached_property
    def hls_playlist(self) -> Path:
        """A real HLS playlist whose segments are local files beside it, named by absolute path."""
        directory = self.root / "hls"
        directory.mkdir(exist_ok=True)
        _ffmpeg(
            "-i", str(self.small), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
            "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
            "-hls_segment_filename", str(directory / "segment%d.m4s"), str(directory / "relative.m3u8"),
        )  # fmt: skip
        lines = (directory / "relative.m3u8").read_text().splitlines()
        absolute = [
            line if line.startswith("#") and "URI=" not in line else _absolutize(line, directory) for line in lines
        ]
        playlist = directory / "playlist.m3u8"
        playlist.write_text("\n".join(absolute) + "\n")
        return playlist

    @cached_property
    def concat_script(self) -> Path:
        """A concat demuxer script naming two local clips (relative names: the concat demuxer's `safe` mode)."""
        directory = self.root / "concat"
        directory.mkdir(exist_ok=True)
        for name in ("a.mp4", "b.mp4"):
            (directory / name).write_bytes(self.small.read_bytes())
        script = directory / "list.txt"
        script.write_text("ffconcat version 1.0\nfile 'a.mp4'\nfile 'b.mp4'\n")
        return script


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True, env=tool_env(), timeout=120
    )


def _first_half(source: Path, destination: Path) -> Path:
    data = source.read_bytes()
    destination.write_bytes(data[: len(data) // 2])
    return destination


def _absolutize(line: str, directory: Path) -> str:
    if line.startswith("#EXT-X-MAP:URI="):
        name = line.split('"')[1]
        return f'#EXT-X-MAP:URI="{directory / name}"'
    return str(directory / line) if line and not line.startswith("#") else line


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaLibrary:
    return MediaLibrary(tmp_path_factory.mktemp("ingest-media"))


# --------------------------------------------------------------------------------------------------------------
# ffprobe's JSON for a typical upload, for the probe summary
# --------------------------------------------------------------------------------------------------------------


def ffprobe_json(**video_changes: Any) -> dict[str, Any]:
    """What ffprobe prints for a 1920x1080 H.264/AAC MP4 of 12 s, with `video_changes` on its video stream."""
    raw = json.loads((FIXTURES / "ingest_ffprobe_output.json").read_text())
    raw["streams"][0].update(video_changes)
    return raw


# --------------------------------------------------------------------------------------------------------------
# AWS: the validated topic (captured through raw-delivery queues), the jobs table, buckets and bus.
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture
def ingest_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """The ingest variables of docs/CONTRACTS.md; returns a setter for the tests that tighten a limit."""
    values = {
        "VALIDATED_TOPIC_ARN": TOPIC_ARN,
        "MAX_UPLOAD_BYTES": str(50 * 1024 * 1024),
        "MAX_DURATION_SECONDS": "60",
        "MAX_WIDTH": "3840",
        "MAX_HEIGHT": "2160",
        "RENDITIONS": renditions_to_json(DEFAULT_RENDITIONS),
        "ENGINE": "auto",
        "MEDIACONVERT_THRESHOLD_SECONDS": "600",
        "PROCESSING_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
        "TRANSCODE_TIMEOUT_SECONDS": "900",
        "TRANSCODE_MEMORY_MB": "4096",
        "LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND": "45",
        "MAX_IMAGE_UPLOAD_BYTES": str(IMAGE_LIMIT_BYTES),
        "MAX_AUDIO_UPLOAD_BYTES": str(AUDIO_LIMIT_BYTES),
        "MAX_IMAGE_PIXELS": str(IMAGE_PIXEL_LIMIT),
        "IMAGE_DERIVATIVES": json.dumps(IMAGE_DERIVATIVES),
        "AUDIO_BITRATE_KBPS": "128",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)

    def override(**changes: str) -> None:
        for key, value in changes.items():
            monkeypatch.setenv(key, value)

    return override


@dataclass
class Published:
    body: dict[str, Any]
    attributes: dict[str, Any]


@dataclass
class CapturedFanout:
    """Everything published to the validated topic, plus what the filter policies of the `transcode-1080p`, `images`
    and `audio` queues let through."""

    all_url: str
    transcode_1080p_url: str
    images_url: str
    audio_url: str

    def drain(self, url: str | None = None) -> list[Published]:
        sqs = boto3.client("sqs", region_name=REGION)
        captured: list[Published] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=url or self.all_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return captured
            for message in batch:
                attributes = {
                    name: json.loads(a["StringValue"]) if a["DataType"] == "String.Array" else a["StringValue"]
                    for name, a in message.get("MessageAttributes", {}).items()
                }
                captured.append(Published(body=json.loads(message["Body"]), attributes=attributes))
                sqs.delete_message(QueueUrl=url or self.all_url, ReceiptHandle=message["ReceiptHandle"])


def _raw_queue(sns: Any, sqs: Any, name: str, filter_policy: dict[str, Any] | None = None) -> str:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {"RawMessageDelivery": "true"}
    if filter_policy:
        attributes["FilterPolicy"] = json.dumps(filter_policy)
    sns.subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return url


@pytest.fixture
def validated_topic(aws: None) -> CapturedFanout:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    assert sns.create_topic(Name="validated")["TopicArn"] == TOPIC_ARN
    # The filter policy docs/CONTRACTS.md gives the transcode-1080p queue.
    transcode_filter = {"mediaType": ["video"], "engine": ["lambda"], "renditions": ["1080p"]}
    return CapturedFanout(
        all_url=_raw_queue(sns, sqs, "validated-all"),
        transcode_1080p_url=_raw_queue(sns, sqs, "transcode-1080p", transcode_filter),
        images_url=_raw_queue(sns, sqs, "images", {"mediaType": ["image"]}),
        audio_url=_raw_queue(sns, sqs, "audio", {"mediaType": ["audio"]}),
    )


class Pipeline:
    """The pieces around the ingest function, and ways to drive it."""

    def __init__(self, fanout: CapturedFanout, bus: CapturedEvents, context: FakeLambdaContext) -> None:
        self.fanout = fanout
        self.bus = bus
        self.context = context
        self.table = JobsTable("jobs")
        self.s3 = boto3.client("s3", region_name=REGION)
        self._template = json.loads((FIXTURES / "ingest_s3_event.json").read_text())

    def create_job(
        self, job_id: str = JOB_ID, *, filename: str = "clip.mp4", content_type: str = "video/mp4"
    ) -> JobRecord:
        """A job waiting for its upload, as the API creates it from what the client declared."""
        job = new_job(
            job_id=job_id,
            owner_id=OWNER,
            source=JobSource(filename=filename, contentType=content_type, size=1234, bucket="test-uploads"),
            now=NOW_MS,
            upload_deadline=NOW_MS + 900_000,
            retention_seconds=86_400,
        )
        self.table.create(job)
        return self.table.get(job_id)

    def put(self, data: bytes | Path, job_id: str = JOB_ID, *, content_type: str = "video/mp4") -> str:
        """Store the upload as the client's POST would; returns the ETag as S3 notifications carry it."""
        body = data.read_bytes() if isinstance(data, Path) else data
        response = self.s3.put_object(
            Bucket="test-uploads", Key=f"uploads/{job_id}/source", Body=body, ContentType=content_type
        )
        return response["ETag"].strip('"')

    def record(
        self,
        job_id: str = JOB_ID,
        *,
        etag: str = "d41d8cd98f00b204e9800998ecf8427e",
        size: int = 0,
        key: str | None = None,
        bucket: str = "test-uploads",
        event_name: str = "ObjectCreated:Post",
        receive_count: int = 1,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """An SQS record of the ingest queue, from the fixture, about one uploaded object."""
        record = copy.deepcopy(self._template["Records"][0])
        notification = json.loads(record["body"])
        s3_record = notification["Records"][0]
        s3_record["eventName"] = event_name
        s3_record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
        s3_record["s3"]["object"].update(key=key or f"uploads/{job_id}/source", size=size, eTag=etag)
        record["body"] = json.dumps(notification)
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        record["messageId"] = message_id or f"msg-{job_id}-{receive_count}"
        return record

    def deliver(self, *records: dict[str, Any]) -> dict[str, Any]:
        return ingest_handler.handler({"Records": list(records)}, self.context)

    def upload(
        self, data: bytes | Path, job_id: str = JOB_ID, *, content_type: str = "video/mp4", **record: Any
    ) -> dict[str, Any]:
        """PUT the object, then deliver its notification; returns the handler's batch response."""
        etag = self.put(data, job_id, content_type=content_type)
        size = len(data) if isinstance(data, bytes) else data.stat().st_size
        return self.deliver(self.record(job_id, etag=etag, size=size, **record))

    def job(self, job_id: str = JOB_ID) -> JobRecord:
        return self.table.get(job_id)


@pytest.fixture
def ingest_stack(jobs_table: Any, buckets: dict[str, str], ingest_env: Callable[..., None]) -> None:
    """The jobs table, the buckets and the ingest environment."""


@pytest.fixture
def pipeline(
    ingest_stack: None, validated_topic: CapturedFanout, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> Pipeline:
    return Pipeline(validated_topic, event_bus, lambda_context)


def s3_test_event() -> dict[str, Any]:
    """S3's test event as an SQS record. Beside a failing record it keeps the batch from failing entirely, which
    Powertools reports by raising (every record is then retried) instead of by a partial response."""
    return json.loads((FIXTURES / "ingest_s3_test_event.json").read_text())["Records"][0]


def assert_rejected(pipeline: Pipeline, response: dict[str, Any], code: RejectionCode) -> JobRecord:
    """The job is REJECTED with the code, nothing was retried or published, and Job Rejected went to the bus."""
    assert response == NO_FAILURES
    job = pipeline.job()
    assert job.status == JobStatus.REJECTED
    assert job.error is not None
    assert job.error.code == code.value
    assert job.error.message
    # The reason is the client's to read: it names no local path, bucket, key or ARN.
    assert [leak for leak in ("/tmp", "s3://", "arn:", "test-uploads", "uploads/") if leak in job.error.message] == []
    assert job.openJob is None
    assert pipeline.fanout.drain() == []
    events = pipeline.bus.drain()
    assert [(e["detail-type"], e["detail"]["jobId"], e["detail"]["error"]["code"]) for e in events] == [
        ("Job Rejected", JOB_ID, code.value)
    ]
    assert events[0]["detail"]["status"] == "REJECTED"
    return job


# --------------------------------------------------------------------------------------------------------------
# The service on its own: a recording store, a fixed clock, its own scratch directory
# --------------------------------------------------------------------------------------------------------------


class RecordingStore(S3Source):
    def __init__(self, s3_client: Any) -> None:
        super().__init__(s3_client)
        self.downloads: list[Path] = []

    def download(self, bucket: str, key: str, stored: StoredObject, destination: Path, *, max_bytes: int) -> int:
        self.downloads.append(destination)
        return super().download(bucket, key, stored, destination, max_bytes=max_bytes)


@dataclass
class ServiceUnderTest:
    service: UploadIngest
    store: RecordingStore
    scratch: Path


@pytest.fixture
def make_service(pipeline: Pipeline, tmp_path: Path) -> Callable[[], ServiceUnderTest]:
    """The service with a recording store, a fixed clock and its own scratch directory, from the current env."""

    def build() -> ServiceUnderTest:
        settings = IngestSettings.from_env()
        scratch = tmp_path / "scratch"
        scratch.mkdir(exist_ok=True)
        store = RecordingStore(boto3.client("s3", region_name=REGION))
        service = UploadIngest(
            rules=settings,
            jobs=pipeline.table,
            store=store,
            images=PillowImages(),
            media=Ffprobe(),
            fanout=SnsFanOut(settings.validated_topic_arn, boto3.client("sns", region_name=REGION)),
            events=EventPublisher(settings.event_bus_name, boto3.client("events", region_name=REGION)),
            clock=lambda: SERVICE_NOW_MS,
            scratch_dir=scratch,
        )
        return ServiceUnderTest(service, store, scratch)

    return build


def upload_ref(pipeline: Pipeline, data: bytes | Path) -> Upload:
    """PUT the object; the upload the notification would announce."""
    etag = pipeline.put(data)
    return Upload(job_id=JOB_ID, bucket="test-uploads", key=f"uploads/{JOB_ID}/source", etag=etag)
