"""What arrives on the ingest queue: S3 notifications (or S3's test event) in SQS records, and what is not an upload."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

from functions.ingest import handler as ingest_handler
from functions.ingest.handler import (
    Ignored,
    IngestQueueRecord,
    S3Notification,
    S3NotificationRecord,
    S3TestEvent,
    upload_from_record,
)
from functions.ingest.service import RejectionCode, Upload
from tests.functions.conftest import FIXTURES, REGION
from tests.functions.ingest.conftest import JOB_ID, NO_FAILURES, Pipeline, assert_rejected, s3_test_event

# --------------------------------------------------------------------------------------------------------------
# Through the handler
# --------------------------------------------------------------------------------------------------------------


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

    assert_rejected(pipeline, response, RejectionCode.EMPTY_UPLOAD)


def test_s3_test_event_is_acknowledged(pipeline: Pipeline) -> None:
    event = json.loads((FIXTURES / "ingest_s3_test_event.json").read_text())

    response = ingest_handler.handler(event, pipeline.context)

    assert response == NO_FAILURES
    assert pipeline.bus.drain() == []


def test_body_that_is_not_a_notification_fails_only_its_record(pipeline: Pipeline) -> None:
    # GIVEN a batch: S3's test event, an empty upload, and a message that is not an S3 notification at all
    pipeline.create_job()
    etag = pipeline.put(b"")
    garbage = {**pipeline.record(message_id="garbage"), "body": "not json"}
    wrong_shape = {**pipeline.record(message_id="wrong-shape"), "body": json.dumps({"hello": "world"})}

    response = pipeline.deliver(s3_test_event(), pipeline.record(etag=etag), garbage, wrong_shape)

    # THEN only the malformed records fail (to be retried and land in the DLQ); the upload is still rejected
    assert response == {"batchItemFailures": [{"itemIdentifier": "garbage"}, {"itemIdentifier": "wrong-shape"}]}
    error = pipeline.job().error
    assert error is not None
    assert error.code == "EMPTY_UPLOAD"


# --------------------------------------------------------------------------------------------------------------
# Parsing on its own
# --------------------------------------------------------------------------------------------------------------


def _fixture_record() -> dict[str, Any]:
    return json.loads((FIXTURES / "ingest_s3_event.json").read_text())["Records"][0]


def _s3_record(**object_changes: Any) -> S3NotificationRecord:
    notification = json.loads(_fixture_record()["body"])
    notification["Records"][0]["s3"]["object"].update(object_changes)
    return S3Notification.model_validate(notification).Records[0]


def test_fixture_parses_as_an_ingest_queue_record() -> None:
    record = IngestQueueRecord.model_validate(_fixture_record())

    assert isinstance(record.body, S3Notification)
    assert record.body.Records[0].s3.object_.key == "uploads/01JD2Y5V7Q8ZK3M4N5P6R7S8T9/source"
    assert record.attributes.ApproximateReceiveCount == "1"


def test_s3_test_event_parses_as_such() -> None:
    record = IngestQueueRecord.model_validate(s3_test_event())

    assert isinstance(record.body, S3TestEvent)


def test_emulated_s3_notification_without_identity_fields_parses() -> None:
    """The local cloud's S3 sends only eventVersion, eventSource, awsRegion, eventTime, eventName and s3."""
    body = (FIXTURES / "ingest_emulated_s3_notification.json").read_text()
    record = IngestQueueRecord.model_validate({**_fixture_record(), "body": body})

    assert isinstance(record.body, S3Notification)
    assert upload_from_record(record.body.Records[0], uploads_bucket="uploads") == Upload(
        job_id="J1", bucket="uploads", key="uploads/J1/source", etag="abc"
    )


@pytest.mark.parametrize(
    "key", ["uploads/01JD2Y5V7Q8ZK3M4N5P6R7S8T9/source", "uploads%2F01JD2Y5V7Q8ZK3M4N5P6R7S8T9%2Fsource"]
)
def test_upload_key_is_decoded_and_names_the_job(key: str) -> None:
    upload = upload_from_record(_s3_record(key=key), uploads_bucket="test-uploads")

    assert upload == Upload(
        job_id="01JD2Y5V7Q8ZK3M4N5P6R7S8T9",
        bucket="test-uploads",
        key="uploads/01JD2Y5V7Q8ZK3M4N5P6R7S8T9/source",
        etag="d41d8cd98f00b204e9800998ecf8427e",
    )


@pytest.mark.parametrize(
    "key",
    [
        "uploads/J1/source/",
        "uploads/J1/source.mp4",
        "uploads/J1/other",
        "uploads/../source",
        "uploads/a/b/source",
        "uploads/J%201/source",
        "uploads/-J1/source",
        "prefix/uploads/J1/source",
        "",
    ],
)
def test_other_keys_are_ignored(key: str) -> None:
    assert isinstance(upload_from_record(_s3_record(key=key), uploads_bucket="test-uploads"), Ignored)


def test_other_bucket_and_other_events_are_ignored() -> None:
    record = _s3_record()
    assert isinstance(upload_from_record(record, uploads_bucket="another-bucket"), Ignored)
    removed = record.model_copy(update={"eventName": "ObjectRemoved:Delete"})
    assert isinstance(upload_from_record(removed, uploads_bucket="test-uploads"), Ignored)


def test_notification_without_records_is_not_a_notification() -> None:
    with pytest.raises(ValueError, match="Records"):
        IngestQueueRecord.model_validate({**_fixture_record(), "body": json.dumps({"hello": "world"})})
