"""The fan-out message and `Job Accepted`, built from the job as written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.common import job_state
from functions.common.renditions import DEFAULT_RENDITIONS
from functions.contracts.events import JobAccepted
from functions.contracts.fanout import FanOutMessage
from functions.contracts.jobs import JobRecord, JobSource
from functions.ingest.service import plan_renditions

LADDER = tuple(DEFAULT_RENDITIONS)
PROBE = {
    "durationMs": 1000,
    "width": 854,
    "height": 480,
    "codedWidth": 854,
    "codedHeight": 480,
    "rotation": 0,
    "videoCodec": "h264",
    "audioCodec": None,
    "hasAudio": False,
    "frameRate": 29.97,
    "formatName": "mov,mp4,m4a,3gp,3g2,mj2",
    "bitRate": None,
    "sizeBytes": 123_456,
}


def _processing_job(planned: list[dict[str, Any]], *, owner_id: str = "owner-1") -> JobRecord:
    job = job_state.new_job(
        job_id="J1",
        owner_id=owner_id,
        source=JobSource(filename="a.mp4"),
        now=1,
        upload_deadline=2,
        retention_seconds=3,
    )
    validating = job_state.begin_validation(job, now=2, deadline=10)
    assert validating is not None
    processing = job_state.begin_processing(
        validating, media_type="video", engine="lambda", probe=PROBE, planned=planned, now=3
    )
    assert processing is not None
    return processing


def test_fanout_lists_queued_renditions_in_plan_order() -> None:
    job = _processing_job(plan_renditions(854, 480, LADDER))

    message = FanOutMessage.for_job(job, bucket="uploads", key="uploads/J1/source", etag="abc")

    assert message.attributes(job.mediaType) == {
        "mediaType": {"DataType": "String", "StringValue": "video"},
        "engine": {"DataType": "String", "StringValue": "lambda"},
        "renditions": {"DataType": "String.Array", "StringValue": '["720p"]'},
    }
    assert json.loads(message.body()) == {
        "jobId": "J1",
        "ownerId": "owner-1",
        "engine": "lambda",
        "source": {"bucket": "uploads", "key": "uploads/J1/source", "etag": "abc"},
        "probe": PROBE,
        "renditions": [
            {"name": "720p", "width": 854, "height": 480, "maxVideoBitrateKbps": 3000, "audioBitrateKbps": 128}
        ],
    }
    assert JobAccepted.of(job).to_detail() == {
        "jobId": "J1",
        "ownerId": "owner-1",
        "engine": "lambda",
        "renditions": ["720p"],
    }


def test_fanout_without_an_etag_names_bucket_and_key_only() -> None:
    job = _processing_job(plan_renditions(1920, 1080, LADDER))

    message = FanOutMessage.for_job(job, bucket="uploads", key="uploads/J1/source", etag=None)

    assert json.loads(message.body())["source"] == {"bucket": "uploads", "key": "uploads/J1/source"}
    assert json.loads(message.attributes(job.mediaType)["renditions"]["StringValue"]) == ["720p", "1080p"]


@pytest.mark.parametrize("owner_id", ["owner-1", "üser-ß"])
@pytest.mark.parametrize("etag", ["abc", None])
def test_body_is_the_compact_json_ingest_always_published(owner_id: str, etag: str | None) -> None:
    """Byte for byte what `json.dumps(body, separators=(",", ":"))` wrote before the message had a model."""
    job = _processing_job(plan_renditions(854, 480, LADDER), owner_id=owner_id)
    source = {"bucket": "uploads", "key": "uploads/J1/source"} | ({"etag": etag} if etag else {})
    expected = {
        "jobId": "J1",
        "ownerId": owner_id,
        "engine": "lambda",
        "source": source,
        "probe": PROBE,
        "renditions": [
            {"name": "720p", "width": 854, "height": 480, "maxVideoBitrateKbps": 3000, "audioBitrateKbps": 128}
        ],
    }

    message = FanOutMessage.for_job(job, bucket="uploads", key="uploads/J1/source", etag=etag)

    assert message.body() == json.dumps(expected, separators=(",", ":"))
