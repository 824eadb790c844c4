"""The submit handler against moto (jobs table, bus) and a fake MediaConvert on a real client: one MediaConvert job
per pipeline job, however often and however concurrently the message arrives."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from functions.common import job_state
from functions.common.job_state import Job
from functions.common.jobs_table import JobsTable
from functions.common.renditions import DEFAULT_RENDITIONS
from functions.ingest.fanout import fanout_message
from functions.ingest.planning import plan_renditions
from functions.submit import handler
from functions.submit.settings import SettingsError, SubmitSettings
from functions.tracker import mediaconvert_events as mc
from local.engine.moto_patches import honour_copy_source_if_match
from tests.functions.conftest import FIXTURES, REGION, CapturedEvents, FakeLambdaContext
from tests.functions.mediaconvert_service import (
    TOKEN_WINDOW_MS,
    FakeMediaConvert,
    create_job_errors,
    state_change_event,
)

JOB_ID = "01JBQ7Z8K3M4N5P6Q7R8S9T0VW"
OWNER_ID = "user-1"
NOW = 1_795_000_000_000
QUEUE_ARN = "arn:aws:mediaconvert:us-east-1:123456789012:queues/mediaconvert-jobs-1a2b3c4"
ROLE_ARN = "arn:aws:iam::123456789012:role/mediaconvert-service-role-5d6e7f8"
NO_FAILURES = {"batchItemFailures": []}
SOURCE_KEY = f"uploads/{JOB_ID}/source"
VALIDATED_KEY = f"uploads/{JOB_ID}/validated"
UPLOADED = b"the video ingest validated"


def sqs_event(*bodies: dict[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
    """The fixture's record, once per body, each with its own message id."""
    template = json.loads((FIXTURES / "submit_sqs_event.json").read_text())["Records"][0]
    records = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"message-{index}"
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records.append(record)
    return {"Records": records}


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

    def create_job(self, *, engine: str = "mediaconvert", has_audio: bool = True, job_id: str = JOB_ID) -> Job:
        """A job ingest accepted: PROCESSING with the plan for a 1080p source."""
        job = job_state.new_job(
            job_id=job_id, owner_id=OWNER_ID, source={}, now=NOW, upload_deadline=NOW + 1, retention_seconds=3600
        )
        job = job_state.begin_validation(job, now=NOW, deadline=NOW + 7_200_000)
        probe = {"durationMs": 2000, "width": 1920, "height": 1080, "hasAudio": has_audio, "frameRate": 30.0}
        planned = plan_renditions(1920, 1080, DEFAULT_RENDITIONS)
        job = job_state.begin_processing(job, media_type="video", engine=engine, probe=probe, planned=planned, now=NOW)
        assert job is not None
        self.jobs.create(job)
        self.upload(job_id=job_id)
        return job

    def message(self, job_id: str = JOB_ID, *, etag: str | None = None, **changes: Any) -> dict[str, Any]:
        """The fan-out message ingest publishes for the stored job: by default naming the ETag of the first upload."""
        etag = etag or self.s3.head_object(Bucket="test-uploads", Key=f"uploads/{job_id}/source")["ETag"].strip('"')
        body = fanout_message(self.jobs.get(job_id), bucket="test-uploads", key=f"uploads/{job_id}/source", etag=etag)
        return {**json.loads(json.dumps(body.body)), **changes}

    def validated(self) -> bytes:
        return self.s3.get_object(Bucket="test-uploads", Key=VALIDATED_KEY)["Body"].read()

    def invoke(self, *bodies: dict[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
        return handler.handler(sqs_event(*bodies, receive_count=receive_count), self.context)

    def job(self, job_id: str = JOB_ID) -> Job:
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
    # Powertools read its environment when the handler module was imported, before the test's environment existed.
    monkeypatch.setattr(handler.metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    monkeypatch.setattr(handler, "now_ms", lambda: NOW)
    fake = FakeMediaConvert()
    real_client = handler.mediaconvert_client
    monkeypatch.setattr(handler, "mediaconvert_client", lambda: fake.attach(real_client()))
    honour_copy_source_if_match()  # moto ignores CopySourceIfMatch; S3 (and the local cloud) refuse with 412
    return Stack(fake, JobsTable("jobs"), event_bus, lambda_context, boto3.client("s3", region_name=REGION))


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
    assert job["mediaconvert"] == {"jobId": mediaconvert_job_id, "clientRequestToken": JOB_ID, "submittedAt": NOW}
    assert (job["status"], job["version"]) == ("PROCESSING", 1)
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
    assert "mediaconvert" not in stack.job()

    # WHEN the message comes back while MediaConvert still knows the request token
    monkeypatch.setattr(JobsTable, "change", original)
    stack.mediaconvert.now_ms += TOKEN_WINDOW_MS // 2
    assert stack.invoke(stack.message(), receive_count=2) == NO_FAILURES

    # THEN CreateJob was asked twice but answered with the one job, which is now recorded
    assert len(stack.mediaconvert.create_requests) == 2
    (mediaconvert_job_id,) = stack.mediaconvert.jobs
    assert stack.job()["mediaconvert"]["jobId"] == mediaconvert_job_id


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
    assert stack.job()["mediaconvert"]["jobId"] == "1794999999999-other1"
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
    assert "mediaconvert" not in stack.job()


def test_a_job_that_already_ended_is_not_submitted(stack: Stack) -> None:
    stack.create_job()
    message = stack.message()
    stack.jobs.change(JOB_ID, lambda job: job_state.fail_job(job, code="PROCESSING_TIMEOUT", message="late", now=NOW))

    assert stack.invoke(message, receive_count=3) == NO_FAILURES

    assert stack.mediaconvert.create_requests == []
    assert stack.job()["status"] == "FAILED"


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
    assert "mediaconvert" not in stack.job()


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
    assert stack.job()["mediaconvert"]["jobId"] in stack.mediaconvert.jobs
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
    assert "mediaconvert" not in stack.job()


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, "TooManyRequestsException"), (500, "InternalServerErrorException"), (403, "ForbiddenException")],
)
def test_other_mediaconvert_errors_are_retried(stack: Stack, status: int, kind: str) -> None:
    stack.create_job()
    stack.mediaconvert.next_errors.extend([(status, kind, "try later")] * 10)  # outlast botocore's own retries

    assert stack.invoke(stack.message()) == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}

    assert stack.mediaconvert.jobs == {}
    assert "mediaconvert" not in stack.job()
    assert stack.bus.drain() == []


