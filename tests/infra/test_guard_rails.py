"""Production guard-rails: bounded concurrency, alarms on every function and the API, encrypted topics, and stacks
that would deploy something unusable refused before anything is created."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.harness import ACCOUNT, ProgramRun, run_program

FUNCTION = "aws:lambda/function:Function"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
KEY = "aws:kms/key:Key"
DEFAULT_CONCURRENCY = {
    "ingest": 10,
    "transcode": 100,
    "submit": 5,
    "images": 10,
    "audio": 5,
    "packager": 5,
    "webhooks": 10,
}


def consumer_of(run: ProgramRun, mapping: Any) -> str:
    function = run.by_output(FUNCTION, "arn", mapping.inputs["functionName"])
    return function.inputs["environment"]["variables"]["POWERTOOLS_SERVICE_NAME"]


def test_every_queue_consumer_has_its_configured_maximum_concurrency(dev: ProgramRun) -> None:
    mappings = dev.of_type(MAPPING)
    assert len(mappings) == 8  # ingest, two transcoders, submit, images, audio, packager, webhooks
    consumers = set()
    for mapping in mappings:
        consumers.add(consumer_of(dev, mapping))
        expected = DEFAULT_CONCURRENCY[consumer_of(dev, mapping)]
        assert mapping.inputs["scalingConfig"] == {"maximumConcurrency": expected}, mapping.name
    assert consumers == set(DEFAULT_CONCURRENCY)


def test_the_api_alone_has_reserved_concurrency(dev: ProgramRun) -> None:
    reserved = {f.name: f.inputs.get("reservedConcurrentExecutions") for f in dev.of_type(FUNCTION)}
    assert reserved.pop("api-function") == 20
    assert set(reserved.values()) == {None}
    unreserved = run_program({"apiReservedConcurrency": 0})
    assert unreserved.named(FUNCTION, "api-function").inputs.get("reservedConcurrentExecutions") is None


def test_every_function_alarms_on_errors_and_throttles_and_the_api_on_5xx(dev: ProgramRun) -> None:
    alarms = dev.of_type(ALARM)
    on_functions = {
        (a.inputs["metricName"], a.inputs["dimensions"]["FunctionName"])
        for a in alarms
        if a.inputs["namespace"] == "AWS/Lambda"
    }
    names = {f.outputs["name"] for f in dev.of_type(FUNCTION)}
    assert on_functions == {(metric, name) for name in names for metric in ("Errors", "Throttles")}
    (api_5xx,) = [a for a in alarms if a.inputs["namespace"] == "AWS/ApiGateway"]
    api = dev.only("aws:apigatewayv2/api:Api")
    assert api_5xx.inputs["metricName"] == "5xx"
    assert api_5xx.inputs["dimensions"] == {"ApiId": api.id, "Stage": "$default"}
    topic = dev.named(TOPIC, "observability-alarms").outputs["arn"]
    assert all(a.inputs["alarmActions"] == [topic] and a.inputs["treatMissingData"] == "notBreaching" for a in alarms)
    # What the README's cost at rest counts: 8 work queues (ingest, two transcoders, images, audio, packager,
    # mediaconvert, webhooks) x (DLQ, age, errors, throttles), api and tracker x 2, the tracker's DLQ, the API's 5xx.
    assert len(alarms) == 8 * 4 + 2 * 2 + 1 + 1
    for function in ("images-function", "audio-function", "packager-function"):
        name = dev.named(FUNCTION, function).outputs["name"]
        assert {("Errors", name), ("Throttles", name)} <= on_functions, function


def test_every_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(dev: ProgramRun) -> None:
    key = dev.only(KEY)
    assert key.inputs["enableKeyRotation"] is True
    assert {t.name: t.inputs.get("kmsMasterKeyId") for t in dev.of_type(TOPIC)} == {
        "ingest-validated": key.outputs["arn"],
        "observability-alarms": key.outputs["arn"],
    }
    statements = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    assert statements["AccountIamPolicies"]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    services = statements["PublishingServices"]
    assert services["Principal"] == {"Service": ["cloudwatch.amazonaws.com"]}
    assert services["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_the_publisher_to_the_encrypted_topic_may_use_its_key(dev: ProgramRun) -> None:
    key = dev.only(KEY).outputs["arn"]
    statements = dev.function_policy(dev.named(FUNCTION, "ingest-function"))["Statement"]
    assert any(s["Resource"] == [key] and s["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"] for s in statements)


def test_the_committed_stacks_refuse_the_placeholder_issuer_with_what_to_do() -> None:
    for stack in ("dev", "prod"):
        with pytest.raises(ValueError, match=r"jwtIssuer is still the placeholder.*pulumi config set"):
            run_program({"jwtIssuer": "https://issuer.media-pipeline.invalid/"}, stack=stack)
    with pytest.raises(ValueError, match=r"must be an https:// URL"):
        run_program({"jwtIssuer": "http://insecure.example/"})


def test_the_prod_stack_differs_from_dev_where_it_says(dev: ProgramRun) -> None:
    prod = run_program(stack="prod")
    assert prod.named(FUNCTION, "api-function").inputs["reservedConcurrentExecutions"] == 50
    retention = {g.inputs["retentionInDays"] for g in prod.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert retention == {90}
    buckets = prod.of_type("aws:s3/bucket:Bucket")
    assert buckets and not any(b.inputs.get("forceDestroy") for b in buckets)
    concurrency = {consumer_of(prod, m): m.inputs["scalingConfig"]["maximumConcurrency"] for m in prod.of_type(MAPPING)}
    assert concurrency == {
        "ingest": 20,
        "transcode": 200,
        "submit": 10,
        "images": 30,
        "audio": 10,
        "packager": 10,
        "webhooks": 20,
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"maxConcurrency": {**DEFAULT_CONCURRENCY, "transcode": 1}}, "values must be 2-1000"),
        ({"maxConcurrency": {"ingest": 10}}, "must name exactly"),
        ({"maxConcurrency": {**DEFAULT_CONCURRENCY, "images": 1}}, "values must be 2-1000"),
        ({"maxConcurrency": {k: v for k, v in DEFAULT_CONCURRENCY.items() if k != "audio"}}, "must name exactly"),
        ({"apiReservedConcurrency": -1}, "at least 1, or 0 for none"),
    ],
)
def test_unusable_guard_rail_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_program(overrides)
