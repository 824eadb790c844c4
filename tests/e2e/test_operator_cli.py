"""`python -m local ops` against the session's local cloud: queues, DLQ listing, redrive, requeue and history.

A job stuck in a DLQ is made by fault injection: a real image job, once COMPLETED, gets one unit rewound to QUEUED
(the job PROCESSING again, as it was before that unit ran) and that unit's own fan-out message, as ingest published it,
put into the images DLQ, as SQS moves a message there after `maxReceiveCount` failed receives.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from functions.common.jobs_table import to_dynamo
from functions.contracts.fanout import FanOutMessage
from functions.contracts.jobs import OPEN_MARKER, JobRecord, JobStatus, RenditionStatus
from local.cli import operator
from local.permissions.roles import ADMIN_CREDENTIALS
from tests import media_samples as samples
from tests.e2e.conftest import REPO, RunningCloud
from tests.e2e.test_pipeline import follow, renditions, start_upload

CLI_TIMEOUT_SECONDS = 60
JOB_TIMEOUT_SECONDS = 120


def ops(cloud: RunningCloud, *arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "local", "ops", *arguments, "--state-dir", str(cloud.state_dir)]
    return subprocess.run(
        command, check=False, cwd=REPO, capture_output=True, text=True, timeout=CLI_TIMEOUT_SECONDS, env=env
    )


def completed_image_job(cloud: RunningCloud, folder: Path, user: str) -> str:
    client = cloud.client(user)
    job_id = start_upload(client, samples.rgba_png(folder / f"{user}.png", width=400, height=300), "image/png")
    assert follow(client, job_id, JOB_TIMEOUT_SECONDS)["status"] == "COMPLETED"
    return job_id


def strand_unit_in_dlq(cloud: RunningCloud, job_id: str, unit: str) -> str:
    """Fault injection: the job back in PROCESSING with `unit` QUEUED, and that unit's fan-out message in the images
    DLQ. Returns the message body."""
    target = operator.local_target(cloud.state_dir)
    record = JobRecord.from_item(operator.job_record(target, job_id) or {})
    record.status = JobStatus.PROCESSING
    record.renditions[unit].status = RenditionStatus.QUEUED
    record.renditions[unit].progress = 0
    record.openJob = OPEN_MARKER
    record.deadlineAt = int(time.time() * 1000) + 3_600_000
    record.outcomeAnnouncedAt = None
    record.version += 1
    item = record.to_item()
    item.pop("outcomeAnnouncedAt", None)
    serializer = TypeSerializer()
    emulator = cloud.emulator()
    emulator.client("dynamodb").put_item(
        TableName=cloud.outputs["jobsTable"], Item={k: serializer.serialize(v) for k, v in to_dynamo(item).items()}
    )
    assert record.source.bucket and record.source.key
    message = FanOutMessage.for_job(record, bucket=record.source.bucket, key=record.source.key, etag=None)
    body = message.per_unit()[0].body()
    emulator.client("sqs").send_message(QueueUrl=cloud.outputs["deadLetterQueueUrls"]["images"], MessageBody=body)
    return body


def put_tracker_failure(cloud: RunningCloud, job_id: str, source: str = "media-pipeline") -> None:
    """What Lambda's on-failure destination gets after the tracker's async retries: the event and why it failed."""
    record = {
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {
            "detail-type": "Rendition Completed",
            "source": source,
            "detail": {"jobId": job_id, "rendition": "thumb-webp"},
        },
        "responsePayload": {"errorType": "RuntimeError", "errorMessage": "table unavailable"},
    }
    tracker_dlq = cloud.outputs["deadLetterQueueUrls"]["tracker"]
    cloud.emulator().client("sqs").send_message(QueueUrl=tracker_dlq, MessageBody=json.dumps(record))


def drop_tracker_failures(cloud: RunningCloud, job_id: str) -> None:
    sqs, tracker_dlq = cloud.emulator().client("sqs"), cloud.outputs["deadLetterQueueUrls"]["tracker"]
    for message in sqs.receive_message(QueueUrl=tracker_dlq, MaxNumberOfMessages=10).get("Messages", []):
        if job_id in message["Body"]:
            sqs.delete_message(QueueUrl=tracker_dlq, ReceiptHandle=message["ReceiptHandle"])


def in_dlq(cloud: RunningCloud, label: str, job_id: str) -> bool:
    """A peek through the operator's own listing (which leaves every message where it was)."""
    target = operator.local_target(cloud.state_dir)
    return any(letter.job_id == job_id for letter in operator.list_dead_letters(target, [label]))


