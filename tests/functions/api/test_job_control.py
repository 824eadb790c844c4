"""DELETE /jobs/{id}, POST /jobs/{id}/retry and POST /jobs/{id}/reprocess against moto: the record, the events put on
the bus and the re-run message sent to the ingest queue."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from functions.api import handler as api
from functions.common import job_state
from functions.common.jobs_table import JobsTable
from functions.contracts.jobs import JobRecord
from tests.functions.api.conftest import ALICE, BOB, call, http_event, processing_job_with_one_rendition_done
from tests.functions.api.test_jobs import API_ENV
from tests.functions.cdn_keys import configure_cdn
from tests.functions.conftest import REGION, CapturedEvents
from tests.functions.declared_tables import USAGE_TABLE, create_declared_table
from tests.functions.playback_samples import package_for

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
NOW = 1_795_000_100_000
DEADLINE_SECONDS = 3600


@pytest.fixture
def ingest_queue(aws: None) -> str:
    return boto3.client("sqs", region_name=REGION).create_queue(QueueName="ingest")["QueueUrl"]


@pytest.fixture
def control(
    jobs_table: Any, buckets: dict[str, str], event_bus: CapturedEvents, ingest_queue: str, monkeypatch: Any
) -> CapturedEvents:
    create_declared_table(USAGE_TABLE, "usage")
    for name, value in API_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EVENT_BUS_NAME", "media-pipeline-test")
    monkeypatch.setenv("RERUN_QUEUE_URL", ingest_queue)
    monkeypatch.setenv("PROCESSING_DEADLINE_SECONDS", str(DEADLINE_SECONDS))
    configure_cdn(monkeypatch)
    monkeypatch.setattr(api, "now_ms", lambda: NOW)
    api.job_control_service.cache_clear()
    yield event_bus
    api.job_control_service.cache_clear()


def stored(job_id: str) -> JobRecord:
    return JobsTable("jobs").get(job_id)


def detail_types(events: CapturedEvents) -> list[str]:
    return [event["detail-type"] for event in events.drain()]


def rerun_messages(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def finished(job: JobRecord, *, failed: bool) -> JobRecord:
    """The seeded job with its open rendition settled, through the state machine: FAILED, or COMPLETED with its
    playback package."""
    table = JobsTable("jobs")
    if failed:
        changed = table.change(
            job.jobId,
            lambda j: job_state.fail_rendition(j, name="720p", code="TRANSCODE_FAILED", message="boom", now=NOW - 10),
        )
    else:
        output = {"bucket": "test-outputs", "key": f"outputs/{job.jobId}/720p.mp4", "width": 1280, "height": 720}
        waiting = table.change(
            job.jobId, lambda j: job_state.complete_rendition(j, name="720p", output=output, now=NOW - 10)
        )
        assert waiting is not None
        package = package_for(waiting[1])
        changed = table.change(job.jobId, lambda j: job_state.complete_playback(j, package=package, now=NOW - 5))
    assert changed is not None
    return changed[1]


# --- DELETE /jobs/{id} -------------------------------------------------------------------------------------------


def test_deleting_a_running_job_cancels_it_and_asks_for_its_files_to_be_deleted(
    control: CapturedEvents, lambda_context: Any
) -> None:
    job = processing_job_with_one_rendition_done(ALICE)

    answer = call(http_event("DELETE", f"/jobs/{job.jobId}"), lambda_context)

    assert answer["statusCode"] == 202
    assert answer["body"]["status"] == "CANCELED"
    assert answer["body"]["deletionRequestedAt"] is not None
    # no link to a file that is being deleted
    assert all(rendition["url"] is None for rendition in answer["body"]["renditions"])
    record = stored(job.jobId)
    assert record.status == "CANCELED" and record.deletion is not None and record.deletion.canceled
    assert record.renditions["720p"].status == "CANCELED"
    assert record.renditions["480p"].status == "COMPLETED"  # what finished stays as it was
    assert record.openJob is None and record.outcomeAnnouncedAt == NOW
    assert detail_types(control) == ["Job Canceled", "Job Deletion Requested"]


def test_deleting_a_finished_job_only_asks_for_its_files_to_be_deleted(
    control: CapturedEvents, lambda_context: Any
) -> None:
    job = finished(processing_job_with_one_rendition_done(ALICE), failed=True)

    answer = call(http_event("DELETE", f"/jobs/{job.jobId}"), lambda_context)

    assert answer["statusCode"] == 202 and answer["body"]["status"] == "FAILED"
    assert stored(job.jobId).deletion is not None and not stored(job.jobId).deletion.canceled
    assert detail_types(control) == ["Job Deletion Requested"]


def test_a_repeated_delete_asks_again_without_a_second_cancel(control: CapturedEvents, lambda_context: Any) -> None:
    job = processing_job_with_one_rendition_done(ALICE)
    call(http_event("DELETE", f"/jobs/{job.jobId}"), lambda_context)
    version = stored(job.jobId).version

    again = call(http_event("DELETE", f"/jobs/{job.jobId}"), lambda_context)

    assert again["statusCode"] == 202 and again["body"]["status"] == "CANCELED"
    assert stored(job.jobId).version == version
    assert detail_types(control) == ["Job Canceled", "Job Deletion Requested", "Job Deletion Requested"]


def test_another_users_job_and_a_missing_one_answer_the_same_404(control: CapturedEvents, lambda_context: Any) -> None:
    job = processing_job_with_one_rendition_done(ALICE)
    missing = "01JD5Z3K8Q4WJ2V7N6M9P0R1ST"
    for method, tail in (("DELETE", ""), ("POST", "/retry"), ("POST", "/reprocess")):
        theirs = call(http_event(method, f"/jobs/{job.jobId}{tail}", sub=BOB), lambda_context)
        nobodys = call(http_event(method, f"/jobs/{missing}{tail}", sub=BOB), lambda_context)
        malformed = call(http_event(method, f"/jobs/not-a-job{tail}", sub=BOB), lambda_context)
        assert theirs == nobodys == malformed
        assert theirs["statusCode"] == 404 and theirs["body"]["error"]["code"] == "JOB_NOT_FOUND"
    assert stored(job.jobId).status == "PROCESSING"
    assert detail_types(control) == []


# --- POST /jobs/{id}/retry and /reprocess -----------------------------------------------------------------------


def test_retrying_a_failed_job_starts_its_next_attempt_and_asks_ingest_to_plan_it(
    control: CapturedEvents, ingest_queue: str, lambda_context: Any
) -> None:
    job = finished(processing_job_with_one_rendition_done(ALICE), failed=True)

    answer = call(http_event("POST", f"/jobs/{job.jobId}/retry"), lambda_context)

    assert answer["statusCode"] == 202
    assert answer["body"]["status"] == "VALIDATING" and answer["body"]["attempt"] == 2
    assert answer["body"]["renditions"] == [] and answer["body"]["error"] is None
    record = stored(job.jobId)
    assert record.attempt == 2 and record.rerun is not None and record.rerun.mode == "retry"
    assert record.rerun.previousStatus == "FAILED"
    assert record.openJob == "OPEN" and record.deadlineAt == NOW + DEADLINE_SECONDS * 1000
    assert record.probe == job.probe  # the next attempt is planned from it
    assert rerun_messages(ingest_queue) == [{"rerun": {"jobId": job.jobId, "attempt": 2}}]


def test_only_a_failed_job_can_be_retried_and_only_a_completed_one_reprocessed(
    control: CapturedEvents, ingest_queue: str, lambda_context: Any
) -> None:
    running = processing_job_with_one_rendition_done(ALICE)
    retried = call(http_event("POST", f"/jobs/{running.jobId}/retry"), lambda_context)
    reprocessed = call(http_event("POST", f"/jobs/{running.jobId}/reprocess"), lambda_context)

    assert retried["statusCode"] == 409 and retried["body"]["error"] == {
        "code": "JOB_NOT_RETRYABLE",
        "message": "only a FAILED job can be retried; this one is PROCESSING",
    }
    assert reprocessed["body"]["error"]["code"] == "JOB_NOT_REPROCESSABLE"
    assert stored(running.jobId).attempt == 1
    assert rerun_messages(ingest_queue) == []


def test_reprocessing_a_completed_job_starts_its_next_attempt(
    control: CapturedEvents, ingest_queue: str, lambda_context: Any
) -> None:
    job = finished(processing_job_with_one_rendition_done(ALICE), failed=False)

    answer = call(http_event("POST", f"/jobs/{job.jobId}/reprocess"), lambda_context)

    assert answer["statusCode"] == 202 and answer["body"]["attempt"] == 2
    assert stored(job.jobId).rerun.mode == "reprocess"
    assert rerun_messages(ingest_queue) == [{"rerun": {"jobId": job.jobId, "attempt": 2}}]


def test_a_repeated_retry_resends_the_request_while_it_is_still_being_planned(
    control: CapturedEvents, ingest_queue: str, lambda_context: Any
) -> None:
    job = finished(processing_job_with_one_rendition_done(ALICE), failed=True)
    call(http_event("POST", f"/jobs/{job.jobId}/retry"), lambda_context)

    again = call(http_event("POST", f"/jobs/{job.jobId}/retry"), lambda_context)

    assert again["statusCode"] == 202 and again["body"]["attempt"] == 2  # not a third attempt
    assert [m["rerun"]["attempt"] for m in rerun_messages(ingest_queue)] == [2, 2]


def test_a_deleted_job_cannot_be_retried(control: CapturedEvents, lambda_context: Any) -> None:
    job = finished(processing_job_with_one_rendition_done(ALICE), failed=True)
    call(http_event("DELETE", f"/jobs/{job.jobId}"), lambda_context)

    answer = call(http_event("POST", f"/jobs/{job.jobId}/retry"), lambda_context)

    assert answer["statusCode"] == 409
    assert answer["body"]["error"]["message"] == "only a FAILED job can be retried; this one was deleted"


def test_deleting_a_job_frees_its_bytes_in_the_owners_stored_bytes(
    control: CapturedEvents, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "now_ms", lambda: int(time.time() * 1000))  # the quota counts the real day
    body = {"filename": "clip.mp4", "contentType": "video/mp4", "size": 12345}
    created = call(http_event("POST", "/uploads", body=body), lambda_context)
    assert created["statusCode"] == 201
    stored = call(http_event("GET", "/usage"), lambda_context)["body"]["storedBytes"]
    assert stored["used"] == 12345

    call(http_event("DELETE", f"/jobs/{created['body']['jobId']}"), lambda_context)
    call(http_event("DELETE", f"/jobs/{created['body']['jobId']}"), lambda_context)  # counted once

    assert call(http_event("GET", "/usage"), lambda_context)["body"]["storedBytes"]["used"] == 0
    assert call(http_event("GET", "/usage"), lambda_context)["body"]["jobsThisHour"]["used"] == 1
