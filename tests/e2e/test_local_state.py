"""The local cloud's durable state without a cloud: stable names, the data snapshot against an in-process moto server,
the MediaConvert jobs' export, and what `python -m local reset` removes (tests/e2e/test_durable_local.py runs it all
through restarts)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from moto.moto_api._internal import mock_random
from moto.sqs.models import sqs_backends

from functions.contracts.fanout import EncodePlan
from functions.submit.service import JobTarget, create_job_request
from local.cloud import CloudConfigError, reset_state
from local.engine.cloudfront import cloudfront_id
from local.engine.emulator import ACCOUNT_ID, Emulator
from local.engine.resources import autoname, random_hex
from local.engine.state_store import DataSnapshot, StableNames, StateError, _encode, resource_random, wipe
from local.engine.write_gate import WriteGate, is_read
from local.mediaconvert.jobs import JobStatus, JobStore
from local.mediaconvert.service import MediaConvertStandIn, StandInOptions
from local.mediaconvert.settings import read_job_settings
from local.runtime.clock import LocalClock

QUEUE = "aws:sqs/queue:Queue"
PLAN = EncodePlan(name="240p", width=426, height=240, maxVideoBitrateKbps=400, audioBitrateKbps=64)


def draws(names: StableNames, token: str, name: str) -> tuple[str, ...]:
    with names.declaring(token, name):
        return (
            autoname(name, {}),
            autoname(name, {"namePrefix": "jobs-"}),
            random_hex(),
            cloudfront_id("K"),
            str(resource_random.uuid4()),
            mock_random.get_random_hex(12),  # moto's draws: KMS key ids, role ids, subscription ARNs
        )


def test_a_resource_declared_again_gets_the_names_it_had(tmp_path: Path) -> None:
    path = tmp_path / "names.json"
    first = StableNames(path, "media-pipeline", "dev")
    jobs = draws(first, QUEUE, "jobs")
    first.record(QUEUE, "jobs", jobs[0])
    first.save()

    second = StableNames(path, "media-pipeline", "dev")
    assert draws(second, QUEUE, "jobs") == jobs
    assert draws(second, "aws:sns/topic:Topic", "jobs") != jobs  # another type: another resource
    assert json.loads(path.read_text())["resources"][f"{QUEUE}::jobs"]["id"] == jobs[0]


def test_the_same_type_and_name_declared_twice_gets_two_names_each_kept(tmp_path: Path) -> None:
    path = tmp_path / "names.json"
    first = StableNames(path, "media-pipeline", "dev")
    twins = (draws(first, QUEUE, "dlq"), draws(first, QUEUE, "dlq"))  # under parents of two component types
    first.save()
    second = StableNames(path, "media-pipeline", "dev")
    assert twins[0] != twins[1]
    assert (draws(second, QUEUE, "dlq"), draws(second, QUEUE, "dlq")) == twins


def test_a_resource_no_longer_declared_is_forgotten_and_a_reset_draws_new_names(tmp_path: Path) -> None:
    path = tmp_path / "names.json"
    first = StableNames(path, "media-pipeline", "dev")
    jobs = draws(first, QUEUE, "jobs")
    first.save()
    second = StableNames(path, "media-pipeline", "dev")
    draws(second, QUEUE, "other")
    second.save()  # "jobs" was not declared this time
    assert draws(StableNames(path, "media-pipeline", "dev"), QUEUE, "jobs") != jobs
    assert draws(StableNames(tmp_path / "reset" / "names.json", "media-pipeline", "dev"), QUEUE, "jobs") != jobs


def test_what_is_drawn_after_a_resource_is_created_is_not_repeated_on_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "names.json"
    after: list[str] = []
    for _ in range(2):
        names = StableNames(path, "media-pipeline", "dev")
        draws(names, QUEUE, "jobs")
        names.save()
        after.append(mock_random.get_random_hex(16) + random_hex(16))  # message ids, receipt handles, ...
    assert after[0] != after[1]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "is unreadable"),
        (json.dumps({"format": 99, "project": "media-pipeline", "stack": "dev", "resources": {}}), "format 99"),
        (json.dumps({"format": 1, "project": "media-pipeline", "stack": "prod", "resources": {}}), "stack prod"),
        (json.dumps({"format": 1, "project": "media-pipeline", "stack": "dev", "resources": {"a": 1}}), "unreadable"),
    ],
)
def test_saved_names_that_cannot_be_used_are_refused_naming_reset(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "names.json"
    path.write_text(content)
    with pytest.raises(StateError, match=reason) as refused:
        StableNames(path, "media-pipeline", "dev")
    assert "python -m local reset" in str(refused.value)


# --- the data snapshot -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    running = Emulator()
    running.start()
    yield running
    running.stop()


def _setup(emulator: Emulator) -> dict[str, str]:
    """A bucket that notifies a queue, a table, a work queue; unique names (moto's backends are per process)."""
    suffix = uuid.uuid4().hex[:8]
    names = {"bucket": f"uploads-{suffix}", "table": f"jobs-{suffix}", "queue": f"work-{suffix}"}
    s3, sqs, dynamodb = emulator.client("s3"), emulator.client("sqs"), emulator.client("dynamodb")
    s3.create_bucket(Bucket=names["bucket"])
    names["events"] = sqs.create_queue(QueueName=f"events-{suffix}")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=names["events"], AttributeNames=["QueueArn"])["Attributes"]
    s3.put_bucket_notification_configuration(
        Bucket=names["bucket"],
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": events_arn["QueueArn"], "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    names["queue_url"] = sqs.create_queue(QueueName=names["queue"])["QueueUrl"]
    dynamodb.create_table(
        TableName=names["table"],
        KeySchema=[{"AttributeName": "jobId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "jobId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return names


def _empty(queue_url: str) -> None:
    """Every message gone, in flight or not (PurgeQueue allows one call a minute)."""
    sqs_backends[ACCOUNT_ID]["us-east-1"].queues[queue_url.rsplit("/", 1)[1]]._messages.clear()


def _received(emulator: Emulator, queue_url: str) -> list[dict[str, Any]]:
    answer = emulator.client("sqs").receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=600,
    )
    return sorted(answer.get("Messages", []), key=lambda m: m["Body"])


def test_data_is_captured_and_restored_without_announcing_anything(emulator: Emulator, tmp_path: Path) -> None:
    names = _setup(emulator)
    s3, sqs, dynamodb = emulator.client("s3"), emulator.client("sqs"), emulator.client("dynamodb")
    s3.put_object(
        Bucket=names["bucket"],
        Key="uploads/job-1/source",
        Body=b"\x00 video bytes",
        ContentType="video/mp4",
        Metadata={"job-id": "job-1"},
    )
    item = {"jobId": {"S": "job-1"}, "version": {"N": "3"}, "digest": {"B": b"\x01\x02"}, "tags": {"SS": ["a", "b"]}}
    item |= {
        "renditions": {"L": [{"M": {"name": {"S": "240p"}, "sum": {"B": b"\x03"}, "done": {"BOOL": True}}}]},
        "keys": {"BS": [b"\x04", b"\x05"]},
        "sizes": {"NS": ["1", "2.5"]},
        "error": {"NULL": True},
        "meta": {"M": {"nested": {"M": {"raw": {"B": b"\x06"}}}}},
    }
    dynamodb.put_item(TableName=names["table"], Item=item)
    attributes = {
        "kind": {"DataType": "String", "StringValue": "video"},
        "raw": {"DataType": "Binary", "BinaryValue": b"\xff"},
    }
    sqs.send_message(QueueUrl=names["queue_url"], MessageBody="in flight", MessageAttributes=attributes)
    assert [m["Body"] for m in _received(emulator, names["queue_url"])] == ["in flight"]  # a consumer has it
    sqs.send_message(QueueUrl=names["queue_url"], MessageBody="waiting")
    _empty(names["events"])  # the put's own notification: not what this test is about

    snapshot = DataSnapshot(tmp_path, "media-pipeline", "dev", emulator, ACCOUNT_ID)
    snapshot.capture(lambda: [{"id": "mediaconvert-job"}])
    # read from moto's tables in this process, the items are what a Scan returns
    captured = json.loads(snapshot.path.read_text())["tables"][names["table"]]
    assert captured == [_encode(i) for i in dynamodb.scan(TableName=names["table"])["Items"]]

    # As a fresh emulator would be after the program ran: the same resources, empty.
    s3.delete_object(Bucket=names["bucket"], Key="uploads/job-1/source")
    _empty(names["events"])
    _empty(names["queue_url"])
    dynamodb.delete_item(TableName=names["table"], Key={"jobId": {"S": "job-1"}})

    restarted = DataSnapshot(tmp_path, "media-pipeline", "dev", emulator, ACCOUNT_ID)
    saved = restarted.load()
    assert saved is not None and saved["mediaconvertJobs"] == [{"id": "mediaconvert-job"}]
    restarted.restore(saved)

    restored = s3.get_object(Bucket=names["bucket"], Key="uploads/job-1/source")
    assert (restored["Body"].read(), restored["ContentType"], restored["Metadata"]) == (
        b"\x00 video bytes",
        "video/mp4",
        {"job-id": "job-1"},
    )
    assert dynamodb.get_item(TableName=names["table"], Key={"jobId": {"S": "job-1"}})["Item"] == item
    messages = _received(emulator, names["queue_url"])
    assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in messages] == [
        ("in flight", "2"),  # received before the stop, visible again at once, its receive counted
        ("waiting", "1"),
    ]
    assert messages[0]["MessageAttributes"] == {
        "kind": {"DataType": "String", "StringValue": "video"},
        "raw": {"DataType": "Binary", "BinaryValue": b"\xff"},
    }
    assert _received(emulator, names["events"]) == []  # the restored object announced nothing
    # the next capture knows the restored objects: it reads none of them again (writes are held while it runs)
    with mock.patch.object(s3, "get_object", side_effect=AssertionError("read again")):
        restarted.capture(list)


def test_an_object_deleted_is_gone_from_the_next_capture_and_its_body_with_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    names = _setup(emulator)
    s3 = emulator.client("s3")
    s3.put_object(Bucket=names["bucket"], Key="outputs/job-1/240p.mp4", Body=b"rendition")
    snapshot = DataSnapshot(tmp_path, "media-pipeline", "dev", emulator, ACCOUNT_ID)
    snapshot.capture(list)
    assert len(list((tmp_path / "objects").iterdir())) >= 1
    s3.delete_object(Bucket=names["bucket"], Key="outputs/job-1/240p.mp4")
    snapshot.capture(list)
    saved = snapshot.load()
    assert saved is not None and saved["buckets"][names["bucket"]] == {}
    blobs = {blob.name for blob in (tmp_path / "objects").iterdir()}
    referenced = {e["blob"] for entries in saved["buckets"].values() for e in entries.values()}
    assert blobs == referenced


def test_a_capture_is_one_instant_writes_wait_for_it_and_reads_do_not(emulator: Emulator, tmp_path: Path) -> None:
    names = _setup(emulator)
    dynamodb, sqs = emulator.client("dynamodb"), emulator.client("sqs")
    dynamodb.put_item(TableName=names["table"], Item={"jobId": {"S": "before"}})
    writer = ThreadPoolExecutor(1)
    seen: dict[str, Any] = {}

    def during_capture() -> list[dict[str, Any]]:
        # Inside the hold (the MediaConvert export is read with the rest): a write waits, reads answer.
        seen["write"] = writer.submit(dynamodb.put_item, TableName=names["table"], Item={"jobId": {"S": "during"}})
        seen["read"] = dynamodb.get_item(TableName=names["table"], Key={"jobId": {"S": "before"}}).get("Item")
        seen["received"] = sqs.receive_message(QueueUrl=names["queue_url"], WaitTimeSeconds=0).get("Messages", [])
        seen["write_held"] = not _wait_done(seen["write"], 1.0)
        return []

    snapshot = DataSnapshot(tmp_path, "media-pipeline", "dev", emulator, ACCOUNT_ID)
    snapshot.capture(during_capture)
    seen["write"].result(timeout=30)  # released once the capture has read everything
    writer.shutdown()

    assert seen["read"] == {"jobId": {"S": "before"}}
    assert seen["received"] == []
    assert seen["write_held"] is True
    saved = snapshot.load()
    assert saved is not None
    assert [item["jobId"]["S"] for item in saved["tables"][names["table"]]] == ["before"]
    assert dynamodb.get_item(TableName=names["table"], Key={"jobId": {"S": "during"}}).get("Item") is not None


def _wait_done(future: Future[Any], seconds: float) -> bool:
    """False when the future did not finish within `seconds` (the write was held), True when it did."""
    try:
        future.result(timeout=seconds)
    except FutureTimeout:
        return False
    return True


def test_the_gate_holds_writes_until_it_opens_and_waits_for_writes_in_progress() -> None:
    gate = WriteGate(hold_timeout=5)
    order: list[str] = []
    in_write, release_write = threading.Event(), threading.Event()

    def slow_write() -> None:
        with gate.passing():
            in_write.set()
            release_write.wait(5)
            order.append("write in progress ended")

    def hold() -> None:
        with gate.closed():
            order.append("held")

    with ThreadPoolExecutor(2) as pool:
        writing = pool.submit(slow_write)
        assert in_write.wait(5)
        holding = pool.submit(hold)
        time.sleep(0.2)
        assert order == []  # the hold waits for the write in progress
        release_write.set()
        writing.result(5)
        holding.result(5)
    assert order == ["write in progress ended", "held"]


def test_a_write_that_never_ends_fails_the_capture_not_the_cloud() -> None:
    gate = WriteGate(hold_timeout=0.2)
    entered, stuck = threading.Event(), threading.Event()

    def never_ending_write() -> None:
        with gate.passing():
            entered.set()
            stuck.wait(5)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(never_ending_write)
        assert entered.wait(5)
        with pytest.raises(TimeoutError, match="still writing"), gate.closed():
            pass
        # The gate is open again: another write passes at once.
        with gate.passing():
            pass
        stuck.set()


@pytest.mark.parametrize("method, target, read", [
    ("GET", "", True),
    ("HEAD", "", True),
    ("POST", "DynamoDB_20120810.Query", True),
    ("POST", "AmazonSQS.ReceiveMessage", True),
    ("POST", "DynamoDB_20120810.PutItem", False),
    ("POST", "AmazonSQS.DeleteMessage", False),
    ("PUT", "", False),
    ("POST", "", False),
])  # fmt: skip
def test_only_requests_that_read_pass_a_held_gate(method: str, target: str, read: bool) -> None:
    assert is_read({"REQUEST_METHOD": method, "HTTP_X_AMZ_TARGET": target}) is read


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "is unreadable"),
        (json.dumps({"format": 1, "project": "other", "stack": "dev"}), "holds project other"),
        (json.dumps({"format": 1, "project": "media-pipeline", "stack": "dev", "buckets": {}}), "has no tables"),
    ],
)
def test_a_snapshot_that_cannot_be_used_is_refused_naming_reset(tmp_path: Path, content: str, reason: str) -> None:
    (tmp_path / "snapshot.json").write_text(content)
    snapshot = DataSnapshot(tmp_path, "media-pipeline", "dev", Emulator(), ACCOUNT_ID)
    with pytest.raises(StateError, match=reason) as refused:
        snapshot.load()
    assert "python -m local reset" in str(refused.value)


