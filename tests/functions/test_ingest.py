"""Ingest handler against moto: S3 notifications in SQS records in, job state, SNS fan-out and bus events out.

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
from urllib.parse import quote_plus

import boto3
import pytest

from functions.common.events import EventPublisher
from functions.common.job_state import begin_validation, new_job
from functions.common.jobs_table import JobsTable
from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from functions.common.renditions import DEFAULT_RENDITIONS, renditions_to_json
from functions.ingest import handler as ingest_handler
from functions.ingest.fanout import FanoutPublisher
from functions.ingest.notifications import Upload
from functions.ingest.probe import check_decodes_to_end, probe_media, read_probe_json
from functions.ingest.rejections import RejectionCode, UploadRejected
from functions.ingest.service import Outcome, UploadIngest
from functions.ingest.settings import IngestSettings
from functions.ingest.storage import SourceStore, StoredObject
from tests.functions.conftest import FIXTURES, REGION, CapturedEvents, FakeLambdaContext
from tests.media_samples import make_video

OWNER = "user-7c1f"
JOB_ID = "01JD2Y5V7Q8ZK3M4N5P6R7S8T9"
BYSTANDER_ID = "01JD2Y5V7Q8ZK3M4N5P6R7S8ZZ"
TOPIC_ARN = f"arn:aws:sns:{REGION}:123456789012:validated"
NOW_MS = 1_700_000_000_000  # when the test jobs were created (the past)
DEADLINE_SECONDS = 3600


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
    def audio_only(self) -> Path:
        path = self._path("tone.m4a")
        _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(path))
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
    """Everything published to the validated topic, plus what the `transcode-1080p` filter policy lets through."""

    all_url: str
    transcode_1080p_url: str

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

    def create_job(self, job_id: str = JOB_ID, *, filename: str = "clip.mp4") -> dict[str, Any]:
        job = new_job(
            job_id=job_id,
            owner_id=OWNER,
            source={"filename": filename, "contentType": "video/mp4", "size": 1234, "bucket": "test-uploads"},
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

    def upload(self, data: bytes | Path, job_id: str = JOB_ID, **record: Any) -> dict[str, Any]:
        """PUT the object, then deliver its notification; returns the handler's batch response."""
        etag = self.put(data, job_id)
        size = len(data) if isinstance(data, bytes) else data.stat().st_size
        return self.deliver(self.record(job_id, etag=etag, size=size, **record))

    def job(self, job_id: str = JOB_ID) -> dict[str, Any]:
        return self.table.get(job_id)


@pytest.fixture
def ingest_stack(jobs_table: Any, buckets: dict[str, str], ingest_env: Callable[..., None]) -> None:
    """The jobs table, the buckets and the ingest environment."""


