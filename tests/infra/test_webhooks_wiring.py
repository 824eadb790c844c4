"""Webhooks in the program: the outcome rule, the delivery queue and DLQ, the tables, least privilege, config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.patterns import job_outcomes_pattern
from functions.webhooks.service import SQS_MAX_DELAY_SECONDS
from tests.infra.harness import ProgramRun, run_program

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
FUNCTION = "aws:lambda/function:Function"
TABLE = "aws:dynamodb/table:Table"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
LOCAL_OVERRIDES = {"webhookAllowedAddresses": ["127.0.0.1"], "webhookRetrySchedule": [1, 2, 3]}


@pytest.fixture(scope="module")
def local(dev: ProgramRun) -> ProgramRun:
    """The dev stack as a local cloud configures it: a receiver on 127.0.0.1 and a compressed schedule."""
    return run_program(LOCAL_OVERRIDES)


def _env(run: ProgramRun, function: str) -> dict[str, str]:
    return run.named(FUNCTION, function).inputs["environment"]["variables"]


def _grants(run: ProgramRun, function: str) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for statement in run.function_policy(run.named(FUNCTION, function))["Statement"][2:]:
        for action in statement["Action"]:
            granted.setdefault(action, set()).update(statement["Resource"])
    return granted


def _queue_policy(run: ProgramRun, queue: str) -> dict[str, Any]:
    url = run.named(QUEUE, queue).outputs["url"]
    (policy,) = [p for p in run.of_type(QUEUE_POLICY) if p.inputs["queueUrl"] == url]
    return json.loads(policy.inputs["policy"])


def test_job_outcomes_on_the_custom_bus_reach_the_delivery_queue_or_its_dlq(dev: ProgramRun) -> None:
    rule = dev.named(RULE, "webhooks-job-outcomes")
    assert rule.inputs["eventBusName"] == "media-pipeline-dev"
    assert json.loads(rule.inputs["eventPattern"]) == {
        "source": ["media-pipeline"],
        "detail-type": ["Job Completed", "Job Failed", "Job Rejected", "Job Expired", "Job Canceled", "Job Deleted"],
    }
    assert job_outcomes_pattern() == json.loads(rule.inputs["eventPattern"])
    queue, dlq = dev.named(QUEUE, "webhooks-deliveries-queue"), dev.named(QUEUE, "webhooks-deliveries-dlq")
    (target,) = [t for t in dev.of_type(TARGET) if t.inputs["rule"] == rule.id]
    assert target.inputs["arn"] == queue.outputs["arn"]
    assert target.inputs["eventBusName"] == "media-pipeline-dev"
    assert target.inputs["deadLetterConfig"] == {"arn": dlq.outputs["arn"]}
    assert target.inputs["retryPolicy"]["maximumEventAgeInSeconds"] == 86_400
    for name in ("webhooks-deliveries-queue", "webhooks-deliveries-dlq"):
        (statement,) = _queue_policy(dev, name)["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": [rule.outputs["arn"]]}}


def test_the_delivery_function_consumes_the_queue_in_batches_with_least_privilege(dev: ProgramRun) -> None:
    queue, dlq = dev.named(QUEUE, "webhooks-deliveries-queue"), dev.named(QUEUE, "webhooks-deliveries-dlq")
    function = dev.named(FUNCTION, "webhooks-function")
    assert function.inputs["handler"] == "functions.webhooks.handler.handler"
    assert function.inputs["timeout"] == 60  # one 15 s attempt per record, the batch's attempts side by side
    (mapping,) = [
        m
        for m in dev.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
        if m.inputs["eventSourceArn"] == queue.outputs["arn"]
    ]
    assert mapping.inputs["functionName"] == function.outputs["arn"]
    assert mapping.inputs["batchSize"] == 10
    assert queue.inputs["visibilityTimeoutSeconds"] == 360
    jobs = dev.named(TABLE, "jobs-table").outputs["arn"]
    endpoints = dev.named(TABLE, "webhooks-endpoints").outputs["arn"]
    deliveries = dev.named(TABLE, "webhooks-deliveries").outputs["arn"]
    outputs = dev.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["arn"]
    assert _grants(dev, "webhooks-function") == {
        "dynamodb:GetItem": {endpoints, deliveries, jobs},
        "dynamodb:Query": {endpoints},
        "dynamodb:UpdateItem": {endpoints},
        "dynamodb:PutItem": {deliveries, jobs},  # the conditional put that notes a dead-lettered delivery
        "s3:GetObject": {f"{outputs}/outputs/*"},
        "sqs:SendMessage": {queue.outputs["arn"], dlq.outputs["arn"]},
        "sqs:ChangeMessageVisibility": {queue.outputs["arn"]},
        "sqs:ReceiveMessage": {queue.outputs["arn"]},
        "sqs:DeleteMessage": {queue.outputs["arn"]},
        "sqs:GetQueueAttributes": {queue.outputs["arn"]},
        # the CDN signing key, for the playback links in a payload
        "secretsmanager:GetSecretValue": {dev.only("aws:secretsmanager/secret:Secret").outputs["arn"]},
    }


def test_endpoints_are_keyed_by_owner_and_attempts_by_endpoint_with_a_recency_index_and_ttl(dev: ProgramRun) -> None:
    endpoints = dev.named(TABLE, "webhooks-endpoints").inputs
    assert (endpoints["hashKey"], endpoints["rangeKey"]) == ("ownerId", "endpointId")
    assert endpoints["serverSideEncryption"]["enabled"] is True
    assert endpoints["pointInTimeRecovery"]["enabled"] is True
    deliveries = dev.named(TABLE, "webhooks-deliveries").inputs
    assert (deliveries["hashKey"], deliveries["rangeKey"]) == ("endpointId", "attemptId")
    assert deliveries["localSecondaryIndexes"] == [
        {"name": "byAttemptedAt", "rangeKey": "attemptedAt", "projectionType": "ALL"}
    ]
    assert deliveries["ttl"] == {"attributeName": "expiresAt", "enabled": True}
    assert deliveries["serverSideEncryption"]["enabled"] is True


def test_functions_get_the_webhook_settings_and_aws_gets_no_allow_list(dev: ProgramRun) -> None:
    env = _env(dev, "webhooks-function")
    assert env["POWERTOOLS_SERVICE_NAME"] == "webhooks"
    assert env["WEBHOOK_ENDPOINTS_TABLE"] == dev.named(TABLE, "webhooks-endpoints").outputs["name"]
    assert env["WEBHOOK_DELIVERIES_TABLE"] == dev.named(TABLE, "webhooks-deliveries").outputs["name"]
    assert env["WEBHOOK_QUEUE_URL"] == dev.named(QUEUE, "webhooks-deliveries-queue").outputs["url"]
    assert env["WEBHOOK_DLQ_URL"] == dev.named(QUEUE, "webhooks-deliveries-dlq").outputs["url"]
    assert env["WEBHOOK_RETRY_SCHEDULE"] == "5,300,1800,7200,18000,36000,50400,72000,86400"
    assert env["WEBHOOK_TIMEOUT_SECONDS"] == "15"
    assert (env["DOWNLOAD_URL_TTL_SECONDS"], env["JOB_RETENTION_DAYS"]) == ("3600", "7")
    api = _env(dev, "api-function")
    assert api["WEBHOOK_ENDPOINTS_TABLE"] == env["WEBHOOK_ENDPOINTS_TABLE"]
    assert api["WEBHOOK_DELIVERIES_TABLE"] == env["WEBHOOK_DELIVERIES_TABLE"]
    assert api["WEBHOOK_SECRET_OVERLAP_SECONDS"] == "86400"
    for function in dev.of_type(FUNCTION):
        assert "WEBHOOK_ALLOWED_ADDRESSES" not in function.inputs["environment"]["variables"], function.name
        # no port list either: the functions apply the port rule (80, 443, 1024-65535 but well-known service ports)
        assert "WEBHOOK_ALLOWED_PORTS" not in function.inputs["environment"]["variables"], function.name


def test_a_stacks_webhook_port_list_reaches_both_functions_that_check_urls() -> None:
    run = run_program({"webhookAllowedPorts": [8443, 443, 443]})
    for function in ("webhooks-function", "api-function"):
        assert _env(run, function)["WEBHOOK_ALLOWED_PORTS"] == "443,8443"
    assert "WEBHOOK_ALLOWED_PORTS" not in _env(run, "ingest-function")


def test_a_local_cloud_allows_its_receivers_and_compresses_the_schedule(local: ProgramRun) -> None:
    for function in ("webhooks-function", "api-function"):
        assert _env(local, function)["WEBHOOK_ALLOWED_ADDRESSES"] == "127.0.0.1"
    assert _env(local, "webhooks-function")["WEBHOOK_RETRY_SCHEDULE"] == "1,2,3"
    redrive = json.loads(local.named(QUEUE, "webhooks-deliveries-queue").inputs["redrivePolicy"])
    assert redrive["maxReceiveCount"] == 5  # no wait outlasts the send delay: no early receives to allow for


def test_the_dlq_alarms_and_the_queue_alarms_only_past_the_longest_scheduled_wait(dev: ProgramRun) -> None:
    alarms = {a.name: a.inputs for a in dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    dlq = alarms["observability-webhooks-dlq-not-empty"]
    assert dlq["dimensions"]["QueueName"] == dev.named(QUEUE, "webhooks-deliveries-dlq").outputs["name"]
    assert dlq["threshold"] == 0
    age = alarms["observability-webhooks-backlog-age"]
    assert age["dimensions"]["QueueName"] == dev.named(QUEUE, "webhooks-deliveries-queue").outputs["name"]
    assert age["threshold"] == int(86_400 * 1.1) + 1 + SQS_MAX_DELAY_SECONDS + 360
    assert alarms["observability-ingest-backlog-age"]["threshold"] == 3600  # the others keep the stack's threshold


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"webhookRetrySchedule": []}, "1 to 20 delays"),
        ({"webhookRetrySchedule": [5, 0]}, "whole seconds from 1 to 172800"),
        ({"webhookRetrySchedule": [5, 3 * 86_400]}, "whole seconds from 1 to 172800"),
        ({"webhookAllowedAddresses": ["localhost"]}, "IP addresses or networks"),
        ({"webhookAllowedAddresses": ["10.0.0.1/8"]}, "IP addresses or networks"),
        ({"webhookAllowedPorts": [0]}, "webhook ports are whole numbers from 1 to 65535"),
        ({"webhookAllowedPorts": [443, 70000]}, "webhook ports are whole numbers from 1 to 65535"),
        ({"webhookAllowedPorts": ["https"]}, "webhook ports are whole numbers from 1 to 65535"),
        ({"webhookSecretOverlapSeconds": 40 * 86_400}, "webhookSecretOverlapSeconds"),
    ],
)
def test_invalid_webhook_config_stops_the_program_with_a_reason(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_program(overrides)