# --- MediaConvert jobs ---------------------------------------------------------------------------------------


def test_mediaconvert_jobs_come_back_and_unfinished_ones_are_submitted_again() -> None:
    store = JobStore("us-east-1", ACCOUNT_ID)
    store.add_queue("jobs")
    params = {"Role": "arn:aws:iam::123456789012:role/mc", "Settings": {"Inputs": []}, "Queue": "jobs"}
    running, _, _ = store.create({**params, "UserMetadata": {"jobId": "a"}}, spec=None, admit=lambda job: None)  # type: ignore[arg-type]
    done, _, _ = store.create({**params, "UserMetadata": {"jobId": "b"}}, spec=None, admit=lambda job: None)  # type: ignore[arg-type]
    assert store.start(running) and store.start(done)
    store.complete(done, [{"outputDetails": []}])
    exported = json.loads(json.dumps(store.export()))

    restarted = JobStore("us-east-1", ACCOUNT_ID)
    restarted.add_queue("jobs")
    restored = [restarted.restore(record, spec=None) for record in exported]  # type: ignore[arg-type]
    assert [(job.id, job.status, job.user_metadata) for job in restored if job] == [
        (running.id, JobStatus.SUBMITTED, {"jobId": "a"}),
        (done.id, JobStatus.COMPLETE, {"jobId": "b"}),
    ]
    assert restarted.describe(restarted.get(done.id)) == store.describe(done)
    newer, _, _ = restarted.create(params, spec=None, admit=lambda job: None)  # type: ignore[arg-type]
    assert newer.sequence > done.sequence
    assert JobStore("us-east-1", ACCOUNT_ID).restore(exported[0], spec=None) is None  # type: ignore[arg-type]