@pytest.fixture
def pipeline(
    ingest_stack: None, validated_topic: CapturedFanout, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> Pipeline:
    return Pipeline(validated_topic, event_bus, lambda_context)


NO_FAILURES = {"batchItemFailures": []}


def _s3_test_event() -> dict[str, Any]:
    """S3's test event as an SQS record. Beside a failing record it keeps the batch from failing entirely, which
    Powertools reports by raising (every record is then retried) instead of by a partial response."""
    return json.loads((FIXTURES / "ingest_s3_test_event.json").read_text())["Records"][0]


def _assert_rejected(pipeline: Pipeline, response: dict[str, Any], code: RejectionCode) -> dict[str, Any]:
    """The job is REJECTED with the code, nothing was retried or published, and Job Rejected went to the bus."""
    assert response == NO_FAILURES
    job = pipeline.job()
    assert job["status"] == "REJECTED"
    assert job["error"]["code"] == code.value
    assert job["error"]["message"]
    assert "/tmp" not in job["error"]["message"]
    assert "openJob" not in job
    assert pipeline.fanout.drain() == []
    events = pipeline.bus.drain()
    assert [(e["detail-type"], e["detail"]["jobId"], e["detail"]["error"]["code"]) for e in events] == [
        ("Job Rejected", JOB_ID, code.value)
    ]
    assert events[0]["detail"]["status"] == "REJECTED"
    return job


# --------------------------------------------------------------------------------------------------------------
# Accepted uploads
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.media
def test_landscape_1080p_with_audio_is_accepted_and_fanned_out(pipeline: Pipeline, media: MediaLibrary) -> None:
    # GIVEN a job waiting for its upload, and a 1080p clip with audio uploaded to its key
    pipeline.create_job()
    etag = pipeline.put(media.landscape_1080p)
    size = media.landscape_1080p.stat().st_size

    # WHEN the notification arrives
    response = pipeline.deliver(pipeline.record(etag=etag, size=size))

    # THEN the job is PROCESSING with the probe and both renditions queued at their sizes
    assert response == NO_FAILURES
    job = pipeline.job()
    assert job["status"] == "PROCESSING"
    assert (job["mediaType"], job["engine"], job["error"]) == ("video", "lambda", None)
    probe = dict(job["probe"])
    assert 900 <= probe.pop("durationMs") <= 1100
    assert probe.pop("bitRate") > 0
    assert probe == {
        "width": 1920,
        "height": 1080,
        "codedWidth": 1920,
        "codedHeight": 1080,
        "rotation": 0,
        "videoCodec": "h264",
        "audioCodec": "aac",
        "hasAudio": True,
        "frameRate": 30,
        "formatName": "mov,mp4,m4a,3gp,3g2,mj2",
        "sizeBytes": size,
    }
    assert {name: (r["status"], r["width"], r["height"], r["order"]) for name, r in job["renditions"].items()} == {
        "720p": ("QUEUED", 1280, 720, 0),
        "1080p": ("QUEUED", 1920, 1080, 1),
    }
    assert job["openJob"] == "OPEN"
    assert NOW_MS < job["deadlineAt"] - DEADLINE_SECONDS * 1000 <= job["updatedAt"]  # from the upload's arrival

    # AND one fan-out message with the contract's attributes and body
    [message] = pipeline.fanout.drain()
    assert message.attributes == {"mediaType": "video", "engine": "lambda", "renditions": ["720p", "1080p"]}
    assert message.body == {
        "jobId": JOB_ID,
        "ownerId": OWNER,
        "engine": "lambda",
        "source": {"bucket": "test-uploads", "key": f"uploads/{JOB_ID}/source", "etag": etag},
        "probe": {**job["probe"], "frameRate": 30.0},
        "renditions": [
            {"name": "720p", "width": 1280, "height": 720, "maxVideoBitrateKbps": 3000, "audioBitrateKbps": 128},
            {"name": "1080p", "width": 1920, "height": 1080, "maxVideoBitrateKbps": 6000, "audioBitrateKbps": 160},
        ],
    }
    # AND the transcode-1080p queue's filter policy matches it
    assert [m.body["jobId"] for m in pipeline.fanout.drain(pipeline.fanout.transcode_1080p_url)] == [JOB_ID]

    # AND Job Accepted is on the bus
    events = pipeline.bus.drain()
    assert [(e["source"], e["detail-type"], e["detail"]) for e in events] == [
        (
            "media-pipeline",
            "Job Accepted",
            {"jobId": JOB_ID, "ownerId": OWNER, "engine": "lambda", "renditions": ["720p", "1080p"]},
        )
    ]


@pytest.mark.media
def test_480p_source_keeps_the_lowest_rendition_at_its_own_size(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()

    response = pipeline.upload(media.sd_480p)

    assert response == NO_FAILURES
    job = pipeline.job()
    assert job["status"] == "PROCESSING"
    assert (job["probe"]["width"], job["probe"]["height"], job["probe"]["hasAudio"]) == (854, 480, False)
    r720, r1080 = job["renditions"]["720p"], job["renditions"]["1080p"]
    assert (r720["status"], r720["width"], r720["height"]) == ("QUEUED", 854, 480)
    assert "480p" in r720["reason"]
    assert (r1080["status"], r1080["reason"]) == ("SKIPPED", "source is 480p; no upscaling")
    [message] = pipeline.fanout.drain()
    assert message.attributes["renditions"] == ["720p"]
    assert [r["name"] for r in message.body["renditions"]] == ["720p"]
    # The 1080p transcoder's filter policy does not match a job that skips 1080p.
    assert pipeline.fanout.drain(pipeline.fanout.transcode_1080p_url) == []


@pytest.mark.media
@pytest.mark.parametrize(
    ("clip", "coded", "rotation"),
    [("rotated_portrait", (1920, 1080), 90), ("coded_portrait", (1080, 1920), 0)],
    ids=["display-matrix-90", "coded-1080x1920"],
)
def test_portrait_sources_keep_their_orientation(
    pipeline: Pipeline, media: MediaLibrary, clip: str, coded: tuple[int, int], rotation: int
) -> None:
    pipeline.create_job()

    response = pipeline.upload(getattr(media, clip))

    assert response == NO_FAILURES
    job = pipeline.job()
    probe = job["probe"]
    assert (probe["width"], probe["height"], probe["rotation"]) == (1080, 1920, rotation)
    assert (probe["codedWidth"], probe["codedHeight"]) == coded
    assert {name: (r["status"], r["width"], r["height"]) for name, r in job["renditions"].items()} == {
        "720p": ("QUEUED", 720, 1280),
        "1080p": ("QUEUED", 1080, 1920),
    }
    [message] = pipeline.fanout.drain()
    assert [(r["width"], r["height"]) for r in message.body["renditions"]] == [(720, 1280), (1080, 1920)]


@pytest.mark.media
def test_odd_dimensions_plan_even_targets(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()

    pipeline.upload(media.odd_dimensions)

    job = pipeline.job()
    assert (job["probe"]["width"], job["probe"]["height"]) == (1281, 721)
    assert (job["renditions"]["720p"]["width"], job["renditions"]["720p"]["height"]) == (1280, 720)
    assert job["renditions"]["1080p"]["status"] == "SKIPPED"


@pytest.mark.media
def test_source_without_audio_says_so(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()

    pipeline.upload(media.no_audio)

    probe = pipeline.job()["probe"]
    assert (probe["hasAudio"], probe["audioCodec"], probe["videoCodec"]) == (False, None, "h264")
    [message] = pipeline.fanout.drain()
    assert message.body["probe"]["hasAudio"] is False


@pytest.mark.media
def test_mpegts_container_is_accepted(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()

    response = pipeline.upload(media.mpegts)

    assert response == NO_FAILURES
    job = pipeline.job()
    assert (job["status"], job["probe"]["formatName"], job["probe"]["hasAudio"]) == ("PROCESSING", "mpegts", True)


@pytest.mark.media
def test_long_source_goes_to_mediaconvert_when_engine_is_auto(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None]
) -> None:
    ingest_env(MEDIACONVERT_THRESHOLD_SECONDS="1")
    pipeline.create_job()

    pipeline.upload(media.small_two_seconds)

    assert pipeline.job()["engine"] == "mediaconvert"
    [message] = pipeline.fanout.drain()
    assert (message.attributes["engine"], message.body["engine"]) == ("mediaconvert", "mediaconvert")
    assert pipeline.bus.drain()[0]["detail"]["engine"] == "mediaconvert"


@pytest.mark.media
def test_a_short_source_too_heavy_for_a_transcode_function_goes_to_mediaconvert(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None]
) -> None:
    # GIVEN a transcode function with one second of encode budget at 1 Mpx/s per vCPU, under a high threshold
    ingest_env(TRANSCODE_TIMEOUT_SECONDS="31", LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND="1")
    pipeline.create_job()

    # WHEN a two-second clip arrives (far below the 600 s threshold, far above the budget)
    pipeline.upload(media.small_two_seconds)

    # THEN the ceiling wins over the threshold
    assert pipeline.job()["engine"] == "mediaconvert"
    [message] = pipeline.fanout.drain()
    assert message.attributes["engine"] == "mediaconvert"


# --------------------------------------------------------------------------------------------------------------
# Bad uploads: each ends REJECTED with its code, without an exception or a retry, touching no other job
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadUpload:
    clip: str
    """A MediaLibrary property."""
    code: RejectionCode
    env: tuple[tuple[str, str], ...] = ()
    """Limits tightened for the case."""


BAD_UPLOADS = [
    pytest.param(BadUpload("text_named_mp4", RejectionCode.UNSUPPORTED_FORMAT), id="text-named-mp4"),
    pytest.param(BadUpload("hls_playlist", RejectionCode.UNSUPPORTED_FORMAT), id="hls-playlist"),
    pytest.param(BadUpload("concat_script", RejectionCode.UNSUPPORTED_FORMAT), id="concat-script"),
    pytest.param(BadUpload("truncated", RejectionCode.CORRUPT_MEDIA), id="truncated"),
    pytest.param(BadUpload("truncated_faststart", RejectionCode.CORRUPT_MEDIA), id="truncated-index-first"),
    pytest.param(BadUpload("audio_only", RejectionCode.NO_VIDEO_STREAM), id="audio-only"),
    pytest.param(
        BadUpload("small_two_seconds", RejectionCode.DURATION_TOO_LONG, (("MAX_DURATION_SECONDS", "1"),)),
        id="too-long",
    ),
    pytest.param(
        BadUpload(
            "small_two_seconds",
            RejectionCode.DURATION_TOO_LONG,
            (
                ("ENGINE", "lambda"),
                ("TRANSCODE_TIMEOUT_SECONDS", "31"),
                ("LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND", "1"),
            ),
        ),
        id="beyond-the-lambda-ceiling",
    ),
    pytest.param(
        BadUpload("landscape_1080p", RejectionCode.RESOLUTION_TOO_HIGH, (("MAX_WIDTH", "1280"), ("MAX_HEIGHT", "720"))),
        id="resolution-too-high",
    ),
    pytest.param(BadUpload("small", RejectionCode.UPLOAD_TOO_LARGE, (("MAX_UPLOAD_BYTES", "1000"),)), id="too-large"),
]


@pytest.mark.media
@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_upload_is_rejected_without_retry(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None], case: BadUpload
) -> None:
    # GIVEN the job, and another job that is still waiting for its upload
    ingest_env(**dict(case.env))
    pipeline.create_job()
    bystander = pipeline.create_job(BYSTANDER_ID)

    # WHEN the bad upload's notification arrives
    response = pipeline.upload(getattr(media, case.clip))

    # THEN the job is REJECTED with the code, nothing is published, and the other job is untouched
    job = _assert_rejected(pipeline, response, case.code)
    assert pipeline.job(BYSTANDER_ID) == bystander
    if case.code in (RejectionCode.DURATION_TOO_LONG, RejectionCode.RESOLUTION_TOO_HIGH):
        assert job["probe"]["durationMs"] > 0  # the client can see what was measured


def test_empty_upload_is_rejected_and_counted(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline.create_job()

    response = pipeline.upload(b"")

    _assert_rejected(pipeline, response, RejectionCode.EMPTY_UPLOAD)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_code = [m for m in emitted if "UploadsRejectedByCode" in m]
    assert [m["code"] for m in by_code] == ["EMPTY_UPLOAD"]
    rejected = [m for m in emitted if "UploadsRejected" in m]
    assert [m["_aws"]["CloudWatchMetrics"][0]["Namespace"] for m in rejected] == ["MediaPipelineTest"]


def test_too_large_upload_is_rejected_without_probing(pipeline: Pipeline, ingest_env: Callable[..., None]) -> None:
    ingest_env(MAX_UPLOAD_BYTES="10")
    pipeline.create_job()

    response = pipeline.upload(b"x" * 11)

    job = _assert_rejected(pipeline, response, RejectionCode.UPLOAD_TOO_LARGE)
    assert job["probe"] is None


def test_notification_for_a_deleted_object_rejects_upload_missing(pipeline: Pipeline) -> None:
    pipeline.create_job()

    response = pipeline.deliver(pipeline.record(size=10))

    _assert_rejected(pipeline, response, RejectionCode.UPLOAD_MISSING)


def test_object_replaced_after_the_notification_is_not_validated(pipeline: Pipeline) -> None:
    # GIVEN the client re-posted the upload form: the object no longer has the notified ETag
    pipeline.create_job()
    pipeline.put(b"the second upload")

    response = pipeline.deliver(pipeline.record(etag="0123456789abcdef0123456789abcdef", size=16))

    job = _assert_rejected(pipeline, response, RejectionCode.UPLOAD_MISSING)
    assert "replaced" in job["error"]["message"]


@pytest.mark.media
def test_hls_and_concat_fixtures_are_playlists_ffprobe_would_follow(media: MediaLibrary) -> None:
    """The playlist fixtures are real: without the whitelists, ffprobe opens them and the files they name."""
    for playlist, expected in ((media.hls_playlist, "hls"), (media.concat_script, "concat")):
        result = subprocess.run(
            [ffprobe_path(), "-v", "error", "-of", "json", "-show_format", "-show_streams", playlist.name],
            cwd=playlist.parent,
            capture_output=True,
            text=True,
            env=tool_env(),
            check=True,
        )
        probed = json.loads(result.stdout)
        assert probed["format"]["format_name"] == expected
        # The picture's size is only in the media files the playlist names: they were opened.
        video = [(s["codec_name"], s["width"], s["height"]) for s in probed["streams"] if s["codec_type"] == "video"]
        assert video == [("h264", 320, 240)]


@pytest.mark.media
def test_playlist_is_refused_when_opened_not_after_reading_it(media: MediaLibrary) -> None:
    with pytest.raises(UploadRejected) as rejected:
        read_probe_json(media.hls_playlist)

    assert rejected.value.code is RejectionCode.UNSUPPORTED_FORMAT
    assert "not on whitelist" in rejected.value.detail


@pytest.mark.media
def test_truncated_file_with_index_first_probes_but_fails_the_decode_check(media: MediaLibrary) -> None:
    path = media.truncated_faststart
    probed = probe_media(path, size_bytes=path.stat().st_size)  # the header is intact: ffprobe alone accepts it
    assert probed.probe["durationMs"] >= 900

    with pytest.raises(UploadRejected) as rejected:
        check_decodes_to_end(path, probed)

    assert rejected.value.code is RejectionCode.CORRUPT_MEDIA
    assert rejected.value.probe == probed.probe


@pytest.mark.media
def test_complete_file_passes_the_decode_check(media: MediaLibrary) -> None:
    path = media.small
    check_decodes_to_end(path, probe_media(path, size_bytes=path.stat().st_size))


# --------------------------------------------------------------------------------------------------------------
# Duplicates, redeliveries and notifications that are not uploads
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.media
def test_duplicate_notification_publishes_once(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()
    etag = pipeline.put(media.small)
    notification = pipeline.record(etag=etag, size=media.small.stat().st_size)
    duplicate = {**notification, "messageId": "another-delivery-of-the-same-s3-event"}

    first = pipeline.deliver(notification)
    written = pipeline.job()
    second = pipeline.deliver(duplicate)

    assert first == second == NO_FAILURES
    assert pipeline.job() == written
    assert len(pipeline.fanout.drain()) == 1
    assert [e["detail-type"] for e in pipeline.bus.drain()] == ["Job Accepted"]


@pytest.mark.media
@pytest.mark.filterwarnings("ignore:No application metrics")  # the failed attempt records none
def test_failed_publish_is_made_good_by_the_redelivery(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None]
) -> None:
    # GIVEN the first attempt wrote PROCESSING but could not publish (the topic is unreachable)
    pipeline.create_job()
    etag = pipeline.put(media.small)
    size = media.small.stat().st_size
    ingest_env(VALIDATED_TOPIC_ARN=f"{TOPIC_ARN}-unreachable")
    first = pipeline.deliver(pipeline.record(etag=etag, size=size, message_id="m1"), _s3_test_event())
    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert pipeline.job()["status"] == "PROCESSING"
    assert pipeline.fanout.drain() == []

    # WHEN SQS redelivers the same message
    ingest_env(VALIDATED_TOPIC_ARN=TOPIC_ARN)
    second = pipeline.deliver(pipeline.record(etag=etag, size=size, message_id="m1", receive_count=2))

    # THEN the plan that was written is published, once
    assert second == NO_FAILURES
    [message] = pipeline.fanout.drain()
    assert message.body["jobId"] == JOB_ID
    assert message.attributes["renditions"] == ["720p"]
    assert [r["width"] for r in message.body["renditions"]] == [pipeline.job()["renditions"]["720p"]["width"]]
    assert [e["detail-type"] for e in pipeline.bus.drain()] == ["Job Accepted"]


@pytest.mark.filterwarnings("ignore:No application metrics")  # the failed attempt records none
def test_failed_rejection_announcement_is_made_good_by_the_redelivery(
    pipeline: Pipeline, ingest_env: Callable[..., None]
) -> None:
    pipeline.create_job()
    etag = pipeline.put(b"")
    ingest_env(EVENT_BUS_NAME="no-such-bus")
    first = pipeline.deliver(pipeline.record(etag=etag, message_id="m1"), _s3_test_event())
    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert pipeline.job()["status"] == "REJECTED"

    ingest_env(EVENT_BUS_NAME="media-pipeline-test")
    second = pipeline.deliver(pipeline.record(etag=etag, message_id="m1", receive_count=2))

    _assert_rejected(pipeline, second, RejectionCode.EMPTY_UPLOAD)


@pytest.mark.media
def test_redelivery_while_validating_validates_again(pipeline: Pipeline, media: MediaLibrary) -> None:
    # GIVEN an attempt that moved the job to VALIDATING and then died (e.g. the function timed out)
    pipeline.create_job()
    pipeline.table.change(JOB_ID, lambda job: begin_validation(job, now=NOW_MS, deadline=NOW_MS + 1))
    etag = pipeline.put(media.small)
    size = media.small.stat().st_size

    # WHEN a *different* delivery of the event arrives, nothing happens: another attempt may be on it
    assert pipeline.deliver(pipeline.record(etag=etag, size=size, receive_count=1)) == NO_FAILURES
    assert pipeline.job()["status"] == "VALIDATING"
    assert pipeline.fanout.drain() == []

    # WHEN SQS redelivers the message of the attempt that died, validation runs again
    assert pipeline.deliver(pipeline.record(etag=etag, size=size, receive_count=2)) == NO_FAILURES
    assert pipeline.job()["status"] == "PROCESSING"
    assert len(pipeline.fanout.drain()) == 1


def test_redelivery_for_a_finished_job_does_nothing(pipeline: Pipeline) -> None:
    job = pipeline.create_job()
    pipeline.table.change(
        JOB_ID, lambda j: {k: v for k, v in j.items() if k not in ("openJob", "deadlineAt")} | {"status": "COMPLETED"}
    )
    completed = pipeline.job()
    assert completed["version"] == job["version"] + 1

    response = pipeline.deliver(pipeline.record(receive_count=3))

    assert response == NO_FAILURES
    assert pipeline.job() == completed
    assert pipeline.fanout.drain() == []
    assert pipeline.bus.drain() == []


def test_upload_for_an_unknown_job_is_dropped(pipeline: Pipeline) -> None:
    response = pipeline.upload(b"data", job_id="01JD2Y5V7Q8ZK3M4N5P6R7S8XX")

    assert response == NO_FAILURES
    assert boto3.client("dynamodb", region_name=REGION).scan(TableName="jobs")["Count"] == 0
    assert pipeline.fanout.drain() == []
    assert pipeline.bus.drain() == []


@pytest.mark.parametrize(
    "changes",
    [
        {"key": f"uploads/{JOB_ID}/source.mp4"},
        {"key": f"uploads/{JOB_ID}/../{JOB_ID}/source"},
        {"key": f"elsewhere/{JOB_ID}/source"},
        {"key": "uploads//source"},
        {"bucket": "someone-elses-bucket"},
        {"event_name": "ObjectRemoved:Delete"},
    ],
    ids=["extra-suffix", "dot-dot", "other-prefix", "empty-job-id", "other-bucket", "removed"],
)
def test_notification_that_is_not_an_upload_is_dropped(pipeline: Pipeline, changes: dict[str, str]) -> None:
    job = pipeline.create_job()

    response = pipeline.deliver(pipeline.record(size=10, **changes))

    assert response == NO_FAILURES
    assert pipeline.job() == job
    assert pipeline.bus.drain() == []


def test_url_encoded_key_is_decoded(pipeline: Pipeline) -> None:
    # The emulated S3 encodes '/' as well; real S3 encodes spaces and specials. Either way the key is decoded.
    pipeline.create_job()

    response = pipeline.upload(b"", key=quote_plus(f"uploads/{JOB_ID}/source"))

    _assert_rejected(pipeline, response, RejectionCode.EMPTY_UPLOAD)


def test_s3_test_event_is_acknowledged(pipeline: Pipeline) -> None:
    event = json.loads((FIXTURES / "ingest_s3_test_event.json").read_text())

    response = ingest_handler.handler(event, pipeline.context)

    assert response == NO_FAILURES
    assert pipeline.bus.drain() == []


def test_body_that_is_not_a_notification_fails_only_its_record(pipeline: Pipeline) -> None:
    # GIVEN a batch: S3's test event, an empty upload, and a message that is not an S3 notification at all
    pipeline.create_job()
    etag = pipeline.put(b"")
    test_event = _s3_test_event()
    garbage = {**pipeline.record(message_id="garbage"), "body": "not json"}
    wrong_shape = {**pipeline.record(message_id="wrong-shape"), "body": json.dumps({"hello": "world"})}

    response = pipeline.deliver(test_event, pipeline.record(etag=etag), garbage, wrong_shape)

    # THEN only the malformed records fail (to be retried and land in the DLQ); the upload is still rejected
    assert response == {"batchItemFailures": [{"itemIdentifier": "garbage"}, {"itemIdentifier": "wrong-shape"}]}
    assert pipeline.job()["error"]["code"] == "EMPTY_UPLOAD"


# --------------------------------------------------------------------------------------------------------------
# The service on its own: scratch files and the order of the checks
# --------------------------------------------------------------------------------------------------------------


class RecordingStore(SourceStore):
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


SERVICE_NOW_MS = NOW_MS + 5_000


@pytest.fixture
def make_service(pipeline: Pipeline, tmp_path: Path) -> Callable[[], ServiceUnderTest]:
    """The service with a recording store, a fixed clock and its own scratch directory, from the current env."""

    def build() -> ServiceUnderTest:
        settings = IngestSettings.from_env()
        scratch = tmp_path / "scratch"
        scratch.mkdir(exist_ok=True)
        store = RecordingStore(boto3.client("s3", region_name=REGION))
        service = UploadIngest(
            settings=settings,
            jobs=pipeline.table,
            store=store,
            fanout=FanoutPublisher(settings.validated_topic_arn, boto3.client("sns", region_name=REGION)),
            events=EventPublisher(settings.event_bus_name, boto3.client("events", region_name=REGION)),
            clock=lambda: SERVICE_NOW_MS,
            scratch_dir=scratch,
        )
        return ServiceUnderTest(service, store, scratch)

    return build


def _upload_ref(pipeline: Pipeline, data: bytes | Path) -> Upload:
    etag = pipeline.put(data)
    return Upload(job_id=JOB_ID, bucket="test-uploads", key=f"uploads/{JOB_ID}/source", etag=etag)


def test_size_is_checked_before_downloading(
    pipeline: Pipeline, make_service: Callable[[], ServiceUnderTest], ingest_env: Callable[..., None]
) -> None:
    ingest_env(MAX_UPLOAD_BYTES="4")
    under_test = make_service()
    pipeline.create_job()

    result = under_test.service.ingest(_upload_ref(pipeline, b"12345"), redelivered=False)

    assert (result.outcome, result.code) == (Outcome.REJECTED, "UPLOAD_TOO_LARGE")
    assert under_test.store.downloads == []


@pytest.mark.media
@pytest.mark.parametrize(("clip", "outcome"), [("small", Outcome.ACCEPTED), ("text_named_mp4", Outcome.REJECTED)])
def test_scratch_copy_is_removed_whatever_the_outcome(
    pipeline: Pipeline,
    media: MediaLibrary,
    make_service: Callable[[], ServiceUnderTest],
    clip: str,
    outcome: Outcome,
) -> None:
    under_test = make_service()
    pipeline.create_job()

    result = under_test.service.ingest(_upload_ref(pipeline, getattr(media, clip)), redelivered=False)

    assert result.outcome is outcome
    [downloaded] = under_test.store.downloads
    assert (downloaded.parent.parent, downloaded.name) == (under_test.scratch, "source")
    assert list(under_test.scratch.iterdir()) == []


@pytest.mark.media
def test_processing_deadline_runs_from_the_upload(
    pipeline: Pipeline, media: MediaLibrary, make_service: Callable[[], ServiceUnderTest]
) -> None:
    under_test = make_service()
    pipeline.create_job()

    under_test.service.ingest(_upload_ref(pipeline, media.small), redelivered=False)

    job = pipeline.job()
    assert (job["status"], job["deadlineAt"]) == ("PROCESSING", SERVICE_NOW_MS + DEADLINE_SECONDS * 1000)
