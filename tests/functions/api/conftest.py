"""Builders of the api tests: HTTP API payload 2.0 events as the JWT authorizer passes them on, whole answers, jobs
in the jobs table."""

from __future__ import annotations

import base64
import copy
import io
import json
from collections.abc import Iterator
from functools import partial
from typing import Any
from urllib.parse import urlencode

import pytest
from ulid import ULID

from functions.api import handler as api
from functions.common import job_state
from functions.common.jobs_table import JobsTable
from functions.contracts.jobs import ImageMetadata, JobRecord, JobSource
from tests.functions.conftest import FIXTURES

ALICE = "user-alice"
BOB = "user-bob"
JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}
SETTINGS_ENV = {
    "JOBS_TABLE_NAME": "jobs",
    "UPLOADS_BUCKET": "up",
    "OUTPUTS_BUCKET": "out",
    "MAX_UPLOAD_BYTES": "1000",
    "MAX_IMAGE_UPLOAD_BYTES": "100",
    "MAX_AUDIO_UPLOAD_BYTES": "500",
    "ALLOWED_CONTENT_TYPES": "video/mp4,Video/QuickTime,image/png,audio/mpeg",
    "UPLOAD_URL_TTL_SECONDS": "600",
    "DOWNLOAD_URL_TTL_SECONDS": "120",
    "JOB_RETENTION_DAYS": "7",
}
"""The job routes' variables, for the tests of the settings and of the rules that use them."""
_BASE_EVENT = json.loads((FIXTURES / "api_get_job_event.json").read_text())


@pytest.fixture(autouse=True)
def fresh_api() -> Iterator[None]:
    """Each test builds the services from its own environment, inside its own moto."""
    api.jobs_service.cache_clear()
    api.webhooks_service.cache_clear()
    yield
    api.jobs_service.cache_clear()
    api.webhooks_service.cache_clear()


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    stream = io.StringIO()
    monkeypatch.setattr(api.logger.logger_handler, "stream", stream)
    return stream


def http_event(
    method: str,
    path: str,
    *,
    sub: str | None = ALICE,
    body: str | dict[str, Any] | None = None,
    query: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event, as the JWT authorizer passes it on, for this request.

    A dict body is sent as its JSON; `sub=None` leaves the verified token without a subject.
    """
    event = copy.deepcopy(_BASE_EVENT)
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    if query is not None:
        event["rawQueryString"] = urlencode(query)
        event["queryStringParameters"] = query
    if body is not None:
        text = body if isinstance(body, str) else json.dumps(body)
        event["body"] = base64.b64encode(text.encode()).decode() if base64_body else text
        event["isBase64Encoded"] = base64_body
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    if sub is None:
        del claims["sub"]
    else:
        claims["sub"] = sub
    return event


def call(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    """The handler's answer with its body parsed, so a test compares the whole response in one assertion."""
    response = api.handler(event, lambda_context)
    body = response.get("body")
    return {
        "statusCode": response["statusCode"],
        "headers": response["headers"],
        "body": json.loads(body) if body else None,
    }


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, **(headers or {})},
        "body": {"error": {"code": code, "message": message}},
    }


def seed_job(owner: str, created_ms: int) -> JobRecord:
    """A job of `owner`'s created at `created_ms` (its ID says when), waiting for its upload, in the jobs table."""
    job_id = str(ULID.from_timestamp(created_ms / 1000))
    job = job_state.new_job(
        job_id=job_id,
        owner_id=owner,
        source=JobSource(
            filename=f"{job_id}.mp4",
            contentType="video/mp4",
            size=1000,
            bucket="test-uploads",
            key=f"uploads/{job_id}/source",
        ),
        now=created_ms,
        upload_deadline=created_ms + 1_800_000,
        retention_seconds=86_400,
    )
    JobsTable("jobs").create(job)
    return job


def processing_job_with_one_rendition_done(owner: str) -> JobRecord:
    """A job through the real state machine: 480p done, 720p transcoding, 1080p skipped (no upscaling)."""
    created = 1_795_000_000_000
    job_id = str(ULID.from_timestamp(created / 1000))
    job = job_state.new_job(
        job_id=job_id,
        owner_id=owner,
        source=JobSource(
            filename="talk.mov",
            contentType="video/quicktime",
            size=777,
            bucket="test-uploads",
            key=f"uploads/{job_id}/source",
        ),
        now=created,
        upload_deadline=created + 1_800_000,
        retention_seconds=86_400,
    )
    probe = {"durationMs": 4000, "width": 1280, "height": 720, "videoCodec": "h264", "audioCodec": "aac", "rotation": 0}
    job = job_state.begin_validation(job, now=created + 1000, deadline=created + 3_600_000)
    job = job_state.begin_processing(
        job,
        media_type="video",
        engine="lambda",
        probe=probe,
        planned=[
            {"name": "480p", "status": "QUEUED", "width": 854, "height": 480},
            {"name": "720p", "status": "QUEUED", "width": 1280, "height": 720},
            {"name": "1080p", "status": "SKIPPED", "width": 1920, "height": 1080, "reason": "source is 720p"},
        ],
        now=created + 2000,
    )
    job = job_state.start_rendition(job, name="720p", now=created + 2500)
    job = job_state.complete_rendition(
        job,
        name="480p",
        output={
            "bucket": "test-outputs",
            "key": f"outputs/{job_id}/480p.mp4",
            "width": 854,
            "height": 480,
            "durationMs": 4000,
            "bytes": 250_000,
            "contentType": "video/mp4",
        },
        now=created + 3000,
    )
    assert job is not None
    # DynamoDB maps keep no order: store the renditions in reverse so only `order` can put them right.
    job.renditions = dict(reversed(list(job.renditions.items())))
    JobsTable("jobs").create(job)
    return job


