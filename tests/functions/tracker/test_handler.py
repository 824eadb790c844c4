"""The tracker Lambda against moto: MediaConvert and pipeline events in any order, the sweep, races and failures."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.common.jobs_table import ConcurrentUpdate, JobsTable
from functions.contracts.events import JobOutcome
from functions.contracts.jobs import ErrorInfo, JobRecord, ObjectLocation, RenditionRecord
from functions.tracker import handler as tracker_handler
from functions.tracker import service
from tests.functions.conftest import REGION, CapturedEvents, FakeLambdaContext
from tests.functions.tracker.conftest import (
    ShortOnTimeContext,
    completed_1080p,
    create_job,
    interleave,
    mediaconvert_event,
    metrics_in,
    outcome_events,
    pipeline_event,
    scheduled_event,
)

# Most tracker invocations legitimately emit no metric (only jobs that end do); Powertools warns about each one.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

OUTPUT_GROUP_EVENTS = ("progressing", "status-update", "input-information", "complete")


# --- MediaConvert ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(OUTPUT_GROUP_EVENTS)), ids="/".join)
def test_mediaconvert_events_in_any_order_and_repeated_complete_the_job_once(
    order: tuple[str, ...], table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a MediaConvert job waiting for its outputs
    job_id = "01JMC" + "".join(name[0] for name in order).upper().ljust(21, "0")
    create_job(table, job_id)
    # WHEN every event arrives twice in a row, then the whole stream is redelivered
    deliveries = [name for name in order for _ in range(2)] + list(order)
    outcomes = [tracker_handler.handler(mediaconvert_event(name, job_id), lambda_context) for name in deliveries]

    # THEN the job completed with the outputs MediaConvert reported, exactly once
    job = table.get(job_id)
    assert job.status == "COMPLETED"
    assert job.progress == 100
    assert job.error is None
    assert job.openJob is None
    assert sorted(job.renditions) == ["1080p", "720p"]
    for name, width, height in (("720p", 1280, 720), ("1080p", 1920, 1080)):
        assert job.renditions[name] == RenditionRecord.model_validate(
            {
                "name": name,
                "status": "COMPLETED",
                "height": height,
                "order": 0 if name == "720p" else 1,
                "progress": 100,
                "width": width,
                "durationMs": 10_000,
                "bytes": None,
                "contentType": "video/mp4",
                "bucket": "dev-outputs",
                "key": f"outputs/{job_id}/{name}.mp4",
                "engine": "mediaconvert",
            }
        )
    assert job.hls == ObjectLocation(bucket="dev-outputs", key=f"outputs/{job_id}/hls/index.m3u8")
    events = event_bus.drain()
    assert outcome_events(events) == [("Job Completed", job_id)]
    assert events[0]["source"] == "media-pipeline"
    assert events[0]["detail"] == JobOutcome.of(job).to_detail()
    assert [o["announced"] for o in outcomes if o.get("announced")] == ["Job Completed"]
    complete_at = deliveries.index("complete")
    assert outcomes[complete_at]["outcome"] == "applied"
    assert all(o["outcome"] == "unchanged" for o in outcomes[complete_at + 1 :])


def test_complete_reads_output_sizes_from_the_outputs_bucket(
    table: JobsTable, event_bus: CapturedEvents, buckets: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    # GIVEN outputs in this stack's bucket, one of which cannot be read back
    job_id = "01JMCSIZES0000000000000000"
    create_job(table, job_id)
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=buckets["outputs"], Key=f"outputs/{job_id}/720p.mp4", Body=b"x" * 2048)
    event = mediaconvert_event("complete", job_id)
    event = json.loads(json.dumps(event).replace("s3://dev-outputs/", f"s3://{buckets['outputs']}/"))

    # WHEN MediaConvert reports completion
    assert tracker_handler.handler(event, lambda_context)["outcome"] == "applied"

    # THEN the sizes that could be read are recorded, the missing one stays unknown, the job still completes
    job = table.get(job_id)
    assert job.status == "COMPLETED"
    assert job.renditions["720p"].bytes == 2048
    assert job.renditions["1080p"].bytes is None
    assert outcome_events(event_bus.drain()) == [("Job Completed", job_id)]


def test_mediaconvert_error_fails_the_job_with_its_code_and_message(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = "01JMCERROR0000000000000000"
    create_job(table, job_id)
    tracker_handler.handler(mediaconvert_event("progressing", job_id), lambda_context)

    result = tracker_handler.handler(mediaconvert_event("error", job_id), lambda_context)

    message = mediaconvert_event("error", job_id)["detail"]["errorMessage"]
    assert result == {"outcome": "applied", "jobId": job_id, "status": "FAILED", "announced": "Job Failed"}
    job = table.get(job_id)
    assert job.status == "FAILED"
    assert job.error == ErrorInfo(code="MEDIACONVERT_1040", message=message)
    assert {r.status for r in job.renditions.values()} == {"FAILED"}
    events = event_bus.drain()
    assert outcome_events(events) == [("Job Failed", job_id)]
    assert events[0]["detail"]["error"] == {"code": "MEDIACONVERT_1040", "message": message}
    assert ("MediaPipelineTest", "JobsFailed", 1) in metrics_in(capsys.readouterr().out)
    # a late COMPLETE does not resurrect it
    assert tracker_handler.handler(mediaconvert_event("complete", job_id), lambda_context)["outcome"] == "unchanged"
    assert table.get(job_id).status == "FAILED"
    assert event_bus.drain() == []


def test_mediaconvert_canceled_fails_the_job(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    job_id = "01JMCCANCEL000000000000000"
    create_job(table, job_id)

    tracker_handler.handler(mediaconvert_event("canceled", job_id), lambda_context)

    job = table.get(job_id)
    assert job.status == "FAILED"
    assert job.error is not None
    assert job.error.code == "MEDIACONVERT_CANCELED"
    assert outcome_events(event_bus.drain()) == [("Job Failed", job_id)]


def test_another_pipelines_mediaconvert_job_is_ignored(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN an event from the prod stack that names one of our job IDs
    job_id = "01JMCOTHER0000000000000000"
    before = create_job(table, job_id)
    event = mediaconvert_event("other-pipeline-complete", job_id)
    assert event["detail"]["userMetadata"] == {"jobId": job_id, "pipeline": "prod"}

    result = tracker_handler.handler(event, lambda_context)

    assert result == {"outcome": "ignored", "reason": "another pipeline"}
    assert table.get(job_id) == before
    assert event_bus.drain() == []


def test_mediaconvert_events_for_a_lambda_engine_job_change_nothing(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    job_id = "01JMCLAMBDA000000000000000"
    before = create_job(table, job_id, engine="lambda")

    for name in ("progressing", "complete"):
        assert tracker_handler.handler(mediaconvert_event(name, job_id), lambda_context)["outcome"] == "unchanged"

    assert table.get(job_id) == before
    assert event_bus.drain() == []


# --- pipeline events ---------------------------------------------------------------------------------------------


def test_rendition_events_complete_the_job_and_announce_it_once(
    table: JobsTable,
    event_bus: CapturedEvents,
    lambda_context: FakeLambdaContext,
    logs: Callable[[], list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a job transcoded by the per-rendition Lambdas
    job_id = "01JPIPE0000000000000000000"
    create_job(table, job_id, engine="lambda")
    stream = [
        pipeline_event("rendition_progress", job_id),
        pipeline_event("rendition_progress", job_id, rendition="1080p"),
        pipeline_event("rendition_progress", job_id, percent=50),
        pipeline_event("rendition_completed", job_id),
        completed_1080p(job_id),
    ]
    # WHEN the events arrive, then all of them again
    results = [tracker_handler.handler(event, lambda_context) for event in stream + stream]

    # THEN the job completed with each transcoder's output and one Job Completed went out
    assert [r["outcome"] for r in results] == ["applied"] * 5 + ["unchanged"] * 5
    job = table.get(job_id)
    assert job.status == "COMPLETED"
    assert job.renditions["720p"].bytes == 1_048_576
    assert job.renditions["1080p"].key == f"outputs/{job_id}/1080p.mp4"
    assert job.renditions["1080p"].engine == "lambda"
    assert isinstance(job.outcomeAnnouncedAt, int)
    assert outcome_events(event_bus.drain()) == [("Job Completed", job_id)]
    assert metrics_in(capsys.readouterr().out) == [("MediaPipelineTest", "JobsCompleted", 1)]
    # and every line logged about the job carries its ID
    applied = [line for line in logs() if line["message"] in ("event applied", "event changed nothing")]
    assert len(applied) == 10
    assert {line["jobId"] for line in applied} == {job_id}
    assert {line["function_request_id"] for line in applied} == {lambda_context.aws_request_id}


def test_a_progress_report_moves_a_queued_rendition_forward_but_never_back(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    job_id = "01JPIPEPROGRESS00000000000"
    create_job(table, job_id, engine="lambda")

    tracker_handler.handler(pipeline_event("rendition_progress", job_id, percent=60), lambda_context)
    tracker_handler.handler(pipeline_event("rendition_progress", job_id, percent=20), lambda_context)

    job = table.get(job_id)
    assert (job.renditions["720p"].status, job.renditions["720p"].progress) == ("PROCESSING", 60)
    assert job.progress == 30
    assert event_bus.drain() == []


def test_a_failed_rendition_fails_the_job_with_its_reason(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    job_id = "01JPIPEFAIL000000000000000"
    create_job(table, job_id, engine="lambda")

    tracker_handler.handler(pipeline_event("rendition_failed", job_id), lambda_context)
    assert table.get(job_id).status == "PROCESSING"  # 720p still open
    tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)

    job = table.get(job_id)
    assert job.status == "FAILED"
    assert job.error == ErrorInfo(code="TRANSCODE_FAILED", message="1080p: ffmpeg exited with status 1")
    assert job.renditions["720p"].status == "COMPLETED"
    assert outcome_events(event_bus.drain()) == [("Job Failed", job_id)]


def test_a_skipped_rendition_does_not_hold_the_job_open(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    job_id = "01JPIPESKIP000000000000000"
    create_job(table, job_id, engine="lambda", plan=(("720p", "QUEUED"), ("1080p", "SKIPPED")))

    tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)

    assert table.get(job_id).status == "COMPLETED"
    assert outcome_events(event_bus.drain()) == [("Job Completed", job_id)]


# --- what is dropped, what is retried ------------------------------------------------------------------------------


def _without(event: dict[str, Any], key: str) -> dict[str, Any]:
    event = json.loads(json.dumps(event))
    del event["detail"][key]
    return event


@pytest.mark.parametrize(
    "make_event",
    [
        lambda job_id: {},
        lambda job_id: {"Records": [{"body": job_id}]},
        lambda job_id: {**pipeline_event("rendition_completed", job_id), "source": "someone.else"},
        lambda job_id: {**pipeline_event("rendition_completed", job_id), "detail-type": "Job Completed"},
        lambda job_id: _without(pipeline_event("rendition_completed", job_id), "rendition"),
        lambda job_id: _without(mediaconvert_event("complete", job_id), "status"),
        lambda job_id: {
            **mediaconvert_event("complete", job_id),
            "detail": {"status": "COMPLETE", "userMetadata": {"pipeline": "dev"}},
        },
        lambda job_id: {**scheduled_event(), "detail-type": "Something Scheduled"},
    ],
    ids=[
        "empty",
        "sqs-batch",
        "unknown-source",
        "untracked-detail-type",
        "pipeline-without-rendition",
        "mediaconvert-without-status",
        "mediaconvert-without-job-id",
        "unknown-schedule",
    ],
)
def test_unknown_event_shapes_are_logged_and_dropped(
    make_event: Callable[[str], dict[str, Any]],
    table: JobsTable,
    event_bus: CapturedEvents,
    lambda_context: FakeLambdaContext,
    logs: Callable[[], list[dict[str, Any]]],
) -> None:
    job_id = "01JUNKNOWN0000000000000000"
    before = create_job(table, job_id, engine="lambda")

    result = tracker_handler.handler(make_event(job_id), lambda_context)

    assert result["outcome"] == "ignored"
    assert table.get(job_id) == before
    assert event_bus.drain() == []
    assert [line["level"] for line in logs() if line["message"].startswith("event ignored")] == ["WARNING"]


def test_an_event_for_a_job_that_does_not_exist_is_dropped(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    result = tracker_handler.handler(pipeline_event("rendition_completed", "01JMISSING"), lambda_context)

    assert result == {"outcome": "job_not_found", "jobId": "01JMISSING"}
    assert event_bus.drain() == []


def test_aws_errors_raise_so_eventbridge_retries(
    table: JobsTable, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBS_TABLE_NAME", "no-such-table")

    with pytest.raises(ClientError) as raised:
        tracker_handler.handler(pipeline_event("rendition_completed", "01JANY"), lambda_context)

    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_an_outcome_whose_event_could_not_be_put_is_announced_on_the_retry(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the last rendition's event, and a bus that is unavailable on the first attempt
    job_id = "01JRETRY000000000000000000"
    create_job(table, job_id, engine="lambda", plan=(("720p", "QUEUED"),))
    event = pipeline_event("rendition_completed", job_id)
    monkeypatch.setenv("EVENT_BUS_NAME", "unavailable-bus")
    with pytest.raises(ClientError):
        tracker_handler.handler(event, lambda_context)
    assert table.get(job_id).status == "COMPLETED"
    assert table.get(job_id).outcomeAnnouncedAt is None

    # WHEN EventBridge retries the same event once the bus is back, and then delivers it again
    monkeypatch.setenv("EVENT_BUS_NAME", "media-pipeline-test")
    tracker_handler.tracker.cache_clear()
    retried = tracker_handler.handler(event, lambda_context)
    again = tracker_handler.handler(event, lambda_context)

    # THEN the outcome goes out exactly once
    assert retried == {"outcome": "unchanged", "jobId": job_id, "status": "COMPLETED", "announced": "Job Completed"}
    assert again["announced"] is None
    assert outcome_events(event_bus.drain()) == [("Job Completed", job_id)]
    assert table.get(job_id).outcomeAnnouncedAt is not None


def test_a_write_between_read_and_write_is_never_lost(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 720p's completion, whose first read is overtaken by 1080p's completion written by another invocation
    job_id = "01JRACE0000000000000000000"
    create_job(table, job_id, engine="lambda")
    real_transition = service.rendition_transition
    versions_seen: list[int] = []

    def overtaken_once(job: JobRecord) -> None:
        versions_seen.append(job.version)
        if len(versions_seen) == 1:
            monkeypatch.setattr(service, "rendition_transition", real_transition)
            assert tracker_handler.handler(completed_1080p(job_id), lambda_context)["outcome"] == "applied"

    interleave(monkeypatch, overtaken_once)

    # WHEN 720p's write goes ahead on the stale read
    result = tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)

    # THEN the conditional write lost, the event was re-applied to the fresh record, and both outputs are kept
    assert versions_seen == [0, 1]
    assert result["outcome"] == "applied"
    job = table.get(job_id)
    assert job.status == "COMPLETED"
    assert job.renditions["720p"].key == f"outputs/{job_id}/720p.mp4"
    assert job.renditions["1080p"].key == f"outputs/{job_id}/1080p.mp4"
    assert job.version == 3  # 1080p, 720p, outcome bookkeeping
    assert outcome_events(event_bus.drain()) == [("Job Completed", job_id)]


def test_a_writer_that_keeps_losing_fails_the_invocation_for_a_retry(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = "01JRACELOST000000000000000"
    create_job(table, job_id, engine="lambda")
    other_writer = JobsTable("jobs", boto3.resource("dynamodb", region_name=REGION))
    interleave(
        monkeypatch,
        lambda job: other_writer.change(job_id, lambda j: j.model_copy(update={"updatedAt": j.updatedAt + 1})),
    )

    with pytest.raises(ConcurrentUpdate):
        tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)

    assert table.get(job_id).renditions["720p"].status == "QUEUED"
    assert event_bus.drain() == []


# --- the sweep ---------------------------------------------------------------------------------------------------


def test_the_sweep_closes_overdue_jobs_and_leaves_the_rest_alone(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN overdue and on-time jobs in each open status, and a finished one
    create_job(table, "01JSWEEPUPLOADLATE00000000", status="AWAITING_UPLOAD", deadline_in_ms=-1000)
    create_job(table, "01JSWEEPPROCESSLATE0000000", status="PROCESSING", deadline_in_ms=-1000)
    waiting = create_job(table, "01JSWEEPUPLOADONTIME000000", status="AWAITING_UPLOAD")
    working = create_job(table, "01JSWEEPPROCESSONTIME00000", status="PROCESSING")
    create_job(table, "01JSWEEPDONE00000000000000", engine="lambda", plan=(("720p", "QUEUED"),), deadline_in_ms=-1000)
    tracker_handler.handler(pipeline_event("rendition_completed", "01JSWEEPDONE00000000000000"), lambda_context)
    done = table.get("01JSWEEPDONE00000000000000")
    event_bus.drain()
    capsys.readouterr()

    # WHEN the schedule fires
    result = tracker_handler.handler(scheduled_event(), lambda_context)

    # THEN the overdue upload expired, the overdue processing failed, nothing else moved
    assert result == {"outcome": "swept", "examined": 2, "closed": 2, "truncated": False}
    expired = table.get("01JSWEEPUPLOADLATE00000000")
    assert expired.error is not None
    assert (expired.status, expired.error.code) == ("EXPIRED", "UPLOAD_EXPIRED")
    timed_out = table.get("01JSWEEPPROCESSLATE0000000")
    assert timed_out.error is not None
    assert (timed_out.status, timed_out.error.code) == ("FAILED", "PROCESSING_TIMEOUT")
    assert {r.status for r in timed_out.renditions.values()} == {"FAILED"}
    assert table.get(waiting.jobId) == waiting
    assert table.get(working.jobId) == working
    assert table.get(done.jobId) == done
    assert sorted(outcome_events(event_bus.drain())) == [
        ("Job Expired", "01JSWEEPUPLOADLATE00000000"),
        ("Job Failed", "01JSWEEPPROCESSLATE0000000"),
    ]
    assert sorted(m[1] for m in metrics_in(capsys.readouterr().out)) == ["JobsExpired", "JobsFailed"]
    # a second sweep finds nothing left to do
    assert tracker_handler.handler(scheduled_event(), lambda_context)["examined"] == 0


def test_the_sweep_does_bounded_work_and_the_next_one_carries_on(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWEEP_MAX_JOBS", "2")
    for n in range(3):
        create_job(table, f"01JSWEEPBOUND{n}000000000000", status="AWAITING_UPLOAD", deadline_in_ms=-1000 * (n + 1))

    first = tracker_handler.handler(scheduled_event(), lambda_context)
    second = tracker_handler.handler(scheduled_event(), lambda_context)

    assert first == {"outcome": "swept", "examined": 2, "closed": 2, "truncated": True}
    assert second == {"outcome": "swept", "examined": 1, "closed": 1, "truncated": False}
    assert len(event_bus.drain()) == 3


def test_the_sweep_stops_when_the_invocation_runs_out_of_time(table: JobsTable, event_bus: CapturedEvents) -> None:
    job = create_job(table, "01JSWEEPNOTIME000000000000", status="AWAITING_UPLOAD", deadline_in_ms=-1000)

    result = tracker_handler.handler(scheduled_event(), ShortOnTimeContext(remaining_ms=5_000))

    assert result == {"outcome": "swept", "examined": 0, "closed": 0, "truncated": True}
    assert table.get(job.jobId) == job
    assert event_bus.drain() == []