@pytest.fixture(scope="module")
def stuck_job(pipeline_cloud: RunningCloud, tmp_path_factory: pytest.TempPathFactory) -> str:
    job_id = completed_image_job(pipeline_cloud, tmp_path_factory.mktemp("operator"), "operator-redrive")
    strand_unit_in_dlq(pipeline_cloud, job_id, "thumb-webp")
    return job_id


def test_queues_show_every_work_queue_and_dlq_with_depth_and_age(pipeline_cloud: RunningCloud, stuck_job: str) -> None:
    result = ops(pipeline_cloud, "queues")

    assert result.returncode == 0, result.stderr
    rows = {tuple(line.split()[:3]): line.split() for line in result.stdout.splitlines()[3:]}
    for label in pipeline_cloud.outputs["deadLetterQueueUrls"]:
        assert any(key[0] == label and key[2] == "DLQ" for key in rows), (label, result.stdout)
        if label != "tracker":  # the tracker is invoked by EventBridge: its DLQ has no source queue
            assert any(key[0] == label and key[2] == "work" for key in rows), (label, result.stdout)
    images_dlq = next(row for key, row in rows.items() if key[0] == "images" and key[2] == "DLQ")
    assert int(images_dlq[3]) >= 1  # visible
    assert re.fullmatch(r"\d+(\.\d)?", images_dlq[-2]) and images_dlq[-1] in ("s", "min", "h"), images_dlq  # oldest


def test_a_deployed_stack_is_read_from_its_stack_outputs_with_the_default_credentials(
    pipeline_cloud: RunningCloud, stuck_job: str, tmp_path: Path
) -> None:
    """`--stack-outputs` as against AWS (boto3's credential chain, CloudWatch for the age), the endpoint being the
    local cloud's: no traffic leaves 127.0.0.1."""
    outputs = tmp_path / "stack-outputs.json"
    outputs.write_text(json.dumps(pipeline_cloud.outputs))
    endpoint = pipeline_cloud.deployment["emulatorEndpoint"]
    assert endpoint.startswith("http://127.0.0.1:")
    env = {**os.environ, **ADMIN_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}

    queues = ops(pipeline_cloud, "queues", "--stack-outputs", str(outputs), "--region", "us-east-1", env=env)
    listed = ops(
        pipeline_cloud,
        "dlq",
        "list",
        "images",
        "--stack-outputs",
        str(outputs),
        env=env | {"AWS_DEFAULT_REGION": "us-east-1"},
    )

    assert queues.returncode == 0, queues.stderr
    assert f"Queues of the stack of {outputs} (us-east-1)" in queues.stdout
    assert re.search(r"images-queue-\S+\s+work", queues.stdout), queues.stdout
    assert listed.returncode == 0, listed.stderr
    assert stuck_job in listed.stdout


def test_dlq_list_shows_job_function_error_and_age_and_leaves_the_messages(
    pipeline_cloud: RunningCloud, stuck_job: str
) -> None:
    put_tracker_failure(pipeline_cloud, stuck_job)
    try:
        result = ops(pipeline_cloud, "dlq", "list")

        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stdout.splitlines() if stuck_job in line]
        images = next(line for line in lines if line.startswith("images "))
        tracker = next(line for line in lines if line.startswith("tracker "))
        assert "fan-out thumb-webp" in images
        assert re.search(r"  \d+ (s|min)  ", images), images  # its age
        assert "event Rendition Completed" in tracker
        assert "RuntimeError: table unavailable" in tracker
        # Looked at, not consumed: both are still there, visible at once.
        assert in_dlq(pipeline_cloud, "images", stuck_job)
        assert in_dlq(pipeline_cloud, "tracker", stuck_job)

        only_tracker = ops(pipeline_cloud, "dlq", "list", "tracker")
        assert stuck_job in only_tracker.stdout
        assert not any(line.startswith("images ") for line in only_tracker.stdout.splitlines())
    finally:
        drop_tracker_failures(pipeline_cloud, stuck_job)


