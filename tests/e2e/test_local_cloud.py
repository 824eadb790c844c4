"""The local cloud's own behaviour, driven through the fixture program (no ffmpeg): wiring derived from the
program's resources, exact function environments, partial batch failures and redrive, timeouts, async retries
with a dead-letter queue, schedules, and the HTTP API's JWT authorizer."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from local.cli.client import post_form, request
from tests.e2e.conftest import REPO, RunningCloud, wait_for

pytestmark = pytest.mark.e2e

TABLE = "aws:dynamodb/table:Table"


def _item(cloud: RunningCloud, item_id: str) -> dict[str, Any]:
    table = cloud.outputs["tableName"]
    raw = cloud.emulator().client("dynamodb").get_item(TableName=table, Key={"id": {"S": item_id}}).get("Item", {})
    return {k: _plain(v) for k, v in raw.items()}


def _plain(value: dict[str, Any]) -> Any:
    kind, inner = next(iter(value.items()))
    return [_plain(v) for v in inner] if kind == "L" else inner


def _upload(cloud: RunningCloud, owner: str, content: bytes, tmp_path: Any) -> str:
    client = cloud.client(owner)
    created = client.call("POST", "uploads")
    assert created.status == 201, created.body
    path = tmp_path / f"{created.body['id']}.bin"
    path.write_bytes(content)
    assert post_form(created.body["upload"]["url"], created.body["upload"]["fields"], path) == 204
    return str(created.body["id"])


def _queue_depth(cloud: RunningCloud, url: str) -> int:
    attributes = cloud.emulator().client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    values = attributes["Attributes"]
    return int(values["ApproximateNumberOfMessages"]) + int(values["ApproximateNumberOfMessagesNotVisible"])


def test_outputs_are_the_emulators_real_values(fixture_cloud: RunningCloud) -> None:
    outputs = fixture_cloud.outputs
    emulator = fixture_cloud.emulator()
    assert outputs["uploadsBucket"].startswith("uploads-") and len(outputs["uploadsBucket"]) == len("uploads-") + 7
    assert outputs["uploadsBucket"] in [b["Name"] for b in emulator.client("s3").list_buckets()["Buckets"]]
    table = emulator.client("dynamodb").describe_table(TableName=outputs["tableName"])["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["byOwner"]
    ttl = emulator.client("dynamodb").describe_time_to_live(TableName=outputs["tableName"])
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}
    assert outputs["apiUrl"].startswith("http://127.0.0.1:")


def test_wiring_comes_from_the_program(fixture_cloud: RunningCloud) -> None:
    emulator = fixture_cloud.emulator()
    sns = emulator.client("sns")
    subscriptions = [
        s
        for topic in sns.list_topics()["Topics"]
        if ":validated-" in topic["TopicArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=topic["TopicArn"])["Subscriptions"]
    ]
    assert len(subscriptions) == 1
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscriptions[0]["SubscriptionArn"])["Attributes"]
    assert json.loads(attributes["FilterPolicy"]) == {"kind": ["video"]}
    assert attributes["RawMessageDelivery"] == "true"
    queues = {q["name"].rsplit("-", 1)[0]: q for q in fixture_cloud.deployment["queues"]}
    redrive = emulator.client("sqs").get_queue_attributes(QueueUrl=queues["ingest"]["url"], AttributeNames=["All"])
    policy = json.loads(redrive["Attributes"]["RedrivePolicy"])
    assert policy == {"deadLetterTargetArn": queues["ingest-dlq"]["arn"], "maxReceiveCount": 2}
    assert redrive["Attributes"]["VisibilityTimeout"] == "30"


def test_upload_flows_through_every_hop(fixture_cloud: RunningCloud, tmp_path: Any) -> None:
    item_id = _upload(fixture_cloud, "alice", b"video ok", tmp_path)
    item = wait_for(lambda: (i := _item(fixture_cloud, item_id)).get("status") == "DONE" and i, 30, message="DONE")
    assert item["eventName"] == "ObjectCreated:Post"
    assert item["rawKey"] == f"uploads/{item_id}/source"  # URL-encoded as S3 does it: `/` stays
    assert (item["ingestAttempts"], item["workAttempts"], item["trackAttempts"]) == ("1", "1", "1")
    # Exactly the declared variables plus what the Lambda service provides; nothing from the host leaks in.
    declared = {"TABLE_NAME", "BUCKET", "BUS_NAME", "WORK_SECRET"}
    service = {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_MEDIACONVERT",  # the local cloud's MediaConvert stand-in, for every function
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_TIMEOUT",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "LAMBDA_TASK_ROOT",
        "POWERTOOLS_TRACE_DISABLED",
        "PATH",
        "LANG",
        "TZ",
        "LAMBDA_RUNTIME_DIR",
        "TMPDIR",
    }
    # LC_CTYPE is set by the Python interpreter itself (PEP 538), as it is in Lambda's runtime.
    assert set(item["workEnv"]) - {"LC_CTYPE"} == declared | service
    # The image function imports from its assembled /var/task, the runtime's SDK and the standard library only.
    task_root, sdk, *stdlib = item["workPath"]
    assert "/cache/images/" in task_root and "/cache/sdk/" in sdk, item["workPath"]
    assert not [p for p in stdlib if "site-packages" in p or ".venv" in p or p == str(REPO)], stdlib


def test_an_eventbridge_queue_target_whose_policy_refuses_it_dead_letters_without_retries(
    fixture_cloud: RunningCloud, tmp_path: Any
) -> None:
    item_id = _upload(fixture_cloud, "alice", b"video ok", tmp_path)
    sqs = fixture_cloud.emulator().client("sqs")

    def refused_event() -> dict[str, Any] | None:
        answer = sqs.receive_message(
            QueueUrl=fixture_cloud.outputs["auditDlqUrl"],
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            MessageAttributeNames=["All"],
        )
        for message in answer.get("Messages", []):
            if json.loads(message["Body"])["detail"]["id"] == item_id:
                return {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
        return None

    attributes = wait_for(refused_event, 30, message="the refused event in the target's DLQ")
    assert attributes["ERROR_CODE"] == "NO_PERMISSIONS"
    assert attributes["TARGET_ARN"].endswith(fixture_cloud.outputs["auditQueueUrl"].rsplit("/", 1)[-1])
    audit = sqs.receive_message(QueueUrl=fixture_cloud.outputs["auditQueueUrl"], VisibilityTimeout=0)
    assert audit.get("Messages", []) == []
    assert any(r["service"] == "events.amazonaws.com" for r in fixture_cloud.workers()["refusals"])


def test_filter_policy_decides_like_sns(fixture_cloud: RunningCloud, tmp_path: Any) -> None:
    """`image` is not in the program's filter policy: the message must not reach the work queue."""
    item_id = _upload(fixture_cloud, "alice", b"image ok", tmp_path)
    wait_for(lambda: _item(fixture_cloud, item_id).get("status") == "VALIDATED", 30, message="VALIDATED")
    time.sleep(2)
    assert "workAttempts" not in _item(fixture_cloud, item_id)


