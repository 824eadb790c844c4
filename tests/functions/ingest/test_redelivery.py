"""Duplicate notifications and SQS redeliveries: a duplicate never publishes twice, a redelivery makes good."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from functions.common.job_state import begin_validation
from functions.contracts.jobs import JobStatus
from functions.ingest.service import RejectionCode
from tests.functions.ingest.conftest import (
    JOB_ID,
    NO_FAILURES,
    NOW_MS,
    TOPIC_ARN,
    MediaLibrary,
    Pipeline,
    assert_rejected,
    s3_test_event,
)


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
    first = pipeline.deliver(pipeline.record(etag=etag, size=size, message_id="m1"), s3_test_event())
    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert pipeline.job().status == "PROCESSING"
    assert pipeline.fanout.drain() == []

    # WHEN SQS redelivers the same message
    ingest_env(VALIDATED_TOPIC_ARN=TOPIC_ARN)
    second = pipeline.deliver(pipeline.record(etag=etag, size=size, message_id="m1", receive_count=2))

    # THEN the plan that was written is published, once
    assert second == NO_FAILURES
    [message] = pipeline.fanout.drain()
    assert message.body["jobId"] == JOB_ID
    assert message.attributes["renditions"] == ["720p"]
    assert [r["width"] for r in message.body["renditions"]] == [pipeline.job().renditions["720p"].width]
    assert [e["detail-type"] for e in pipeline.bus.drain()] == ["Job Accepted"]


@pytest.mark.filterwarnings("ignore:No application metrics")  # the failed attempt records none
def test_failed_rejection_announcement_is_made_good_by_the_redelivery(
    pipeline: Pipeline, ingest_env: Callable[..., None]
) -> None:
    pipeline.create_job()
    etag = pipeline.put(b"")
    ingest_env(EVENT_BUS_NAME="no-such-bus")
    first = pipeline.deliver(pipeline.record(etag=etag, message_id="m1"), s3_test_event())
    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert pipeline.job().status == "REJECTED"

    ingest_env(EVENT_BUS_NAME="media-pipeline-test")
    second = pipeline.deliver(pipeline.record(etag=etag, message_id="m1", receive_count=2))

    assert_rejected(pipeline, second, RejectionCode.EMPTY_UPLOAD)


@pytest.mark.media
def test_redelivery_while_validating_validates_again(pipeline: Pipeline, media: MediaLibrary) -> None:
    # GIVEN an attempt that moved the job to VALIDATING and then died (e.g. the function timed out)
    pipeline.create_job()
    pipeline.table.change(JOB_ID, lambda job: begin_validation(job, now=NOW_MS, deadline=NOW_MS + 1))
    etag = pipeline.put(media.small)
    size = media.small.stat().st_size

    # WHEN a *different* delivery of the event arrives, nothing happens: another attempt may be on it
    assert pipeline.deliver(pipeline.record(etag=etag, size=size, receive_count=1)) == NO_FAILURES
    assert pipeline.job().status == "VALIDATING"
    assert pipeline.fanout.drain() == []

    # WHEN SQS redelivers the message of the attempt that died, validation runs again
    assert pipeline.deliver(pipeline.record(etag=etag, size=size, receive_count=2)) == NO_FAILURES
    assert pipeline.job().status == "PROCESSING"
    assert len(pipeline.fanout.drain()) == 1


def test_redelivery_for_a_finished_job_does_nothing(pipeline: Pipeline) -> None:
    job = pipeline.create_job()
    pipeline.table.change(
        JOB_ID,
        lambda j: j.model_copy(update={"status": JobStatus.COMPLETED, "openJob": None, "deadlineAt": None}),
    )
    completed = pipeline.job()
    assert completed.version == job.version + 1

    response = pipeline.deliver(pipeline.record(receive_count=3))

    assert response == NO_FAILURES
    assert pipeline.job() == completed
    assert pipeline.fanout.drain() == []
    assert pipeline.bus.drain() == []