IMAGE_METADATA = {
    "format": "JPEG",
    "width": 4000,
    "height": 3000,
    "frames": 1,
    "mode": "RGB",
    "hasIccProfile": True,
    "cameraMake": "Canon",
    "cameraModel": "EOS 5D",
    "capturedAt": "2026:05:04 10:11:12",
}


def _processing(
    owner: str, *, filename: str, content_type: str, media_type: str, probe: dict[str, Any], planned: list[Any]
) -> JobRecord:
    """A job of `owner`'s through the real state machine up to PROCESSING with this plan."""
    created = 1_795_000_000_000
    job_id = str(ULID.from_timestamp(created / 1000))
    job = job_state.new_job(
        job_id=job_id,
        owner_id=owner,
        source=JobSource(
            filename=filename,
            contentType=content_type,
            size=777,
            bucket="test-uploads",
            key=f"uploads/{job_id}/source",
        ),
        now=created,
        upload_deadline=created + 1_800_000,
        retention_seconds=86_400,
    )
    job = job_state.begin_validation(job, now=created + 1000, deadline=created + 3_600_000)
    job = job_state.begin_processing(
        job, media_type=media_type, engine="lambda", probe=probe, planned=planned, now=created + 2000
    )
    assert job is not None
    return job


def _output(job: JobRecord, file: str, content_type: str, engine: str, **sizes: Any) -> dict[str, Any]:
    """What a `Rendition Completed` of the images or audio function reports about the output `file` it wrote."""
    return {
        "bucket": "test-outputs",
        "key": f"outputs/{job.jobId}/{file}",
        "contentType": content_type,
        "engine": engine,
        **sizes,
    }


def image_job_completed(owner: str) -> JobRecord:
    """An image job as the tracker leaves it: two derivatives and the metadata unit done, the metadata on the job.

    The large derivative kept the source's 1000x750 (never upscaled); the thumbnail is 320x240.
    """
    planned = [
        {"name": "thumb-webp", "status": "QUEUED", "kind": "image", "format": "webp", "width": 320, "height": 240},
        {"name": "large-jpeg", "status": "QUEUED", "kind": "image", "format": "jpeg", "width": 1000, "height": 750},
        {"name": "metadata", "status": "QUEUED", "kind": "metadata"},
    ]
    probe = {"durationMs": 0, "width": 1000, "height": 750, "frames": 1, "mode": "RGB", "sizeBytes": 777}
    job = _processing(
        owner, filename="photo.jpg", content_type="image/jpeg", media_type="image", probe=probe, planned=planned
    )
    now = job.updatedAt
    steps = [
        partial(
            job_state.complete_rendition,
            name="thumb-webp",
            output=_output(job, "thumb-webp.webp", "image/webp", "images", width=320, height=240, bytes=9_000),
            now=now + 1000,
        ),
        partial(job_state.record_image_metadata, metadata=ImageMetadata(**IMAGE_METADATA), now=now + 2000),
        partial(
            job_state.complete_rendition,
            name="metadata",
            output=_output(job, "metadata.json", "application/json", "images", bytes=200),
            now=now + 2000,
        ),
        partial(
            job_state.complete_rendition,
            name="large-jpeg",
            output=_output(job, "large-jpeg.jpg", "image/jpeg", "images", width=1000, height=750, bytes=120_000),
            now=now + 3000,
        ),
    ]
    job = job_state.apply_in_order(job, steps)
    assert job is not None
    JobsTable("jobs").create(job)
    return job


def audio_job_completed(owner: str) -> JobRecord:
    """An audio job as the tracker leaves it: its AAC rendition and its waveform done."""
    planned = [
        {"name": "audio", "status": "QUEUED", "kind": "audio", "format": "m4a", "audioBitrateKbps": 128},
        {"name": "waveform", "status": "QUEUED", "kind": "waveform", "format": "png", "width": 1800, "height": 280},
    ]
    probe = {
        "durationMs": 5_000,
        "audioCodec": "mp3",
        "hasAudio": True,
        "channels": 2,
        "sampleRate": 44_100,
        "formatName": "mp3",
        "sizeBytes": 777,
    }
    job = _processing(
        owner, filename="song.mp3", content_type="audio/mpeg", media_type="audio", probe=probe, planned=planned
    )
    now = job.updatedAt
    job = job_state.apply_in_order(
        job,
        [
            partial(
                job_state.complete_rendition,
                name="waveform",
                output=_output(job, "waveform.png", "image/png", "audio", width=1800, height=280, bytes=6_000),
                now=now + 1000,
            ),
            partial(
                job_state.complete_rendition,
                name="audio",
                output=_output(job, "audio.m4a", "audio/mp4", "audio", durationMs=5_000, bytes=80_000),
                now=now + 2000,
            ),
        ],
    )
    assert job is not None
    JobsTable("jobs").create(job)
    return job
