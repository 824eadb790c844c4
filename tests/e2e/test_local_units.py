"""The local cloud's pure parts, without a cloud: config layering, routing, batch responses, schedules, the
corrections to moto (bucket policy conditions, presigned POST policies), invokes and naming."""

from __future__ import annotations

import base64
import copy
import http.client
import importlib
import inspect
import io
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pulumi
import pytest

from local.engine.deployment import Deployment
from local.engine.emulator import Emulator
from local.engine.keep_alive import BodyReader, body_length
from local.engine.moto_patches import (
    PolicyViolation,
    check_post_policy,
    item_level_transaction_backups,
    list_moto_services_once,
    parse_event_input_paths_once,
    write_dynamodb_item_answers_as_json,
)
from local.engine.program import InvokeAnswers, UnknownInvoke
from local.engine.resources import ResourceFactory, autoname, integral, pascal, put_program_object
from local.engine.stack_config import load_stack_config, parse_override
from local.permissions.access import bucket_policy_permission, condition_holds
from local.runtime.auth import _claim_text
from local.runtime.clock import LocalClock
from local.runtime.event_sources import failed_message_ids, is_s3_test_event, rate_seconds
from local.runtime.gateway import compile_route

TLS_ONLY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
)


def test_stack_config_layers_override_in_order(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: demo\nconfig:\n  size:\n    type: integer\n    default: 1\n  demo:names:\n    default: [a]\n"
        "  aws:region:\n    value: eu-west-1\n"
    )
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  demo:size: 2\n  demo:flag: true\n")
    layer = tmp_path / "layer.yaml"
    layer.write_text("config:\n  demo:size: 3\n")

    config = load_stack_config(tmp_path, "dev", [layer], {"names": ["x", "y"]})

    assert config.values == {
        "demo:size": "3",
        "demo:names": '["x", "y"]',
        "aws:region": "eu-west-1",
        "demo:flag": "true",
    }
    assert parse_override("demo:limit=5") == ("demo:limit", 5)


def test_routes_prefer_literal_segments_then_parameters_then_greedy() -> None:
    keys = ["GET /jobs/{jobId}", "GET /jobs/latest", "ANY /{proxy+}", "$default"]
    compiled = {key: compile_route(key) for key in keys}
    order = sorted(keys, key=lambda k: compiled[k][2], reverse=True)
    assert order == ["GET /jobs/latest", "GET /jobs/{jobId}", "ANY /{proxy+}", "$default"]
    method, pattern, _ = compiled["GET /jobs/{jobId}"]
    assert method == "GET" and pattern is not None
    found = pattern.fullmatch("/jobs/01ABC")
    assert found is not None and found.groupdict() == {"jobId": "01ABC"}
    assert pattern.fullmatch("/jobs/01ABC/extra") is None


def test_batch_item_failures_as_lambda_reads_them() -> None:
    ids = ["m1", "m2", "m3"]
    assert failed_message_ids({"batchItemFailures": []}, ids) == []
    assert failed_message_ids(None, ids) == []
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}, ids) == ["m2"]
    # An identifier that is empty or not in the batch fails the whole batch.
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) == ids
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "other"}]}, ids) == ids


def test_rate_expressions_and_the_local_clock() -> None:
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("cron(0 12 * * ? *)") is None
    assert LocalClock(scale=0.01).seconds(300) == 3.0
    assert LocalClock(scale=0.01).seconds(1) == 0.2


def test_tls_only_bucket_policy_allows_the_local_endpoint_and_still_denies() -> None:
    context = {"aws:securetransport": "true"}
    assert bucket_policy_permission(TLS_ONLY, "s3:GetObject", "arn:aws:s3:::b/k", context) == "NEUTRAL"
    insecure = {"aws:securetransport": "false"}
    assert bucket_policy_permission(TLS_ONLY, "s3:GetObject", "arn:aws:s3:::b/k", insecure) == "DENIED"
    assert bucket_policy_permission(TLS_ONLY, "s3:GetObject", "arn:aws:s3:::other/k", insecure) == "NEUTRAL"