def test_partial_batch_failure_redrives_only_the_failed_message(fixture_cloud: RunningCloud, tmp_path: Any) -> None:
    poison = _upload(fixture_cloud, "alice", b"poison", tmp_path)
    healthy = _upload(fixture_cloud, "alice", b"video ok", tmp_path)
    dlq = fixture_cloud.outputs["ingestDlqUrl"]
    sqs = fixture_cloud.emulator().client("sqs")

    def dead_lettered() -> list[dict[str, Any]]:
        return sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])

    messages = wait_for(dead_lettered, 40, message="the poison message in the ingest DLQ")
    assert any(poison in m["Body"] for m in messages)
    assert not any(healthy in m["Body"] for m in messages)
    # maxReceiveCount is 2: two deliveries, then moto moves it on the third receive.
    assert _item(fixture_cloud, poison)["ingestAttempts"] == "2"
    wait_for(lambda: _item(fixture_cloud, healthy).get("status") == "DONE", 30, message="the healthy item DONE")


def test_timeout_kills_the_worker_and_the_message_is_retried(fixture_cloud: RunningCloud, tmp_path: Any) -> None:
    item_id = _upload(fixture_cloud, "alice", b"video hang", tmp_path)
    item = wait_for(lambda: (i := _item(fixture_cloud, item_id)).get("status") == "DONE" and i, 60, message="DONE")
    assert item["workAttempts"] == "2"
    work = next(v for k, v in fixture_cloud.workers()["functions"].items() if k.startswith("work-fn"))
    assert work["stats"]["timeouts"] >= 1
    assert work["stats"]["cold_starts"] >= 2