# --- the job the events of this MediaConvert job move -------------------------------------------------------


def test_the_complete_event_of_the_submitted_job_completes_every_rendition(stack: Stack) -> None:
    stack.create_job()
    stack.invoke(stack.message())
    client = stack.mediaconvert.attach(boto3.client("mediaconvert", region_name=REGION))
    (mediaconvert_job_id,) = stack.mediaconvert.jobs
    job = client.get_job(Id=mediaconvert_job_id)["Job"]
    request = {"Queue": job["Queue"], "UserMetadata": job["UserMetadata"], "Settings": job["Settings"]}

    done = stack.job()
    for status in ("PROGRESSING", "STATUS_UPDATE", "COMPLETE"):
        event = state_change_event(request, status, mediaconvert_job_id=mediaconvert_job_id)
        transition = mc.mediaconvert_transition(mc.parse_job_state_change(event["detail"]), now=NOW, sizes={})
        done = (transition(done) if transition else None) or done

    assert done["status"] == "COMPLETED"
    assert {name: r["key"] for name, r in done["renditions"].items()} == {
        "720p": f"outputs/{JOB_ID}/720p.mp4",
        "1080p": f"outputs/{JOB_ID}/1080p.mp4",
    }
    assert done["mediaconvert"]["jobId"] == mediaconvert_job_id  # the tracker's writes keep the record


# --- settings and the client --------------------------------------------------------------------------------

ENV = {
    "JOBS_TABLE_NAME": "jobs",
    "EVENT_BUS_NAME": "bus",
    "UPLOADS_BUCKET": "up",
    "OUTPUTS_BUCKET": "out",
    "STACK_NAME": "dev",
    "MEDIACONVERT_QUEUE_ARN": QUEUE_ARN,
    "MEDIACONVERT_ROLE_ARN": ROLE_ARN,
}


def test_settings_come_from_the_environment() -> None:
    settings = SubmitSettings.from_env(ENV)

    assert (settings.queue_arn, settings.role_arn, settings.stack_name) == (QUEUE_ARN, ROLE_ARN, "dev")
    assert settings.metrics_namespace == "MediaPipeline"


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"MEDIACONVERT_ROLE_ARN": ""}, "MEDIACONVERT_ROLE_ARN"), ({"MEDIACONVERT_QUEUE_ARN": "Default"}, "an ARN")],
)
def test_missing_or_malformed_settings_are_named(changes: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        SubmitSettings.from_env({**ENV, **changes})


def test_the_client_uses_the_regional_endpoint_unless_the_environment_names_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_MEDIACONVERT", raising=False)
    assert handler.mediaconvert_client().meta.endpoint_url == "https://mediaconvert.us-east-1.amazonaws.com"

    monkeypatch.setenv("AWS_ENDPOINT_URL_MEDIACONVERT", "http://127.0.0.1:4599")
    assert handler.mediaconvert_client().meta.endpoint_url == "http://127.0.0.1:4599"