def test_history_shows_the_record_and_the_dead_lettered_message(pipeline_cloud: RunningCloud, stuck_job: str) -> None:
    result = ops(pipeline_cloud, "history", stuck_job)

    assert result.returncode == 0, result.stderr
    assert f"job {stuck_job}: image PROCESSING" in result.stdout
    assert re.search(r"thumb-webp\s+QUEUED", result.stdout), result.stdout
    assert re.search(r"thumb-jpeg\s+COMPLETED", result.stdout), result.stdout
    assert "created (AWAITING_UPLOAD)" in result.stdout
    assert "fan-out thumb-webp dead-lettered in images" in result.stdout


def test_redrive_moves_the_message_back_and_the_stuck_job_completes(
    pipeline_cloud: RunningCloud, stuck_job: str
) -> None:
    result = ops(pipeline_cloud, "dlq", "redrive", "images", "--rate", "5", "--max", "50")

    assert result.returncode == 0, result.stderr
    assert re.match(r"moved [1-9]\d* message\(s\) from the images DLQ back to images-queue", result.stdout)
    job = follow(pipeline_cloud.client("operator-redrive"), stuck_job, JOB_TIMEOUT_SECONDS)
    assert job["status"] == "COMPLETED", job
    assert renditions(job)["thumb-webp"]["status"] == "COMPLETED"
    assert not in_dlq(pipeline_cloud, "images", stuck_job)


def test_requeue_sends_one_jobs_message_back_and_it_completes(pipeline_cloud: RunningCloud, tmp_path: Path) -> None:
    job_id = completed_image_job(pipeline_cloud, tmp_path, "operator-requeue")
    strand_unit_in_dlq(pipeline_cloud, job_id, "large-jpeg")
    put_tracker_failure(pipeline_cloud, job_id)
    put_tracker_failure(pipeline_cloud, job_id, source="aws.mediaconvert")
    try:
        result = ops(pipeline_cloud, "requeue", job_id)

        # The tracker's DLQ has no source queue: the pipeline's own event is put on the bus again, where its rule
        # delivers it to the tracker; MediaConvert's cannot be (AWS refuses a put with an aws.* source) and stays.
        assert in_dlq(pipeline_cloud, "tracker", job_id)
        tracker_only = ops(pipeline_cloud, "requeue", job_id, "--dlq", "tracker")
    finally:
        drop_tracker_failures(pipeline_cloud, job_id)
    assert result.returncode == 0, result.stderr
    assert f"requeued fan-out large-jpeg of job {job_id} from the images DLQ" in result.stdout
    assert f"requeued on-failure: event Rendition Completed of job {job_id} from the tracker DLQ" in result.stdout
    assert "left on-failure: event Rendition Completed in the tracker DLQ: " in result.stderr
    assert "comes from aws.mediaconvert: only the pipeline's own events can be put again" in result.stderr
    assert tracker_only.returncode == 1
    assert "only the pipeline's own events can be put again" in tracker_only.stderr
    job = follow(pipeline_cloud.client("operator-requeue"), job_id, JOB_TIMEOUT_SECONDS)
    assert job["status"] == "COMPLETED", job
    assert renditions(job)["large-jpeg"]["status"] == "COMPLETED"
    assert not in_dlq(pipeline_cloud, "images", job_id)