def test_the_stand_in_queues_the_unfinished_jobs_it_restores(emulator: Emulator, tmp_path: Path) -> None:
    def stand_in() -> MediaConvertStandIn:
        options = StandInOptions(ACCOUNT_ID, "us-east-1", tmp_path / "work", LocalClock(0.01))
        service = MediaConvertStandIn(emulator, options)
        service.add_queue("jobs")
        return service

    before = stand_in()
    target = JobTarget("01JOB", "s", "u", "uploads/01JOB/source", "o", True, "arn:aws:iam::1:role/r", "Default")
    request = {**create_job_request(target, [PLAN]), "Queue": before.jobs.queue_arn("jobs")}
    job, _, _ = before.jobs.create(request, read_job_settings(request["Settings"]), admit=lambda job: None)
    assert before.jobs.start(job)

    after = stand_in()
    assert after.restore_jobs(json.loads(json.dumps(before.export_jobs()))) == 1
    described = after.get_job({"Id": job.id})["Job"]
    assert (described["Status"], described["Settings"], described["Queue"]) == (
        "SUBMITTED",
        request["Settings"],
        before.jobs.queue_arn("jobs"),
    )


# --- reset ------------------------------------------------------------------------------------------------------


def test_reset_removes_the_emulators_state_and_keeps_the_cache_and_config(tmp_path: Path) -> None:
    for folder in ("state/media-pipeline-dev/objects", "cache/layer", "logs", "tmp/worker-1"):
        (tmp_path / folder).mkdir(parents=True)
    kept = ("cdn-key.pem", "Pulumi.local.yaml", "up.log")
    for file in ("jwt-key.pem", "auth.json", "deployment.json", "outputs.json", *kept):  # outputs.json of a crash
        (tmp_path / file).write_text("x")
    removed = wipe(tmp_path)
    assert sorted(p.name for p in removed) == [
        "auth.json",
        "deployment.json",
        "jwt-key.pem",
        "logs",
        "outputs.json",
        "state",
        "tmp",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pulumi.local.yaml", "cache", "cdn-key.pem", "up.log"]
    assert wipe(tmp_path) == []


def test_reset_is_refused_while_a_cloud_runs_on_the_state_dir(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "deployment.json").write_text(json.dumps({"pid": os.getppid()}))  # a live process, not this one
    (tmp_path / "outputs.json").write_text("{}")
    with pytest.raises(CloudConfigError, match="another local cloud"):
        reset_state(tmp_path)
    assert (tmp_path / "state").exists()
