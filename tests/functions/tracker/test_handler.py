"""The tracker Lambda against moto: MediaConvert and pipeline events in any order, the sweep, races and failures."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.common import job_state
from functions.common.clock import now_ms
from functions.common.jobs_table import ConcurrentUpdate, JobsTable
from functions.contracts.events import JobOutcome, parse_rendition_event
from functions.contracts.jobs import ErrorInfo, JobRecord, RenditionRecord
from functions.contracts.playback import PackagingStatus
from functions.tracker import handler as tracker_handler
from functions.tracker import service
from tests.functions.conftest import REGION, CapturedEvents, FakeLambdaContext
from tests.functions.playback_samples import package_for, sample_package
from tests.functions.tracker.conftest import (
    ShortOnTimeContext,
    completed_1080p,
    create_job,
    interleave,
    mediaconvert_event,
    metrics_in,
    outcome_events,
    packaging_completed,
    packaging_failed,
    packaging_requests,
    pipeline_event,
    scheduled_event,
)

# Most tracker invocations legitimately emit no metric (only jobs that end do); Powertools warns about each one.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

OUTPUT_GROUP_EVENTS = ("progressing", "status-update", "input-information", "complete")


# --- MediaConvert ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(OUTPUT_GROUP_EVENTS)), ids="/".join)
def test_mediaconvert_events_in_any_order_and_repeated_ask_for_the_package_once_which_completes_the_job(
    order: tuple[str, ...], table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a MediaConvert job waiting for its outputs
    job_id = "01JMC" + "".join(name[0] for name in order).upper().ljust(21, "0")
    create_job(table, job_id)
    # WHEN every event arrives twice in a row, then the whole stream is redelivered
    deliveries = [name for name in order for _ in range(2)] + list(order)
    outcomes = [tracker_handler.handler(mediaconvert_event(name, job_id), lambda_context) for name in deliveries]

    # THEN every rendition completed with the output MediaConvert reported, and the job asked for its package, once
    job = table.get(job_id)
    assert job.status == "PROCESSING"
    assert job.progress == 99
    assert job.error is None
    assert job.openJob == "OPEN"
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
    assert job.hls is None  # the fixture's HLS_GROUP (what jobs of earlier releases had made) is ignored
    assert job.playback is not None
    assert (job.playback.status, job.playback.package) == (PackagingStatus.QUEUED, None)
    assert job.playback.requestPublishedAt is not None
    events = event_bus.drain()
    assert outcome_events(events) == [("Packaging Requested", job_id)]
    assert events[0]["source"] == "media-pipeline"
    assert events[0]["detail"] == {
        "jobId": job_id,
        "ownerId": "owner-1",
        "engine": "mediaconvert",
        "durationMs": 10_000,
        "renditions": [
            {"rendition": name, "bucket": "dev-outputs", "key": f"outputs/{job_id}/{name}.mp4", "width": w, "height": h}
            for name, w, h in (("720p", 1280, 720), ("1080p", 1920, 1080))
        ],
    }
    assert [o["announced"] for o in outcomes if o.get("announced")] == ["Packaging Requested"]
    complete_at = deliveries.index("complete")
    assert outcomes[complete_at]["outcome"] == "applied"
    assert all(o["outcome"] == "unchanged" for o in outcomes[complete_at + 1 :])

    # WHEN the packager reports the package, and the report is delivered twice
    reports = [tracker_handler.handler(packaging_completed(job), lambda_context) for _ in range(2)]

    # THEN the job COMPLETED with the package on it, announced once
    assert [(r["outcome"], r["announced"]) for r in reports] == [("applied", "Job Completed"), ("unchanged", None)]
    done = table.get(job_id)
    assert (done.status, done.progress, done.error, done.openJob) == ("COMPLETED", 100, None, None)
    assert done.playback is not None
    assert (done.playback.status, done.playback.package) == (PackagingStatus.COMPLETED, package_for(job))
    assert done.renditions == job.renditions
    events = event_bus.drain()
    assert outcome_events(events) == [("Job Completed", job_id)]
    assert events[0]["detail"] == JobOutcome.of(done).to_detail()


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

    # THEN the sizes that could be read are recorded, the missing one stays unknown, the package is still asked for
    job = table.get(job_id)
    assert (job.status, job.playback.status) == ("PROCESSING", PackagingStatus.QUEUED)
    assert job.renditions["720p"].bytes == 2048
    assert job.renditions["1080p"].bytes is None
    events = event_bus.drain()
    assert outcome_events(events) == [("Packaging Requested", job_id)]
    assert [(r["rendition"], r["bucket"]) for r in packaging_requests(events)[0]["renditions"]] == [
        ("720p", buckets["outputs"]),
        ("1080p", buckets["outputs"]),
    ]


@pytest.mark.parametrize("late", ["error", "canceled", "complete", "progressing", "status-update"])
def test_a_late_mediaconvert_report_does_not_move_a_job_waiting_for_its_package(
    late: str, table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a MediaConvert job whose outputs all completed: it waits for the packager
    job_id = f"01JMCLATE{late.replace('-', '').upper()}".ljust(26, "0")
    create_job(table, job_id)
    tracker_handler.handler(mediaconvert_event("complete", job_id), lambda_context)
    asking = table.get(job_id)
    assert outcome_events(event_bus.drain()) == [("Packaging Requested", job_id)]

    # WHEN a late (or duplicated) MediaConvert report of that job arrives
    result = tracker_handler.handler(mediaconvert_event(late, job_id), lambda_context)

    # THEN MediaConvert's part is over: nothing changes, nothing is asked again, and the package still ends the job
    assert result["outcome"] == "unchanged"
    assert table.get(job_id) == asking
    assert event_bus.drain() == []
    assert tracker_handler.handler(packaging_completed(asking), lambda_context)["announced"] == "Job Completed"
    assert table.get(job_id).status == "COMPLETED"


def test_mediaconvert_error_fails_the_job_with_its_code_and_message(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = "01JMCERROR0000000000000000"
    create_job(table, job_id)
    tracker_handler.handler(mediaconvert_event("progressing", job_id), lambda_context)

    result = tracker_handler.handler(mediaconvert_event("error", job_id), lambda_context)

    # MediaConvert's words, without the input's location (the log keeps it for operators)
    raw = mediaconvert_event("error", job_id)["detail"]["errorMessage"]
    assert "s3://" in raw
    message = "Unable to open input file [[object]]: [Failed probe/open: [Failed to read data: AssumeRole failed]]"
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


def test_rendition_events_ask_for_the_package_and_the_package_completes_the_job_each_once(
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
    # WHEN the renditions' events arrive
    results = [tracker_handler.handler(event, lambda_context) for event in stream]

    # THEN the last completion asked for the package of both renditions, in ladder order, and published the request
    assert [r["announced"] for r in results] == [None] * 4 + ["Packaging Requested"]
    asking = table.get(job_id)
    assert (asking.status, asking.progress, asking.outcomeAnnouncedAt) == ("PROCESSING", 99, None)
    assert asking.playback is not None
    assert asking.playback.status == PackagingStatus.QUEUED
    assert asking.playback.requestPublishedAt is not None and asking.playback.requestedAt is not None
    assert packaging_requests(event_bus.drain()) == [
        {
            "jobId": job_id,
            "ownerId": "owner-1",
            "engine": "lambda",
            "durationMs": 10_000,
            "renditions": [
                {
                    "rendition": "720p",
                    "bucket": "test-outputs",
                    "key": f"outputs/{job_id}/720p.mp4",
                    "width": 1280,
                    "height": 720,
                },
                {
                    "rendition": "1080p",
                    "bucket": "test-outputs",
                    "key": f"outputs/{job_id}/1080p.mp4",
                    "width": 1920,
                    "height": 1080,
                },
            ],
        }
    ]

    # WHEN the packager reports the package, then every event is delivered again
    stream.append(packaging_completed(asking))
    results += [tracker_handler.handler(stream[-1], lambda_context)]
    results += [tracker_handler.handler(event, lambda_context) for event in stream]

    # THEN the job completed with each transcoder's output and the package, and one Job Completed went out
    assert [r["outcome"] for r in results] == ["applied"] * 6 + ["unchanged"] * 6
    job = table.get(job_id)
    assert job.status == "COMPLETED"
    assert job.renditions["720p"].bytes == 1_048_576
    assert job.renditions["1080p"].key == f"outputs/{job_id}/1080p.mp4"
    assert job.renditions["1080p"].engine == "lambda"
    assert job.playback is not None
    assert job.playback.package == package_for(asking)
    assert job.playback.requestedAt == asking.playback.requestedAt
    assert isinstance(job.outcomeAnnouncedAt, int)
    assert outcome_events(event_bus.drain()) == [("Job Completed", job_id)]
    assert metrics_in(capsys.readouterr().out) == [("MediaPipelineTest", "JobsCompleted", 1)]
    # and every line logged about the job carries its ID
    applied = [line for line in logs() if line["message"] in ("event applied", "event changed nothing")]
    assert len(applied) == 12
    assert {line["jobId"] for line in applied} == {job_id}
    assert {line["function_request_id"] for line in applied} == {lambda_context.aws_request_id}


def test_a_package_failure_fails_the_job_with_packaging_failed_and_its_reason(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job whose renditions completed and that asked for its package
    job_id = "01JPIPEPACKAGEFAILED000000"
    create_job(table, job_id, engine="lambda")
    tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)
    tracker_handler.handler(completed_1080p(job_id), lambda_context)
    asking = table.get(job_id)
    event_bus.drain()
    capsys.readouterr()

    # WHEN the packager reports it could not package them, twice
    event = packaging_failed(job_id, "rendition 1080p cannot be remuxed: Invalid data found when processing input")
    results = [tracker_handler.handler(event, lambda_context) for _ in range(2)]

    # THEN the job FAILED with PACKAGING_FAILED and the reason, its renditions still there, announced once
    assert results == [
        {"outcome": "applied", "jobId": job_id, "status": "FAILED", "announced": "Job Failed"},
        {"outcome": "unchanged", "jobId": job_id, "status": "FAILED", "announced": None},
    ]
    job = table.get(job_id)
    reason = "rendition 1080p cannot be remuxed: Invalid data found when processing input"
    assert job.error == ErrorInfo(code="PACKAGING_FAILED", message=f"playback: {reason}")
    assert job.playback is not None
    assert (job.playback.status, job.playback.error) == (
        PackagingStatus.FAILED,
        ErrorInfo(code="PACKAGING_FAILED", message=reason),
    )
    assert (job.openJob, job.progress) == (None, 100)
    assert job.renditions == asking.renditions
    events = event_bus.drain()
    assert outcome_events(events) == [("Job Failed", job_id)]
    assert events[0]["detail"]["error"] == {"code": "PACKAGING_FAILED", "message": f"playback: {reason}"}
    assert metrics_in(capsys.readouterr().out) == [("MediaPipelineTest", "JobsFailed", 1)]
    # and a package that arrives after all changes nothing
    assert tracker_handler.handler(packaging_completed(asking), lambda_context)["outcome"] == "unchanged"
    assert table.get(job_id) == job
    assert event_bus.drain() == []


STAGE_STATUS = {
    "one-rendition-open": "PROCESSING",
    "progress-only": "PROCESSING",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "expired": "EXPIRED",
}


@pytest.mark.parametrize("report", ["completed", "failed"])
@pytest.mark.parametrize("stage", sorted(STAGE_STATUS))
def test_a_packaging_report_for_a_job_not_waiting_for_it_changes_nothing(
    stage: str, report: str, table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job that has not asked for a package yet, or that already ended
    job_id = "01JNOTASKING00000000000000"
    if stage == "expired":
        create_job(table, job_id, status="AWAITING_UPLOAD", deadline_in_ms=-1000)
    else:
        create_job(table, job_id, engine="lambda")
    steps = {
        "one-rendition-open": [pipeline_event("rendition_completed", job_id)],
        "progress-only": [pipeline_event("rendition_progress", job_id, percent=70)],
        "completed": [pipeline_event("rendition_completed", job_id), completed_1080p(job_id)],
        "failed": [pipeline_event("rendition_completed", job_id), pipeline_event("rendition_failed", job_id)],
        "expired": [scheduled_event()],
    }[stage]
    for step in steps:
        tracker_handler.handler(step, lambda_context)
    if stage == "completed":
        tracker_handler.handler(packaging_completed(table.get(job_id)), lambda_context)
    before = table.get(job_id)
    assert (before.status, before.playback is None) == (STAGE_STATUS[stage], stage != "completed")
    event_bus.drain()

    # WHEN a packager's report for it arrives
    event = packaging_completed(before, sample_package(job_id)) if report == "completed" else packaging_failed(job_id)
    result = tracker_handler.handler(event, lambda_context)

    # THEN it changes nothing and announces nothing
    assert (result["outcome"], result["announced"]) == ("unchanged", None)
    assert table.get(job_id) == before
    assert event_bus.drain() == []


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
    assert job.playback is None  # 720p completed, but a job that failed is not packaged
    assert outcome_events(event_bus.drain()) == [("Job Failed", job_id)]


def test_a_skipped_rendition_neither_holds_the_job_open_nor_goes_into_the_package(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    job_id = "01JPIPESKIP000000000000000"
    create_job(table, job_id, engine="lambda", plan=(("720p", "QUEUED"), ("1080p", "SKIPPED")))

    tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)

    asking = table.get(job_id)
    assert (asking.status, asking.playback.status) == ("PROCESSING", PackagingStatus.QUEUED)
    events = event_bus.drain()
    assert outcome_events(events) == [("Packaging Requested", job_id)]
    assert [r["rendition"] for r in packaging_requests(events)[0]["renditions"]] == ["720p"]

    tracker_handler.handler(packaging_completed(asking), lambda_context)

    job = table.get(job_id)
    assert job.status == "COMPLETED"
    assert job.renditions["1080p"].status == "SKIPPED"
    assert [v.rendition for v in job.playback.package.variants] == ["720p"]
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
        lambda job_id: _without(packaging_failed(job_id), "error"),
        lambda job_id: {**packaging_failed(job_id), "detail": {"jobId": job_id, "package": {"bucket": "b"}}},
        lambda job_id: {**packaging_failed(job_id), "detail-type": "Packaging Requested"},
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
        "packaging-failed-without-error",
        "packaging-failed-with-a-package",
        "packaging-requested",
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


@pytest.mark.parametrize(
    "make_event",
    [
        lambda job_id: pipeline_event("rendition_completed", job_id),
        packaging_failed,
    ],
    ids=["rendition-completed", "packaging-failed"],
)
def test_an_event_for_a_job_that_does_not_exist_is_dropped(
    make_event: Callable[[str], dict[str, Any]],
    table: JobsTable,
    event_bus: CapturedEvents,
    lambda_context: FakeLambdaContext,
) -> None:
    result = tracker_handler.handler(make_event("01JMISSING"), lambda_context)

    assert result == {"outcome": "job_not_found", "jobId": "01JMISSING"}
    assert event_bus.drain() == []


def test_aws_errors_raise_so_eventbridge_retries(
    table: JobsTable, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBS_TABLE_NAME", "no-such-table")

    with pytest.raises(ClientError) as raised:
        tracker_handler.handler(pipeline_event("rendition_completed", "01JANY"), lambda_context)

    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_packaging_request_whose_put_failed_is_published_by_the_retry_and_only_then(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the last rendition's event, and a bus that is unavailable on the first attempt
    job_id = "01JRETRYREQUEST00000000000"
    create_job(table, job_id, engine="lambda", plan=(("720p", "QUEUED"),))
    event = pipeline_event("rendition_completed", job_id)
    monkeypatch.setenv("EVENT_BUS_NAME", "unavailable-bus")
    with pytest.raises(ClientError):
        tracker_handler.handler(event, lambda_context)
    asking = table.get(job_id)
    assert asking.status == "PROCESSING"
    assert asking.playback is not None
    assert (asking.playback.status, asking.playback.requestPublishedAt) == (PackagingStatus.QUEUED, None)
    assert event_bus.drain() == []

    # WHEN EventBridge retries the same event once the bus is back, and then delivers it again
    monkeypatch.setenv("EVENT_BUS_NAME", "media-pipeline-test")
    tracker_handler.tracker.cache_clear()
    retried = tracker_handler.handler(event, lambda_context)
    again = tracker_handler.handler(event, lambda_context)

    # THEN the request goes out exactly once, from the retry, naming the rendition; the job was asked for only once
    assert retried == {
        "outcome": "unchanged",
        "jobId": job_id,
        "status": "PROCESSING",
        "announced": "Packaging Requested",
    }
    assert again["announced"] is None
    events = event_bus.drain()
    assert outcome_events(events) == [("Packaging Requested", job_id)]
    assert [(r["rendition"], r["key"]) for r in packaging_requests(events)[0]["renditions"]] == [
        ("720p", f"outputs/{job_id}/720p.mp4")
    ]
    job = table.get(job_id)
    assert job.playback is not None
    assert job.playback.requestPublishedAt is not None
    assert job.playback.requestedAt == asking.playback.requestedAt
    assert job.version == asking.version + 1  # only the bookkeeping


def test_an_outcome_whose_event_could_not_be_put_is_announced_on_the_retry(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a job waiting for its package, the packager's report, and a bus that is unavailable on the first attempt
    job_id = "01JRETRY000000000000000000"
    create_job(table, job_id, engine="lambda", plan=(("720p", "QUEUED"),))
    tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)
    assert outcome_events(event_bus.drain()) == [("Packaging Requested", job_id)]
    event = packaging_completed(table.get(job_id))
    monkeypatch.setenv("EVENT_BUS_NAME", "unavailable-bus")
    tracker_handler.tracker.cache_clear()
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


def test_the_last_two_renditions_completing_concurrently_ask_for_the_package_once_and_lose_no_output(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 720p's completion, whose first read is overtaken by 1080p's completion written by another invocation:
    # both read the job with both renditions open
    job_id = "01JRACE0000000000000000000"
    create_job(table, job_id, engine="lambda")
    real_transition = service.rendition_transition
    versions_seen: list[int] = []
    overtaking: list[dict[str, Any]] = []

    def overtaken_once(job: JobRecord) -> None:
        versions_seen.append(job.version)
        if len(versions_seen) == 1:
            monkeypatch.setattr(service, "rendition_transition", real_transition)
            overtaking.append(tracker_handler.handler(completed_1080p(job_id), lambda_context))

    interleave(monkeypatch, overtaken_once)

    # WHEN 720p's write goes ahead on the stale read
    result = tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)

    # THEN the conditional write lost, the event was re-applied to the fresh record, both outputs are kept, and the
    # one write that settled the last rendition asked for the package of both: one request, from 720p's invocation
    assert versions_seen == [0, 1]
    assert [(r["outcome"], r["announced"]) for r in overtaking] == [("applied", None)]
    assert (result["outcome"], result["announced"]) == ("applied", "Packaging Requested")
    job = table.get(job_id)
    assert job.status == "PROCESSING"
    assert job.renditions["720p"].key == f"outputs/{job_id}/720p.mp4"
    assert job.renditions["1080p"].key == f"outputs/{job_id}/1080p.mp4"
    assert job.playback is not None and job.playback.requestPublishedAt is not None
    assert job.version == 3  # 1080p, 720p with the request, the request's bookkeeping
    events = event_bus.drain()
    assert outcome_events(events) == [("Packaging Requested", job_id)]
    assert [r["rendition"] for r in packaging_requests(events)[0]["renditions"]] == ["720p", "1080p"]


def test_the_last_completion_delivered_twice_at_once_asks_for_the_package_once(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a job whose 720p completed, and 1080p's completion delivered twice: the second delivery is handled in
    # full between the first one's read and its conditional write
    job_id = "01JRACEDUPLICATE0000000000"
    create_job(table, job_id, engine="lambda")
    tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)
    real_transition = service.rendition_transition
    versions_seen: list[int] = []
    duplicate: list[dict[str, Any]] = []

    def overtaken_once(job: JobRecord) -> None:
        versions_seen.append(job.version)
        if len(versions_seen) == 1:
            monkeypatch.setattr(service, "rendition_transition", real_transition)
            duplicate.append(tracker_handler.handler(completed_1080p(job_id), lambda_context))

    interleave(monkeypatch, overtaken_once)

    # WHEN the first delivery's write goes ahead on its stale read
    result = tracker_handler.handler(completed_1080p(job_id), lambda_context)

    # THEN the duplicate asked and published; the first lost the write and, re-reading, found nothing left to do
    assert versions_seen == [1, 3]  # after 720p; after 1080p with the request and its bookkeeping
    assert [(r["outcome"], r["announced"]) for r in duplicate] == [("applied", "Packaging Requested")]
    assert (result["outcome"], result["announced"]) == ("unchanged", None)
    assert table.get(job_id).version == 3
    assert outcome_events(event_bus.drain()) == [("Packaging Requested", job_id)]


def test_a_writer_that_lost_the_fan_in_leaves_the_request_to_the_writer_that_won(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a job whose 720p completed, and 1080p's completion put twice by its transcoder (two events, two ids):
    # between this delivery's read and its write, the other one wrote the fan-in (the job asks, naming that event) and
    # has not put the request yet
    job_id = "01JRACEFANIN00000000000000"
    create_job(table, job_id, engine="lambda")
    tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)
    event = completed_1080p(job_id)
    other_event = {**event, "id": f"{event['id']}-put-again"}
    winner = JobsTable("jobs", boto3.resource("dynamodb", region_name=REGION))
    completion = parse_rendition_event(event["detail-type"], event["detail"])
    assert completion is not None
    real_transition = service.rendition_transition
    winning_write = real_transition(completion, now=now_ms())
    writes: list[Any] = []

    def asks_as_the_other_event(job: JobRecord) -> JobRecord | None:
        changed = winning_write(job)
        if changed is not None and changed.playback is not None:
            changed.playback.requestedBy = other_event["id"]
        return changed

    def other_writer_asks_first(job: JobRecord) -> None:
        if not writes:
            writes.append(winner.change(job_id, asks_as_the_other_event))

    interleave(monkeypatch, other_writer_asks_first)

    # WHEN this delivery's write goes ahead on its stale read
    result = tracker_handler.handler(event, lambda_context)

    # THEN it lost, found the job asking, and did not put a second request: that is the winner's to put
    (written,) = writes
    assert written is not None and job_state.packaging_requested(*written)
    assert (result["outcome"], result["announced"]) == ("unchanged", None)
    assert table.get(job_id).playback.requestPublishedAt is None
    assert event_bus.drain() == []
    monkeypatch.setattr(service, "rendition_transition", real_transition)
    # AND this event delivered again still leaves it to the winner (it cannot tell a winner still putting from one
    # that failed)
    assert tracker_handler.handler(event, lambda_context)["announced"] is None
    assert event_bus.drain() == []

    # AND when the winner's invocation failed before its put, EventBridge's retry of it publishes the request, once
    retried = tracker_handler.handler(other_event, lambda_context)
    assert retried["announced"] == "Packaging Requested"
    assert tracker_handler.handler(other_event, lambda_context)["announced"] is None
    assert outcome_events(event_bus.drain()) == [("Packaging Requested", job_id)]


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
    tracker_handler.handler(packaging_completed(table.get("01JSWEEPDONE00000000000000")), lambda_context)
    done = table.get("01JSWEEPDONE00000000000000")
    assert done.status == "COMPLETED"
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


def test_the_sweep_fails_a_job_still_waiting_for_its_package_at_its_deadline(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two jobs whose renditions completed and that asked for their package: one past its deadline, one not
    late, on_time = "01JSWEEPPACKAGELATE0000000", "01JSWEEPPACKAGEONTIME00000"
    create_job(table, late, engine="lambda", plan=(("720p", "QUEUED"),), deadline_in_ms=-1000)
    create_job(table, on_time, engine="lambda", plan=(("720p", "QUEUED"),))
    for job_id in (late, on_time):
        tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)
    asking = {job_id: table.get(job_id) for job_id in (late, on_time)}
    assert {job.playback.status for job in asking.values()} == {PackagingStatus.QUEUED}
    assert sorted(outcome_events(event_bus.drain())) == [
        ("Packaging Requested", late),
        ("Packaging Requested", on_time),
    ]
    capsys.readouterr()

    # WHEN the schedule fires
    result = tracker_handler.handler(scheduled_event(), lambda_context)

    # THEN the late one FAILED for its deadline, its package with it, and was announced; the other still waits
    assert result == {"outcome": "swept", "examined": 1, "closed": 1, "truncated": False}
    timed_out = table.get(late)
    timeout = ErrorInfo(code="PROCESSING_TIMEOUT", message="the job did not finish before its deadline")
    assert (timed_out.status, timed_out.error, timed_out.openJob) == ("FAILED", timeout, None)
    assert timed_out.playback is not None
    assert (timed_out.playback.status, timed_out.playback.error) == (PackagingStatus.FAILED, timeout)
    assert timed_out.renditions == asking[late].renditions  # the completed rendition stays downloadable
    assert table.get(on_time) == asking[on_time]
    assert outcome_events(event_bus.drain()) == [("Job Failed", late)]
    assert [m[1] for m in metrics_in(capsys.readouterr().out)] == ["JobsFailed"]

    # AND the package that arrives late changes nothing, while the one on time completes its job
    assert tracker_handler.handler(packaging_completed(asking[late]), lambda_context)["outcome"] == "unchanged"
    assert table.get(late) == timed_out
    assert tracker_handler.handler(packaging_completed(asking[on_time]), lambda_context)["status"] == "COMPLETED"
    assert outcome_events(event_bus.drain()) == [("Job Completed", on_time)]


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