def test_async_target_retries_then_dead_letters(fixture_cloud: RunningCloud, tmp_path: Any) -> None:
    item_id = _upload(fixture_cloud, "alice", b"video failtrack", tmp_path)
    sqs = fixture_cloud.emulator().client("sqs")
    dlq = fixture_cloud.outputs["trackerDlqUrl"]

    def dead_lettered() -> list[dict[str, Any]]:
        return sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"]
        ).get("Messages", [])

    messages = wait_for(dead_lettered, 40, message="the failed invocation in the tracker's on-failure queue")
    record = json.loads(next(m for m in messages if item_id in m["Body"])["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"]["detail-type"] == "Work Done"
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    # FunctionEventInvokeConfig allows one retry: two attempts in all.
    assert _item(fixture_cloud, item_id)["trackAttempts"] == "2"


def test_s3_and_sns_invoke_functions_directly(fixture_cloud: RunningCloud) -> None:
    emulator = fixture_cloud.emulator()
    bucket, topic = fixture_cloud.outputs["dropsBucket"], fixture_cloud.outputs["announcementsTopicArn"]
    emulator.client("s3").put_object(Bucket=bucket, Key="notes/hello world.txt", Body=b"hi")
    emulator.client("s3").put_object(Bucket=bucket, Key="notes/ignored.bin", Body=b"hi")  # the suffix filter
    emulator.client("sns").publish(TopicArn=topic, Message="announcement-1")

    s3_item = wait_for(lambda: _item(fixture_cloud, "notes/hello world.txt"), 20, message="the S3 invocation")
    sns_item = wait_for(lambda: _item(fixture_cloud, "announcement-1"), 20, message="the SNS invocation")
    assert s3_item["what"] == "ObjectCreated:Put"
    assert sns_item["what"] == topic
    assert _item(fixture_cloud, "notes/ignored.bin") == {}


def test_schedule_fires_on_the_local_clock(fixture_cloud: RunningCloud) -> None:
    # rate(5 minutes) at the default scale of 0.01 fires every 3 s.
    first = wait_for(lambda: int(_item(fixture_cloud, "sweeps").get("count", 0)), 15, message="a first sweep")
    wait_for(lambda: int(_item(fixture_cloud, "sweeps").get("count", 0)) > first, 15, message="a second sweep")


def test_upload_form_policy_is_enforced(fixture_cloud: RunningCloud, tmp_path: Any) -> None:
    created = request("POST", fixture_cloud.api_url + "uploads", token=fixture_cloud.token("dave"))
    too_big = tmp_path / "too-big.bin"
    too_big.write_bytes(b"video " + b"x" * 2048)  # the fixture's form allows 1..1024 bytes
    assert post_form(created.body["upload"]["url"], created.body["upload"]["fields"], too_big) == 400
    time.sleep(1.5)
    assert _item(fixture_cloud, created.body["id"])["status"] == "AWAITING"


def test_routes_authorizer_and_errors(fixture_cloud: RunningCloud) -> None:
    api = fixture_cloud.api_url
    health = request("GET", api + "health")
    assert health.status == 200 and health.body["ok"] is True and 0 < health.body["remainingMs"] <= 10_000
    assert request("POST", api + "uploads").status == 401
    assert request("POST", api + "uploads").body == {"message": "Unauthorized"}
    assert request("POST", api + "uploads", token="not-a-jwt").status == 401
    assert request("POST", api + "uploads", token=fixture_cloud.token("bob", ttl=-60)).status == 401
    assert request("GET", api + "nowhere").status == 404
    boom = request("GET", api + "boom", token=fixture_cloud.token("bob"))
    assert (boom.status, boom.body) == (500, {"message": "Internal Server Error"})
    created = request("POST", api + "uploads", token=fixture_cloud.token("bob"))
    assert created.status == 201
    mine = request("GET", api + f"items/{created.body['id']}", token=fixture_cloud.token("bob"))
    assert mine.status == 200 and mine.body["owner"] == "bob"
    theirs = request("GET", api + f"items/{created.body['id']}", token=fixture_cloud.token("carol"))
    assert theirs.status == 404
