"""Builders of the submit tests: jobs as ingest accepts them, the queue's SQS event, the function on moto."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from functions.common import job_state
from functions.common.clients import aws_client
from functions.common.jobs_table import JobsTable
from functions.common.renditions import DEFAULT_RENDITIONS, Rendition
from functions.contracts.fanout import FanOutMessage
from functions.contracts.jobs import JobRecord, JobSource, Probe
from functions.ingest.service import plan_renditions
from functions.submit import handler
from local.engine.moto_patches import honour_copy_source_if_match
from tests.functions.conftest import REGION, CapturedEvents, FakeLambdaContext
from tests.functions.conftest import sqs_event as shared_sqs_event
from tests.functions.submit.mediaconvert_service import FakeMediaConvert

JOB_ID = "01JBQ7Z8K3M4N5P6Q7R8S9T0VW"
OWNER_ID = "user-1"
NOW = 1_795_000_000_000
QUEUE_ARN = "arn:aws:mediaconvert:us-east-1:123456789012:queues/mediaconvert-jobs-1a2b3c4"
ROLE_ARN = "arn:aws:iam::123456789012:role/mediaconvert-service-role-5d6e7f8"
VALIDATED_KEY = f"uploads/{JOB_ID}/validated"
UPLOADED = b"the video ingest validated"


def processing_job(
    *,
    job_id: str = JOB_ID,
    owner_id: str = OWNER_ID,
    width: int = 1920,
    height: int = 1080,
    has_audio: bool = True,
    ladder: Sequence[Rendition] = DEFAULT_RENDITIONS,
    engine: str = "mediaconvert",
    duration_ms: int = 2000,
) -> JobRecord:
    """A job ingest accepted: PROCESSING with the plan ingest makes for a `width` x `height` source and `ladder`."""
    job = job_state.new_job(
        job_id=job_id, owner_id=owner_id, source=JobSource(), now=NOW, upload_deadline=NOW + 1, retention_seconds=3600
    )
    validating = job_state.begin_validation(job, now=NOW, deadline=NOW + 7_200_000)
    assert validating is not None
    probe = Probe(durationMs=duration_ms, width=width, height=height, hasAudio=has_audio, frameRate=30.0)
    planned = plan_renditions(width, height, sorted(ladder, key=lambda r: r.height))
    moved = job_state.begin_processing(
        validating, media_type="video", engine=engine, probe=probe, planned=planned, now=NOW
    )
    assert moved is not None
    return moved


def sqs_event(*bodies: dict[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
    return shared_sqs_event("submit_sqs_event.json", *bodies, receive_count=receive_count)


@dataclass
class Stack:
    """The submit function deployed against moto and the fake MediaConvert."""

    mediaconvert: FakeMediaConvert
    jobs: JobsTable
    bus: CapturedEvents
    context: FakeLambdaContext
    s3: Any

    def upload(self, body: bytes = UPLOADED, job_id: str = JOB_ID) -> str:
        """A POST of the upload form; the object's ETag, unquoted, as ingest puts it in the message."""
        return self.s3.put_object(Bucket="test-uploads", Key=f"uploads/{job_id}/source", Body=body)["ETag"].strip('"')

    def create_job(self, *, engine: str = "mediaconvert", has_audio: bool = True, job_id: str = JOB_ID) -> JobRecord:
        """A job ingest accepted: PROCESSING with the plan for a 1080p source, its upload in place."""
        job = processing_job(job_id=job_id, engine=engine, has_audio=has_audio)
        self.jobs.create(job)
        self.upload(job_id=job_id)
        return job

    def message(self, job_id: str = JOB_ID, *, etag: str | None = None, **changes: Any) -> dict[str, Any]:
        """The fan-out message ingest publishes for the stored job: by default naming the ETag of the first upload."""
        etag = etag or self.s3.head_object(Bucket="test-uploads", Key=f"uploads/{job_id}/source")["ETag"].strip('"')
        message = FanOutMessage.for_job(
            self.jobs.get(job_id), bucket="test-uploads", key=f"uploads/{job_id}/source", etag=etag
        )
        return {**json.loads(message.body()), **changes}

    def validated(self) -> bytes:
        return self.s3.get_object(Bucket="test-uploads", Key=VALIDATED_KEY)["Body"].read()

    def invoke(self, *bodies: dict[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
        return handler.handler(sqs_event(*bodies, receive_count=receive_count), self.context)

    def job(self, job_id: str = JOB_ID) -> JobRecord:
        return self.jobs.get(job_id)


@pytest.fixture
def stack(
    jobs_table: Any,
    buckets: dict[str, str],
    event_bus: CapturedEvents,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> Stack:
    monkeypatch.setenv("MEDIACONVERT_QUEUE_ARN", QUEUE_ARN)
    monkeypatch.setenv("MEDIACONVERT_ROLE_ARN", ROLE_ARN)
    monkeypatch.setattr(handler, "now_ms", lambda: NOW)
    fake = FakeMediaConvert()
    fake.attach(aws_client("mediaconvert"))  # the client the function's adapter uses
    honour_copy_source_if_match()  # moto ignores CopySourceIfMatch; S3 (and the local cloud) refuse with 412
    return Stack(fake, JobsTable("jobs"), event_bus, lambda_context, boto3.client("s3", region_name=REGION))