def test_conditions_on_absent_keys_follow_iam() -> None:
    assert condition_holds("StringEquals", "aws:SourceArn", "arn:x", {}) is False
    assert condition_holds("StringNotEquals", "aws:SourceArn", "arn:x", {}) is True
    assert condition_holds("StringEqualsIfExists", "aws:SourceArn", "arn:x", {}) is True
    assert condition_holds("Null", "aws:SourceArn", "true", {}) is True
    assert condition_holds("ArnLike", "aws:sourcearn", "arn:aws:s3:::b*", {"aws:sourcearn": "arn:aws:s3:::bucket"})


def _policy(conditions: list[object], expires_in: timedelta = timedelta(minutes=5)) -> str:
    expiration = (datetime.now(UTC) + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")
    return base64.b64encode(json.dumps({"expiration": expiration, "conditions": conditions}).encode()).decode()


def test_presigned_post_policy_is_enforced_like_s3() -> None:
    conditions = [
        {"bucket": "b"},
        {"key": "uploads/j/source"},
        {"Content-Type": "video/mp4"},
        ["content-length-range", 1, 10],
    ]
    fields = {"key": "uploads/j/source", "Content-Type": "video/mp4", "policy": "p", "AWSAccessKeyId": "a"}
    now = datetime.now(UTC)
    check_post_policy(_policy(conditions), fields, "b", 10, now)
    cases = {
        "EntityTooLarge": (fields, 11, conditions),
        "EntityTooSmall": (fields, 0, conditions),
        "AccessDenied": ({**fields, "key": "uploads/other/source"}, 5, conditions),
    }
    for code, (form, size, signed) in cases.items():
        with pytest.raises(PolicyViolation) as refused:
            check_post_policy(_policy(signed), form, "b", size, now)
        assert refused.value.code == code
    with pytest.raises(PolicyViolation, match="Extra input fields: x-extra"):
        check_post_policy(_policy(conditions), {**fields, "x-extra": "1"}, "b", 5, now)
    with pytest.raises(PolicyViolation, match="Policy expired"):
        check_post_policy(_policy(conditions, timedelta(seconds=-1)), fields, "b", 5, now)


def test_invokes_answer_locally_and_refuse_unknown_tokens() -> None:
    answers = InvokeAnswers("123456789012", "us-east-1")
    assert answers.answer("aws:index/getCallerIdentity:getCallerIdentity", {})["accountId"] == "123456789012"
    document = answers.answer(
        "aws:iam/getPolicyDocument:getPolicyDocument",
        {"statements": [{"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::b/*"]}]},
    )
    assert json.loads(document["json"])["Statement"] == [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    ]
    with pytest.raises(UnknownInvoke):
        answers.answer("aws:ec2/getVpc:getVpc", {})


def test_names_and_shapes() -> None:
    generated = autoname("ingest-queue", {})
    assert generated.startswith("ingest-queue-") and len(generated) == len("ingest-queue-") + 7
    assert autoname("ingest-queue", {"name": "explicit"}) == "explicit"
    assert integral({"a": 3.0, "b": [1.5, 2.0]}) == {"a": 3, "b": [1.5, 2]}
    assert pascal({"id": "r", "expiration": {"days": 1}, "skip": None}) == {"ID": "r", "Expiration": {"Days": 1}}
    assert _claim_text(["a", "b"]) == "[a b]" and _claim_text(1700000000) == "1700000000"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the V2 S3 classes are deprecated aliases, still handled
def test_every_token_the_engine_handles_exists_in_the_installed_providers() -> None:
    deployment = Deployment(project="p", stack="s", region="us-east-1", account_id="1")
    factory = ResourceFactory(Emulator(), deployment, "", Path("."))
    for token in sorted(factory.emulated_types | factory.runtime_types):
        package, module, class_name = token.split(":")[0], token.split(":")[1].split("/")[0], token.rsplit(":", 1)[1]
        if package == "docker-build":
            sdk_module = importlib.import_module("pulumi_docker_build")
        else:
            sdk_module = importlib.import_module(f"pulumi_aws.{'lambda_' if module == 'lambda' else module}")
        resource_class = getattr(sdk_module, class_name)
        assert f"'{token}'" in inspect.getsource(resource_class), token