def test_requeue_and_history_refuse_an_unknown_job(pipeline_cloud: RunningCloud) -> None:
    requeued = ops(pipeline_cloud, "requeue", "job-that-never-was")
    history = ops(pipeline_cloud, "history", "job-that-never-was")
    wrong_dlq = ops(pipeline_cloud, "requeue", "job-that-never-was", "--dlq", "no-such-dlq")

    assert requeued.returncode == 1
    assert "error: no message of job job-that-never-was in any DLQ" in requeued.stderr
    assert history.returncode == 1
    assert "error: no job job-that-never-was in" in history.stderr
    assert wrong_dlq.returncode == 1
    assert "no DLQ labelled 'no-such-dlq'" in wrong_dlq.stderr


# --- the pure parts, without a cloud ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "job_id", "what"),
    [
        ('{"jobId":"j1","renditions":[{"name":"360p"}]}', "j1", "fan-out 360p"),
        ('{"kind":"webhook-delivery","jobId":"j2","eventType":"job.failed","attempt":9}', "j2", "webhook task"),
        ('{"detail-type":"Packaging Requested","detail":{"jobId":"j3"}}', "j3", "event Packaging Requested"),
        ('{"detail-type":"MediaConvert Job State Change","detail":{"userMetadata":{"jobId":"j4"}}}', "j4", "event"),
        ('{"Records":[{"s3":{"object":{"key":"uploads/j5/source"}}}]}', "j5", "S3 notification"),
        ("not json", None, "not JSON"),
    ],
)
def test_a_message_is_read_by_the_projects_contracts(body: str, job_id: str | None, what: str) -> None:
    parsed = operator.parse_body(body)

    assert parsed.job_id == job_id
    assert parsed.what.startswith(what)


class _FakeSqs:
    """A DLQ of `count` messages and its source queue, recording when each message was sent back."""

    def __init__(self, count: int) -> None:
        self.waiting = [{"MessageId": str(i), "ReceiptHandle": str(i), "Body": "{}"} for i in range(count)]
        self.sent: list[float] = []
        self.deleted: list[str] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        count = kwargs["MaxNumberOfMessages"]
        batch, self.waiting = self.waiting[:count], self.waiting[count:]
        return {"Messages": batch}

    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        return {"Attributes": {"ApproximateNumberOfMessages": str(len(self.waiting))}}

    def list_dead_letter_source_queues(self, **kwargs: Any) -> dict[str, Any]:
        return {"queueUrls": ["http://127.0.0.1/1/work"]}

    def send_message(self, **kwargs: Any) -> None:
        self.sent.append(time.monotonic())

    def delete_message(self, **kwargs: Any) -> None:
        self.deleted.append(kwargs["ReceiptHandle"])


def test_redrive_is_bounded_in_rate_and_count() -> None:
    sqs = _FakeSqs(count=30)
    target = operator.Target({"deadLetterQueueUrls": {"work": "http://127.0.0.1/1/dlq"}}, lambda _: sqs, "fake")
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    result = operator.redrive(target, "work", rate=50, limit=12, sleep=sleep)

    assert len(result.moved) == 12 and result.left == []
    assert sqs.deleted == [str(i) for i in range(12)]
    gaps = [later - earlier for earlier, later in zip(sqs.sent, sqs.sent[1:], strict=False)]
    assert min(gaps) >= 1 / 50 - 0.002, gaps  # never faster than the rate, however fast the machine


def test_only_the_pipelines_own_events_are_put_on_the_bus_again() -> None:
    def letter(source: str) -> operator.DeadLetter:
        payload = {"source": source, "detail-type": "Rendition Failed", "detail": {"jobId": "j"}}
        return operator.DeadLetter(
            "tracker", "m1", "r1", json.dumps({"requestPayload": payload}), {}, "j", "on-failure", None, 0, 1
        )

    assert operator.replayed_event(letter("media-pipeline"), "bus-dev") == {
        "Source": "media-pipeline",
        "DetailType": "Rendition Failed",
        "Detail": '{"jobId":"j"}',
        "EventBusName": "bus-dev",
    }
    for source in ("aws.mediaconvert", "aws.events"):
        with pytest.raises(operator.NotReplayable, match="only the pipeline's own events"):
            operator.replayed_event(letter(source), "bus-dev")
