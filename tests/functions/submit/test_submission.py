"""The submit handler against moto (jobs table, bus) and a fake MediaConvert on a real client: one MediaConvert job
per pipeline job, however often and however concurrently the message arrives."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import boto3
import pytest

from functions.common import job_state
from functions.common.jobs_table import JobsTable
from functions.contracts.jobs import JobRecord, MediaConvertSubmission, RerunMode
from functions.contracts.playback import PackagingStatus
from functions.submit.adapters import ValidatedSources
from functions.submit.handler import OUTCOME_METRICS
from functions.tracker import service as tracker
from tests.functions.conftest import REGION
from tests.functions.playback_samples import complete_playback
from tests.functions.submit.conftest import JOB_ID, NOW, OWNER_ID, QUEUE_ARN, ROLE_ARN, UPLOADED, VALIDATED_KEY, Stack
from tests.functions.submit.mediaconvert_service import TOKEN_WINDOW_MS, create_job_errors, state_change_event

NO_FAILURES = {"batchItemFailures": []}


# --- one job, once --------------------------------------------------------------------------------------------


def test_a_mediaconvert_job_is_created_for_the_message_and_recorded_on_the_job(stack: Stack) -> None:
    # GIVEN a job ingest accepted for MediaConvert
    stack.create_job()

    # WHEN its fan-out message arrives
    response = stack.invoke(stack.message())

    # THEN exactly one MediaConvert job was asked for, in this stack's queue, as the job's own request
    assert response == NO_FAILURES
    (request,) = stack.mediaconvert.create_requests
    assert request["clientRequestToken"] == JOB_ID
    assert (request["queue"], request["role"]) == (QUEUE_ARN, ROLE_ARN)
    assert request["userMetadata"] == {"jobId": JOB_ID, "pipeline": "dev"}
    assert request["statusUpdateInterval"] == "SECONDS_10"
    # AND it reads the copy of exactly the validated upload, not the key a reused upload form can still replace
    assert request["settings"]["inputs"][0]["fileInput"] == f"s3://test-uploads/{VALIDATED_KEY}"
    assert stack.validated() == UPLOADED
    destinations = [g["outputGroupSettings"] for g in request["settings"]["outputGroups"]]
    assert destinations[0]["fileGroupSettings"]["destination"] == f"s3://test-outputs/outputs/{JOB_ID}/720p"
    # AND the job names it, with nothing else changed
    (mediaconvert_job_id,) = stack.mediaconvert.jobs
    job = stack.job()
    assert job.mediaconvert == MediaConvertSubmission(
        jobId=mediaconvert_job_id, clientRequestToken=JOB_ID, submittedAt=NOW
    )
    assert (job.status, job.version) == ("PROCESSING", 1)
    assert stack.bus.drain() == []


def test_the_submitted_request_is_what_the_service_model_accepts(stack: Stack) -> None:
    stack.create_job(has_audio=False)
    client = stack.mediaconvert.attach(boto3.client("mediaconvert", region_name=REGION))

    stack.invoke(stack.message())
    (created,) = stack.mediaconvert.jobs
    job = client.get_job(Id=created)["Job"]  # the fake echoes the request; botocore parses it back

    request = {"Role": job["Role"], "Settings": job["Settings"], "UserMetadata": job["UserMetadata"]}
    assert create_job_errors(request) == []
    assert "AudioSelectors" not in job["Settings"]["Inputs"][0]
    assert client.list_jobs()["Jobs"][0]["Id"] == created


def test_two_deliveries_of_the_message_make_one_mediaconvert_job(stack: Stack) -> None:
    stack.create_job()

    first = stack.invoke(stack.message())
    stack.mediaconvert.now_ms += 10 * TOKEN_WINDOW_MS  # long after the token's minute: only the record guards
    second = stack.invoke(stack.message(), receive_count=2)

    assert first == second == NO_FAILURES
    assert len(stack.mediaconvert.create_requests) == 1
    assert len(stack.mediaconvert.jobs) == 1


def test_the_same_message_twice_in_one_batch_makes_one_job(stack: Stack) -> None:
    stack.create_job()

    assert stack.invoke(stack.message(), stack.message()) == NO_FAILURES

    assert len(stack.mediaconvert.jobs) == 1
    assert len(stack.mediaconvert.create_requests) == 1


def test_an_attempt_that_died_before_recording_is_redelivered_into_the_same_job(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an attempt whose CreateJob succeeded but whose record write failed (DynamoDB unavailable)
    stack.create_job()
    original = JobsTable.change

    def unavailable(self: JobsTable, *args: Any, **kwargs: Any) -> Any:
        raise boto3.client("dynamodb").exceptions.ProvisionedThroughputExceededException(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
        )

    monkeypatch.setattr(JobsTable, "change", unavailable)
    failed = stack.invoke(stack.message())
    assert failed == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert stack.job().mediaconvert is None

    # WHEN the message comes back while MediaConvert still knows the request token
    monkeypatch.setattr(JobsTable, "change", original)
    stack.mediaconvert.now_ms += TOKEN_WINDOW_MS // 2
    assert stack.invoke(stack.message(), receive_count=2) == NO_FAILURES

    # THEN CreateJob was asked twice but answered with the one job, which is now recorded
    assert len(stack.mediaconvert.create_requests) == 2
    (mediaconvert_job_id,) = stack.mediaconvert.jobs
    assert stack.job().mediaconvert.jobId == mediaconvert_job_id


def test_a_conflicting_second_job_is_reported_and_the_recorded_one_stays(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN another attempt records a MediaConvert job while this one is creating its own
    stack.create_job()
    create = stack.mediaconvert._create

    def racing(url: str, body: dict[str, Any]) -> Any:
        record = {"jobId": "1794999999999-other1", "clientRequestToken": JOB_ID, "submittedAt": NOW}
        stack.jobs._table.update_item(
            Key={"jobId": JOB_ID}, UpdateExpression="SET mediaconvert = :m", ExpressionAttributeValues={":m": record}
        )
        return create(url, body)

    monkeypatch.setattr(stack.mediaconvert, "_create", racing)

    # WHEN this attempt's CreateJob returns a different job
    assert stack.invoke(stack.message()) == NO_FAILURES

    # THEN the recorded job stays and the duplicate is reported with both IDs
    assert stack.job().mediaconvert.jobId == "1794999999999-other1"
    (created,) = stack.mediaconvert.jobs
    (error,) = [record for record in caplog.records if record.levelname == "ERROR"]
    assert "second MediaConvert job" in error.getMessage()
    assert (error.mediaConvertJobId, error.recordedMediaConvertJobId) == (created, "1794999999999-other1")
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [m["DuplicateMediaConvertJobs"] for m in emitted if "DuplicateMediaConvertJobs" in m] == [[1.0]]


# --- what is not submitted ------------------------------------------------------------------------------------


def test_a_lambda_engine_job_is_not_submitted(stack: Stack) -> None:
    stack.create_job(engine="lambda")

    assert stack.invoke(stack.message()) == NO_FAILURES

    assert stack.mediaconvert.create_requests == []
    assert stack.job().mediaconvert is None


def test_a_job_that_already_ended_is_not_submitted(stack: Stack) -> None:
    stack.create_job()
    message = stack.message()
    stack.jobs.change(JOB_ID, lambda job: job_state.fail_job(job, code="PROCESSING_TIMEOUT", message="late", now=NOW))

    assert stack.invoke(message, receive_count=3) == NO_FAILURES

    assert stack.mediaconvert.create_requests == []
    assert stack.job().status == "FAILED"


def test_a_message_for_an_unknown_job_is_dropped(stack: Stack) -> None:
    stack.create_job()
    message = stack.message(jobId="01JUNKNOWN0000000000000000")

    assert stack.invoke(message) == NO_FAILURES
    assert stack.mediaconvert.create_requests == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("not json", id="not-json"),
        pytest.param({"jobId": JOB_ID}, id="not-a-fan-out-message"),
    ],
)
def test_a_body_that_is_not_a_fan_out_message_fails_only_its_record(stack: Stack, body: Any) -> None:
    stack.create_job()

    response = stack.invoke(body, stack.message())

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert len(stack.mediaconvert.jobs) == 1  # the good record was still submitted


def test_a_source_outside_the_uploads_bucket_is_never_submitted(stack: Stack) -> None:
    stack.create_job()
    message = stack.message(source={"bucket": "someone-elses-bucket", "key": f"uploads/{JOB_ID}/source"})

    assert stack.invoke(message) == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert stack.mediaconvert.create_requests == []


# --- a source replaced after validation ----------------------------------------------------------------------


def test_an_upload_replaced_after_validation_is_never_submitted(stack: Stack) -> None:
    # GIVEN a job whose upload form was used again after ingest validated the first file
    stack.create_job()
    message = stack.message()
    stack.upload(b"#EXTM3U\nhttp://elsewhere/other-users-upload\n")

    # WHEN its fan-out message, naming the validated ETag, arrives
    assert stack.invoke(message) == NO_FAILURES  # retrying cannot bring the validated file back

    # THEN MediaConvert is never asked, nothing is pinned, and every rendition fails with the reason
    assert stack.mediaconvert.create_requests == []
    assert "Contents" not in stack.s3.list_objects_v2(Bucket="test-uploads", Prefix=VALIDATED_KEY)
    events = stack.bus.drain()
    assert [(e["detail-type"], e["detail"]["rendition"]) for e in events] == [
        ("Rendition Failed", "720p"),
        ("Rendition Failed", "1080p"),
    ]
    assert {json.dumps(e["detail"]["error"]) for e in events} == {
        json.dumps({"code": "SOURCE_REPLACED", "message": "the upload was replaced after it was validated"})
    }
    assert stack.job().mediaconvert is None


def test_a_redelivered_message_pins_the_same_upload_again(stack: Stack) -> None:
    stack.create_job()
    assert stack.invoke(stack.message(), stack.message()) == NO_FAILURES

    assert stack.validated() == UPLOADED
    assert len(stack.mediaconvert.jobs) == 1


def test_a_message_without_an_etag_is_still_submitted_from_a_copy(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a message from before ingest named the validated ETag
    stack.create_job()
    message = stack.message()
    del message["source"]["etag"]

    # WHEN it arrives
    assert stack.invoke(message) == NO_FAILURES

    # THEN the job is submitted as before, from the copy the service role may read, with a warning
    (request,) = stack.mediaconvert.create_requests
    assert request["settings"]["inputs"][0]["fileInput"] == f"s3://test-uploads/{VALIDATED_KEY}"
    assert stack.validated() == UPLOADED
    assert stack.job().mediaconvert.jobId in stack.mediaconvert.jobs
    assert any("no validated ETag" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


# --- what MediaConvert refuses --------------------------------------------------------------------------------


def test_settings_mediaconvert_refuses_fail_every_rendition_through_the_tracker(stack: Stack) -> None:
    stack.create_job()
    stack.mediaconvert.next_errors.append((400, "BadRequestException", "/outputGroups/0: bad value at s3://x"))

    assert stack.invoke(stack.message()) == NO_FAILURES  # retrying would be refused again

    events = stack.bus.drain()
    assert [(e["detail-type"], e["detail"]["rendition"]) for e in events] == [
        ("Rendition Failed", "720p"),
        ("Rendition Failed", "1080p"),
    ]
    assert events[0]["detail"] == {
        "jobId": JOB_ID,
        "ownerId": OWNER_ID,
        "rendition": "720p",
        "engine": "mediaconvert",
        "error": {
            "code": "MEDIACONVERT_BAD_REQUEST",
            "message": "MediaConvert refused the encoding settings for this video",
        },
    }
    assert stack.job().mediaconvert is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, "TooManyRequestsException"), (500, "InternalServerErrorException"), (403, "ForbiddenException")],
)
def test_other_mediaconvert_errors_are_retried(stack: Stack, status: int, kind: str) -> None:
    stack.create_job()
    stack.mediaconvert.next_errors.extend([(status, kind, "try later")] * 10)  # outlast botocore's own retries

    assert stack.invoke(stack.message()) == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}

    assert stack.mediaconvert.jobs == {}
    assert stack.job().mediaconvert is None
    assert stack.bus.drain() == []


# --- attempts and cancels --------------------------------------------------------------------------------------


def retried_on_mediaconvert(stack: Stack) -> JobRecord:
    """The job failed and its owner retried it: ingest planned the same ladder again, attempt 2 PROCESSING."""
    first = stack.job()
    planned = [
        rendition.model_dump(include={"name", "width", "height", "maxVideoBitrateKbps", "audioBitrateKbps"})
        | {"status": "QUEUED"}
        for rendition in first.renditions_in_order()
    ]
    stack.jobs.change(JOB_ID, lambda job: job_state.fail_job(job, code="MEDIACONVERT_ERROR", message="x", now=NOW))
    stack.jobs.change(JOB_ID, partial(job_state.begin_rerun, mode=RerunMode.RETRY, now=NOW, deadline=NOW + 3_600_000))
    begin = partial(
        job_state.begin_processing, media_type="video", engine="mediaconvert", probe=first.probe, planned=planned
    )
    stack.jobs.change(JOB_ID, partial(begin, now=NOW))
    job = stack.job()
    assert (job.status, job.attempt) == ("PROCESSING", 2)
    return job


def cancel(stack: Stack) -> None:
    """`DELETE /jobs/{id}` while the job runs."""
    stack.jobs.change(JOB_ID, lambda job: job_state.request_deletion(job, now=NOW))


def outcome_metrics(output: str) -> dict[str, float]:
    counted: dict[str, float] = {}
    for line in output.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        for name in OUTCOME_METRICS.values():
            if name in document:
                counted[name] = counted.get(name, 0.0) + sum(document[name])
    return counted


def test_a_retried_job_gets_a_mediaconvert_job_of_its_own(stack: Stack) -> None:
    # GIVEN a job whose first attempt was submitted, then failed and was retried within the token's minute
    stack.create_job()
    assert stack.invoke(stack.message()) == NO_FAILURES
    retried_on_mediaconvert(stack)

    # WHEN the second attempt's message arrives
    message = stack.message()
    assert message["attempt"] == 2
    assert stack.invoke(message) == NO_FAILURES

    # THEN MediaConvert was asked with a token of the attempt's own, so it made a second job, which the job records
    first, second = stack.mediaconvert.create_requests
    assert (first["clientRequestToken"], second["clientRequestToken"]) == (JOB_ID, f"{JOB_ID}-a2")
    assert second["userMetadata"] == {"jobId": JOB_ID, "pipeline": "dev", "attempt": "2"}
    _, second_job = stack.mediaconvert.jobs
    recorded = stack.job().mediaconvert
    assert recorded is not None
    assert (recorded.jobId, recorded.clientRequestToken) == (second_job, f"{JOB_ID}-a2")


def test_a_message_of_an_earlier_attempt_submits_nothing(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.create_job()
    first_attempt = stack.message()
    retried_on_mediaconvert(stack)

    assert stack.invoke(first_attempt) == NO_FAILURES

    assert stack.mediaconvert.create_requests == []
    assert outcome_metrics(capsys.readouterr().out) == {"WorkWithdrawn": 1.0}


def test_a_canceled_jobs_message_submits_nothing(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.create_job()
    message = stack.message()
    cancel(stack)

    assert stack.invoke(message) == NO_FAILURES

    assert stack.mediaconvert.create_requests == []
    assert stack.bus.drain() == []
    assert outcome_metrics(capsys.readouterr().out) == {"WorkWithdrawn": 1.0}


def test_a_job_canceled_while_its_upload_was_pinned_is_not_submitted(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a job its owner cancels while submit copies its upload (a multi-GiB copy takes a while)
    stack.create_job()
    pin = ValidatedSources.pin

    def canceled_during_the_copy(self: ValidatedSources, **where: Any) -> None:
        pin(self, **where)
        cancel(stack)

    monkeypatch.setattr(ValidatedSources, "pin", canceled_during_the_copy)

    # WHEN its message is handled
    assert stack.invoke(stack.message()) == NO_FAILURES

    # THEN the gate, asked just before CreateJob, stopped it: no MediaConvert job, nothing announced
    assert stack.mediaconvert.create_requests == []
    assert stack.bus.drain() == []


def test_a_job_canceled_as_its_mediaconvert_job_was_created_gets_that_job_canceled(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job its owner cancels between the gate's last answer and the record of its MediaConvert job
    stack.create_job()
    create = stack.mediaconvert._create

    def canceled_meanwhile(url: str, body: dict[str, Any]) -> Any:
        answer = create(url, body)
        cancel(stack)
        return answer

    monkeypatch.setattr(stack.mediaconvert, "_create", canceled_meanwhile)

    # WHEN its message is handled
    assert stack.invoke(stack.message()) == NO_FAILURES

    # THEN the record did not apply, and the MediaConvert job just created was canceled
    (created,) = stack.mediaconvert.jobs
    assert stack.mediaconvert.cancel_requests == [created]
    assert stack.mediaconvert.jobs[created]["status"] == "CANCELED"
    assert (stack.job().status, stack.job().mediaconvert) == ("CANCELED", None)
    assert outcome_metrics(capsys.readouterr().out) == {"WorkWithdrawn": 1.0}


# --- the job the events of this MediaConvert job move -------------------------------------------------------


def test_the_complete_event_of_the_submitted_job_completes_every_rendition_and_asks_for_the_package(
    stack: Stack,
) -> None:
    stack.create_job()
    stack.invoke(stack.message())
    client = stack.mediaconvert.attach(boto3.client("mediaconvert", region_name=REGION))
    (mediaconvert_job_id,) = stack.mediaconvert.jobs
    job = client.get_job(Id=mediaconvert_job_id)["Job"]
    request = {"Queue": job["Queue"], "UserMetadata": job["UserMetadata"], "Settings": job["Settings"]}

    done = stack.job()
    for status in ("PROGRESSING", "STATUS_UPDATE", "COMPLETE"):
        event = state_change_event(request, status, mediaconvert_job_id=mediaconvert_job_id)
        transition = tracker.mediaconvert_transition(tracker.parse_job_state_change(event["detail"]), now=NOW, sizes={})
        done = (transition(done) if transition else None) or done

    assert (done.status, done.playback.status) == ("PROCESSING", PackagingStatus.QUEUED)
    assert {name: (r.status, r.key) for name, r in done.renditions.items()} == {
        "720p": ("COMPLETED", f"outputs/{JOB_ID}/720p.mp4"),
        "1080p": ("COMPLETED", f"outputs/{JOB_ID}/1080p.mp4"),
    }
    assert [(s.rendition, s.bucket) for s in tracker.packaging_request(done).renditions] == [
        ("720p", "test-outputs"),
        ("1080p", "test-outputs"),
    ]
    done = complete_playback(done, now=NOW)
    assert done.status == "COMPLETED"
    assert done.playback.package.hlsKey == f"outputs/{JOB_ID}/hls/master.m3u8"
    assert done.mediaconvert.jobId == mediaconvert_job_id  # the tracker's writes keep the record