def test_s3s_test_event_reaches_queues_but_never_a_function() -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "drops", "RequestId": "r"}
    upload = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "a.txt"}}}]}

    assert is_s3_test_event("s3", test_event)
    assert not is_s3_test_event("s3", upload)
    assert not is_s3_test_event("eventbridge", test_event)  # a rule's input is the function's business


def test_the_artifact_cache_lives_in_the_repositorys_local_state() -> None:
    from local.artifacts.builder import CACHE_ROOT

    repository = Path(__file__).resolve().parents[2]
    assert CACHE_ROOT.relative_to(repository).as_posix() == ".local/cache"


def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's in-process mock, reached by boto3 with credentials and a region that exist nowhere else."""
    credentials = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in credentials.items():
        monkeypatch.setenv(key, value)


def test_a_cancelled_transaction_puts_back_exactly_the_items_it_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws
    from moto.dynamodb import models

    _fake_aws_credentials(monkeypatch)
    monkeypatch.setattr(models, "copy", models.copy)  # the patch replaces moto's `copy`: undone after the test
    monkeypatch.setattr(models.DynamoDBBackend, "transact_write_items", models.DynamoDBBackend.transact_write_items)
    item_level_transaction_backups()
    whole_table_copies: list[object] = []
    real_deepcopy = copy.deepcopy

    def counting_deepcopy(value: object, memo: object = None) -> object:
        if type(value).__name__ == "Table":
            whole_table_copies.append(value)
        return real_deepcopy(value, memo)

    monkeypatch.setattr(copy, "deepcopy", counting_deepcopy)
    with mock_aws():
        ddb = boto3.client("dynamodb")
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for name in ("a", "b", "other"):
            ddb.put_item(TableName="t", Item={"pk": {"S": name}, "sk": {"S": "1"}, "n": {"N": "1"}})
        update_a = {
            "Update": {
                "TableName": "t",
                "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                "UpdateExpression": "SET n = :two",
                "ExpressionAttributeValues": {":two": {"N": "2"}},
            }
        }
        put_c = {"Put": {"TableName": "t", "Item": {"pk": {"S": "c"}, "sk": {"S": "1"}}}}
        failing_check = {
            "ConditionCheck": {
                "TableName": "t",
                "Key": {"pk": {"S": "b"}, "sk": {"S": "1"}},
                "ConditionExpression": "n = :nine",
                "ExpressionAttributeValues": {":nine": {"N": "9"}},
            }
        }
        with pytest.raises(ClientError, match="TransactionCanceled"):
            ddb.transact_write_items(TransactItems=[update_a, put_c, failing_check])
        items = {i["pk"]["S"]: i.get("n", {}).get("N") for i in ddb.scan(TableName="t")["Items"]}
        assert items == {"a": "1", "b": "1", "other": "1"}  # a put back, c never there, the rest untouched
        ddb.transact_write_items(TransactItems=[update_a, put_c])
        items = {i["pk"]["S"]: i.get("n", {}).get("N") for i in ddb.scan(TableName="t")["Items"]}
        assert items == {"a": "2", "b": "1", "c": None, "other": "1"}
    assert whole_table_copies == []


class RecordingS3:
    def __init__(self) -> None:
        self.puts: list[dict[str, object]] = []

    def put_object(self, **request: object) -> dict[str, str]:
        self.puts.append(request)
        return {"ETag": '"e"'}


def test_an_object_the_program_writes_comes_from_its_file_or_its_content(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "app.js").write_text("export {};")
    s3 = RecordingS3()
    file_object = {"bucket": "b", "key": "console/app.js", "source": pulumi.FileAsset("site/app.js")}

    put_program_object(s3, {**file_object, "contentType": "text/javascript", "cacheControl": "no-cache"}, tmp_path)
    put_program_object(s3, {"bucket": "b", "key": "console/config.json", "content": '{"a": 1}'}, tmp_path)

    assert s3.puts == [
        {"Bucket": "b", "Key": "console/app.js", "Body": b"export {};", "ContentType": "text/javascript"}
        | {"CacheControl": "no-cache"},
        {"Bucket": "b", "Key": "console/config.json", "Body": b'{"a": 1}'},
    ]
    with pytest.raises(ValueError, match="RemoteAsset source is not read locally"):
        put_program_object(s3, {**file_object, "source": pulumi.RemoteAsset("https://example.com/x")}, tmp_path)


