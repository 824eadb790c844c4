"""`Job Deletion Requested`: the tracker deletes a deleted job's files (both buckets, every key under its prefixes),
cancels its running MediaConvert job, marks it DELETED and announces `Job Deleted`; late reports of its earlier work
delete what they wrote; and reports of an earlier attempt never move a re-run job."""

from __future__ import annotations

from functools import partial
from typing import Any

import boto3
import pytest

from functions.common import job_state
from functions.common.clock import now_ms
from functions.common.jobs_table import JobsTable
from functions.contracts.events import DetailType, JobDeletionRequested, RenditionCompleted, RenditionFailed
from functions.contracts.jobs import ErrorInfo, JobStatus, RerunMode
from functions.tracker import handler as tracker_handler
from functions.tracker.adapters import MediaConvertCanceller
from tests.functions.conftest import REGION, CapturedEvents
from tests.functions.tracker.conftest import bus_event, create_job, mediaconvert_event

JOB_ID = "01JDELETE00000000000000000"


@pytest.fixture
def files(buckets: dict[str, str]) -> Any:
    """A job's upload, submit's validated copy and its outputs, and another job's output beside them."""
    s3 = boto3.client("s3", region_name=REGION)
    for bucket, key in (
        ("test-uploads", f"uploads/{JOB_ID}/source"),
        ("test-uploads", f"uploads/{JOB_ID}/validated"),
        ("test-outputs", f"outputs/{JOB_ID}/720p.mp4"),
        ("test-outputs", f"outputs/{JOB_ID}/hls/720p/seg_00001.m4s"),
        ("test-outputs", "outputs/01JOTHER000000000000000000/720p.mp4"),
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    return s3


@pytest.fixture
def canceled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """MediaConvert job ids the tracker asked to cancel (moto has no MediaConvert jobs to cancel)."""
    calls: list[str] = []
    monkeypatch.setattr(MediaConvertCanceller, "cancel_job", lambda self, job_id: calls.append(job_id))
    return calls


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def delete_requested(table: JobsTable) -> Any:
    """The api's DELETE: the job canceled (it was running) and its deletion asked for."""
    changed = table.change(JOB_ID, partial(job_state.request_deletion, now=now_ms()))
    assert changed is not None
    return bus_event(DetailType.JOB_DELETION_REQUESTED, JobDeletionRequested.of(changed[1]))


def test_a_deleted_job_loses_every_file_and_its_mediaconvert_job_then_is_deleted(
    table: JobsTable, event_bus: CapturedEvents, files: Any, canceled: list[str], lambda_context: Any
) -> None:
    create_job(table, JOB_ID)
    recorded = table.change(
        JOB_ID,
        partial(job_state.record_mediaconvert_job, mediaconvert_job_id="mc-1", client_request_token=JOB_ID, now=1),
    )
    assert recorded is not None

    result = tracker_handler.handler(delete_requested(table), lambda_context)

    assert result["outcome"] == "applied" and result["announced"] == "Job Deleted"
    assert canceled == ["mc-1"]
    assert keys(files, "test-uploads") == []
    assert keys(files, "test-outputs") == ["outputs/01JOTHER000000000000000000/720p.mp4"]
    job = table.get(JOB_ID)
    assert job.status == JobStatus.DELETED and job.deletion is not None and job.deletion.completedAt is not None
    assert job.source.bucket is None and job.source.key is None
    assert all(r.key is None for r in job.renditions.values())
    announced = [(e["detail-type"], e["detail"]["status"]) for e in event_bus.drain()]
    assert announced == [("Job Deleted", "DELETED")]


def test_a_repeated_request_deletes_again_but_announces_once(
    table: JobsTable, event_bus: CapturedEvents, files: Any, canceled: list[str], lambda_context: Any
) -> None:
    create_job(table, JOB_ID)
    event = delete_requested(table)
    tracker_handler.handler(event, lambda_context)
    files.put_object(Bucket="test-uploads", Key=f"uploads/{JOB_ID}/source", Body=b"late upload")

    again = tracker_handler.handler(event, lambda_context)

    assert again["outcome"] == "unchanged"
    assert keys(files, "test-uploads") == []
    assert [e["detail-type"] for e in event_bus.drain()] == ["Job Deleted"]


def test_a_late_output_of_a_deleted_job_is_deleted_when_its_report_arrives(
    table: JobsTable, event_bus: CapturedEvents, files: Any, canceled: list[str], lambda_context: Any
) -> None:
    create_job(table, JOB_ID, engine="lambda")
    tracker_handler.handler(delete_requested(table), lambda_context)
    files.put_object(Bucket="test-outputs", Key=f"outputs/{JOB_ID}/1080p.mp4", Body=b"written after the cancel")
    late = RenditionCompleted(
        job_id=JOB_ID, owner_id="owner-1", rendition="1080p", engine="lambda", bucket="test-outputs",
        key=f"outputs/{JOB_ID}/1080p.mp4",
    )  # fmt: skip

    result = tracker_handler.handler(bus_event(DetailType.RENDITION_COMPLETED, late), lambda_context)

    assert result["outcome"] == "unchanged"
    assert keys(files, "test-outputs") == ["outputs/01JOTHER000000000000000000/720p.mp4"]


def test_a_deletion_nobody_asked_for_is_ignored(
    table: JobsTable, files: Any, canceled: list[str], lambda_context: Any
) -> None:
    create_job(table, JOB_ID)
    forged = bus_event(DetailType.JOB_DELETION_REQUESTED, JobDeletionRequested(job_id=JOB_ID, owner_id="owner-1"))

    assert tracker_handler.handler(forged, lambda_context)["outcome"] == "ignored"
    assert len(keys(files, "test-uploads")) == 2 and table.get(JOB_ID).status == JobStatus.PROCESSING


def test_reports_of_an_earlier_attempt_never_move_the_next_one(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: Any
) -> None:
    create_job(table, JOB_ID, engine="lambda")
    failed = RenditionFailed(
        job_id=JOB_ID, owner_id="owner-1", rendition="720p", engine="lambda",
        error=ErrorInfo(code="TRANSCODE_FAILED", message="boom"),
    )  # fmt: skip
    tracker_handler.handler(bus_event(DetailType.RENDITION_FAILED, failed), lambda_context)
    tracker_handler.handler(
        bus_event(DetailType.RENDITION_FAILED, failed.model_copy(update={"rendition": "1080p"})), lambda_context
    )
    assert table.get(JOB_ID).status == JobStatus.FAILED
    rerun = table.change(
        JOB_ID, partial(job_state.begin_rerun, mode=RerunMode.RETRY, now=now_ms(), deadline=now_ms() + 1)
    )
    assert rerun is not None
    planned = [
        {"name": "720p", "status": "QUEUED", "height": 720},
        {"name": "1080p", "status": "QUEUED", "height": 1080},
    ]
    begin = partial(job_state.begin_processing, media_type="video", engine="mediaconvert", probe={"durationMs": 1})
    table.change(JOB_ID, partial(begin, planned=planned, now=now_ms()))

    # a duplicate of attempt 1's failure, then MediaConvert's report of attempt 1's job
    stale = tracker_handler.handler(bus_event(DetailType.RENDITION_FAILED, failed), lambda_context)
    stale_mediaconvert = tracker_handler.handler(mediaconvert_event("error", JOB_ID), lambda_context)

    assert stale["outcome"] == stale_mediaconvert["outcome"] == "unchanged"
    job = table.get(JOB_ID)
    assert job.status == JobStatus.PROCESSING and job.attempt == 2
    assert {r.status for r in job.renditions.values()} == {"QUEUED"}
    # the same failure, reported by attempt 2's own work, applies
    current = failed.model_copy(update={"attempt": 2})
    assert tracker_handler.handler(bus_event(DetailType.RENDITION_FAILED, current), lambda_context)["outcome"] == (
        "applied"
    )