def test_moto_services_are_listed_once_and_still_name_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import backends

    listed = list(backends.list_of_moto_modules())
    list_moto_services_once()
    calls: list[str] = []
    monkeypatch.setattr("os.listdir", lambda path: calls.append(path) or [])

    assert list(backends.list_of_moto_modules()) == listed
    assert {"s3", "sqs", "dynamodb", "events", "sns"} <= set(backends.list_of_moto_modules())
    assert calls == []  # answered without touching the disk


def test_eventbridge_input_paths_are_parsed_once_and_transform_as_before() -> None:
    from jsonpath_ng import ext
    from moto.events.utils import EventTemplateParser

    event = {"detail": {"jobId": "j-1", "status": "COMPLETED"}, "ingestion-time": 1.0}
    paths = {"job": "$.detail.jobId", "status": "$.detail.status"}
    template = '{"job": "<job>", "status": "<status>"}'
    before = EventTemplateParser.parse(template, paths, event)
    parse_event_input_paths_once()

    assert ext.parse("$.detail.jobId") is ext.parse("$.detail.jobId")
    assert EventTemplateParser.parse(template, paths, event) == before == {"job": "j-1", "status": "COMPLETED"}


def _item_operations(ddb: Any) -> list[Any]:
    """Every DynamoDB item operation the fast answer path takes, on an item with every kind of attribute value."""
    item = {
        "pk": {"S": "job-1"},
        "owner": {"S": "u-1"},
        "n": {"N": "1.50"},
        "flag": {"BOOL": False},
        "none": {"NULL": True},
        "blob": {"B": b"\x00\xffbinary"},
        "blobs": {"BS": [b"a", b"\x01"]},
        "names": {"SS": ["x", "y"]},
        "numbers": {"NS": ["1", "2.5"]},
        "history": {"L": [{"M": {"at": {"N": "1"}, "raw": {"B": b"\xfe"}}}, {"NULL": True}]},
    }
    key, other, missing = {"pk": item["pk"]}, {"pk": {"S": "job-2"}}, {"pk": {"S": "none"}}
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "owner", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byOwner",
                "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    set_n = {"UpdateExpression": "SET n = :n", "ExpressionAttributeValues": {":n": {"N": "2"}}}
    answers = [
        ddb.put_item(TableName="t", Item=item, ReturnValues="ALL_OLD", ReturnConsumedCapacity="TOTAL"),
        ddb.put_item(TableName="t", Item={**item, **other}),
        ddb.put_item(TableName="t", Item={**item, **other}, ReturnValues="ALL_OLD"),
        ddb.get_item(TableName="t", Key=key),
        ddb.get_item(TableName="t", Key=missing),
        ddb.get_item(
            TableName="t",
            Key=key,
            ProjectionExpression="#b, history[0].raw, n",
            ExpressionAttributeNames={"#b": "blob"},
            ReturnConsumedCapacity="INDEXES",
        ),
        ddb.update_item(TableName="t", Key=key, ReturnValues="ALL_NEW", **set_n),
        ddb.update_item(TableName="t", Key=key, ReturnValues="UPDATED_OLD", **set_n),
        ddb.update_item(TableName="t", Key=key, **set_n),
        ddb.query(
            TableName="t",
            IndexName="byOwner",
            KeyConditionExpression="#o = :o",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": item["owner"]},
            Limit=1,
        ),
        ddb.query(
            TableName="t", KeyConditionExpression="pk = :k", ExpressionAttributeValues={":k": key["pk"]}, Select="COUNT"
        ),
        ddb.scan(TableName="t", Limit=1),
        ddb.scan(TableName="t"),
        ddb.batch_get_item(RequestItems={"t": {"Keys": [key, other, missing]}}),
        ddb.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": key}}]),
        ddb.delete_item(TableName="t", Key=other, ReturnValues="ALL_OLD"),
    ]
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as refused:
        ddb.put_item(
            TableName="t",
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    answers.append(refused.value.response["Item"])
    for answer in answers:
        answer.pop("ResponseMetadata", None)
    return answers


def test_dynamodb_item_answers_skip_moto_serializer_and_read_back_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws
    from moto.dynamodb.responses import DynamoResult

    _fake_aws_credentials(monkeypatch)
    serialized_by_model: list[str] = []
    model = getattr(DynamoResult.execute_result, "__wrapped__", DynamoResult.execute_result)

    def counted(self: Any, context: Any) -> Any:
        serialized_by_model.append(context.operation_model.name)
        return model(self, context)

    monkeypatch.setattr(DynamoResult, "execute_result", counted)  # moto's own, counted; restored after the test
    with mock_aws():
        before = _item_operations(boto3.client("dynamodb"))
    assert "GetItem" in serialized_by_model

    write_dynamodb_item_answers_as_json()
    serialized_by_model.clear()
    with mock_aws():
        after = _item_operations(boto3.client("dynamodb"))

    assert after == before
    assert after[3]["Item"]["blob"] == {"B": b"\x00\xffbinary"}
    assert serialized_by_model == ["CreateTable"]  # every item answer took the JSON path


def test_a_request_body_reader_stops_at_its_length_and_leaves_the_next_request() -> None:
    connection = io.BytesIO(b"0123456789GET /next HTTP/1.1\r\n")
    body = BodyReader(connection, 10)
    assert body.read(4) == b"0123"
    assert body.read() == b"456789"[:6]
    assert body.read(100) == b""  # at its length: end of file, not the next request
    assert connection.readline() == b"GET /next HTTP/1.1\r\n"

    unread = BodyReader(io.BytesIO(b"abcdefNEXT"), 6)
    assert bytearray(unread.read(2)) == b"ab"
    assert unread.discard_rest() and unread.remaining == 0
    cut_short = BodyReader(io.BytesIO(b"abc"), 6)
    assert not cut_short.discard_rest()  # the client closed before sending it all: the connection closes

    assert body_length({"Content-Length": "12"}) == 12
    assert body_length({}) == 0
    assert body_length({"Transfer-Encoding": "chunked"}) is None  # no length: the connection closes after it
    assert body_length({"Content-Length": "x"}) is None


def test_the_emulator_serves_many_requests_on_one_connection() -> None:
    from botocore.exceptions import ClientError

    emulator = Emulator()
    emulator.start()
    try:
        server = emulator._server._server  # type: ignore[union-attr]  # werkzeug's, inside moto's wrapper
        accepted: list[Any] = []
        accept = server.process_request
        server.process_request = lambda request, address: accepted.append(request) or accept(request, address)
        s3 = emulator.client("s3")  # one thread, one call at a time: its pool reuses one connection
        s3.create_bucket(Bucket="keep-alive")
        big = bytes(range(256)) * 8192  # 2 MiB, beyond one socket buffer
        s3.put_object(Bucket="keep-alive", Key="big", Body=big)
        with pytest.raises(ClientError):
            s3.put_object(Bucket="no-such-bucket", Key="k", Body=b"a body the server never reads")
        with pytest.raises(ClientError):
            s3.head_object(Bucket="keep-alive", Key="missing")
        assert s3.get_object(Bucket="keep-alive", Key="big")["Body"].read() == big
        assert s3.get_object(Bucket="keep-alive", Key="big", Range="bytes=10-19")["Body"].read() == big[10:20]
        assert len(accepted) == 1
        # Headers and body leave in two sends: without TCP_NODELAY each answer on a kept connection waited 40 ms for
        # the client's delayed acknowledgement.
        assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

        host, port = emulator.endpoint.removeprefix("http://").split(":")
        raw = http.client.HTTPConnection(host, int(port), timeout=10)
        raw.request("GET", "/")  # unsigned: refused, but a whole exchange on a connection kept open
        answer = raw.getresponse()
        answer.read()
        assert answer.getheader("Connection") != "close"
        assert raw.sock is not None
        raw.sock.sendall(b"NOT HTTP\r\n\r\n")
        refused = b""
        while chunk := raw.sock.recv(65536):  # until the server closes the connection
            refused += chunk
        assert b"400" in refused  # refused, and the loop ended: the connection was closed after it
        raw.close()
    finally:
        emulator.stop()
