"""Properties that must hold for every resource of a type, however many the config produces."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from components.policies import XRAY_ACTIONS
from functions.webhooks.service import RetrySchedule, receives_for_longest_wait
from tests.infra.harness import ProgramRun

QUEUE = "aws:sqs/queue:Queue"
FUNCTION = "aws:lambda/function:Function"
ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
BUCKET = "aws:s3/bucket:Bucket"
DLQ_RETENTION = 14 * 24 * 3600


def _work_queues(run: ProgramRun) -> list[Any]:
    dlqs = run.dead_letter_queue_arns()
    return [q for q in run.of_type(QUEUE) if q.outputs["arn"] not in dlqs]


def _dead_letter_queues(run: ProgramRun) -> list[Any]:
    dlqs = run.dead_letter_queue_arns()
    return [q for q in run.of_type(QUEUE) if q.outputs["arn"] in dlqs]


@pytest.fixture(params=["dev", "with_480p"])
def run(request: pytest.FixtureRequest) -> ProgramRun:
    """Each property is checked on the dev stack and on a bigger ladder."""
    return request.getfixturevalue(request.param)


def test_every_work_queue_redrives_to_a_dead_letter_queue_after_the_configured_receives(run: ProgramRun) -> None:
    queue_arns = {q.outputs["arn"] for q in run.of_type(QUEUE)}
    work_queues = _work_queues(run)
    # ingest, one per rendition, images, audio, mediaconvert, packaging requests, webhook deliveries
    names = {q.name for q in work_queues}
    assert {"ingest-queue", "images-queue", "audio-queue", "mediaconvert-queue", "webhooks-deliveries-queue"} <= names
    assert "packager-requests-queue" in names
    assert len(work_queues) == 6 + len([n for n in names if n.startswith("transcode-")]) >= 8
    # Webhook tasks waiting beyond SQS's 15-minute delay are received early and hidden again: those receives come
    # on top of the configured failures, or a healthy task would be dead-lettered before its last attempt.
    early_receives = receives_for_longest_wait(RetrySchedule())
    assert early_receives == 3  # 24 h + 10% jitter, less the 15-minute send delay, in steps of 11 h 45 m
    for queue in work_queues:
        redrive = json.loads(queue.inputs["redrivePolicy"])
        assert redrive["deadLetterTargetArn"] in queue_arns, queue.name
        assert redrive["deadLetterTargetArn"] != queue.outputs["arn"], queue.name
        expected = 5 + (early_receives if queue.name == "webhooks-deliveries-queue" else 0)
        assert redrive["maxReceiveCount"] == expected, queue.name


def test_every_dead_letter_queue_keeps_messages_fourteen_days_and_dead_letters_nowhere(run: ProgramRun) -> None:
    dead_letter_queues = _dead_letter_queues(run)
    assert len(dead_letter_queues) == len(_work_queues(run)) + 1  # one per work queue, one for the tracker
    assert {"images-dlq", "audio-dlq", "tracker-dlq"} <= {q.name for q in dead_letter_queues}
    for queue in dead_letter_queues:
        assert queue.inputs["messageRetentionSeconds"] == DLQ_RETENTION, queue.name
        assert not queue.inputs.get("redrivePolicy"), queue.name


def test_every_queue_is_encrypted(run: ProgramRun) -> None:
    for queue in run.of_type(QUEUE):
        assert queue.inputs["sqsManagedSseEnabled"] is True, queue.name


def test_every_work_queue_has_one_consumer_and_hides_messages_for_six_of_its_timeouts(run: ProgramRun) -> None:
    mappings = run.of_type(ESM)
    consumed = [m.inputs["eventSourceArn"] for m in mappings]
    assert sorted(consumed) == sorted(q.outputs["arn"] for q in _work_queues(run))
    for mapping in mappings:
        queue = run.by_output(QUEUE, "arn", mapping.inputs["eventSourceArn"])
        function = run.by_output(FUNCTION, "arn", mapping.inputs["functionName"])
        assert queue.inputs["visibilityTimeoutSeconds"] >= 6 * function.inputs["timeout"], queue.name
        assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
        statements = run.function_policy(function)["Statement"]
        consume = [s for s in statements if "sqs:ReceiveMessage" in s["Action"]]
        assert consume, function.name
        assert consume[0]["Resource"] == [queue.outputs["arn"]]
        assert {"sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= set(consume[0]["Action"])


def test_every_function_logs_json_to_its_own_retained_log_group_and_traces(run: ProgramRun) -> None:
    groups = {g.outputs["name"]: g for g in run.of_type("aws:cloudwatch/logGroup:LogGroup")}
    used: list[str] = []
    for function in run.of_type(FUNCTION):
        logging = function.inputs["loggingConfig"]
        assert logging["logFormat"] == "JSON", function.name
        group = groups[logging["logGroup"]]
        assert group.inputs["retentionInDays"] == 14, function.name  # Pulumi.dev.yaml
        assert function.inputs["tracingConfig"] == {"mode": "Active"}, function.name
        log_statement = run.function_policy(function)["Statement"][0]
        assert log_statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
        assert log_statement["Resource"] == f"{group.outputs['arn']}:*"
        used.append(logging["logGroup"])
    assert len(used) == len(set(used)), "functions share a log group"


def test_every_role_is_assumable_by_one_service_lambda_for_functions(run: ProgramRun) -> None:
    function_roles = {f.inputs["role"] for f in run.of_type(FUNCTION)}
    trusted: dict[str, int] = {}
    for role in run.of_type("aws:iam/role:Role"):
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        service = statement["Principal"]["Service"]
        assert statement == {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        assert (service == "lambda.amazonaws.com") == (role.outputs["arn"] in function_roles), role.name
        trusted[service] = trusted.get(service, 0) + 1
    # The one other role is MediaConvert's, for its jobs.
    assert trusted == {"lambda.amazonaws.com": len(run.of_type(FUNCTION)), "mediaconvert.amazonaws.com": 1}


def _policy_documents(run: ProgramRun) -> list[tuple[str, dict[str, Any]]]:
    tokens = ("aws:iam/rolePolicy:RolePolicy", "aws:sqs/queuePolicy:QueuePolicy", "aws:s3/bucketPolicy:BucketPolicy")
    return [(r.name, json.loads(r.inputs["policy"])) for token in tokens for r in run.of_type(token)]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_no_statement_allows_wildcard_actions_and_only_xray_gets_a_wildcard_resource(run: ProgramRun) -> None:
    documents = _policy_documents(run)
    assert len(documents) >= 10
    xray_statements = 0
    for name, document in documents:
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            actions = _as_list(statement["Action"])
            assert all(a != "*" and not a.endswith(":*") for a in actions), (name, actions)
            if "*" in _as_list(statement["Resource"]):
                assert set(actions) <= set(XRAY_ACTIONS), (name, actions)
                xray_statements += 1
    assert xray_statements == len(run.of_type(FUNCTION))


def _bucket_setting(run: ProgramRun, bucket_id: str, token: str) -> dict[str, Any]:
    found = [r for r in run.of_type(token) if r.inputs["bucket"] == bucket_id]
    assert len(found) == 1, (token, bucket_id)
    return found[0].inputs


def test_every_bucket_is_private_encrypted_and_tls_only(run: ProgramRun) -> None:
    buckets = run.of_type(BUCKET)
    assert len(buckets) == 2
    for bucket in buckets:
        settings = functools.partial(_bucket_setting, run, bucket.id)
        block = settings("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        assert all(block[flag] is True for flag in flags)
        encryption = settings("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
        assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] in ("AES256", "aws:kms")
        ownership = settings("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
        assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
        deny, *readers = json.loads(settings("aws:s3/bucketPolicy:BucketPolicy")["policy"])["Statement"]
        assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Resource"] == [bucket.outputs["arn"], f"{bucket.outputs['arn']}/*"]
        # Any other statement admits one service on behalf of one named resource (the CDN's, test_cdn.py): nothing
        # public, nothing the public access block would refuse.
        for reader in readers:
            assert reader["Effect"] == "Allow" and set(reader["Principal"]) == {"Service"}, bucket.name
            assert reader["Condition"]["StringEquals"]["AWS:SourceArn"].startswith("arn:aws:"), bucket.name
        assert len(readers) == (1 if bucket.name == "outputs-bucket" else 0), bucket.name
        rules = settings("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["rules"]
        abort = [r for r in rules if r.get("abortIncompleteMultipartUpload")]
        assert abort[0]["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}
        assert abort[0]["filter"] == {"prefix": ""}


def test_every_queue_subscription_is_raw_and_filtered_on_attributes(run: ProgramRun) -> None:
    subscriptions = [
        s for s in run.of_type("aws:sns/topicSubscription:TopicSubscription") if s.inputs["protocol"] == "sqs"
    ]
    # every work queue but ingest's (S3), the packager's and the webhooks' (EventBridge)
    assert len(subscriptions) == len(_work_queues(run)) - 3
    for subscription in subscriptions:
        assert subscription.inputs["rawMessageDelivery"] is True
        assert subscription.inputs["filterPolicyScope"] == "MessageAttributes"
        assert json.loads(subscription.inputs["filterPolicy"])


def test_every_event_target_retries_then_dead_letters(run: ProgramRun) -> None:
    targets = run.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == 5  # the tracker's three, the packager's one, the webhooks' one
    queue_arns = {q.outputs["arn"] for q in run.of_type(QUEUE)}
    for target in targets:
        retry = target.inputs["retryPolicy"]
        assert retry["maximumEventAgeInSeconds"] > 0 and retry["maximumRetryAttempts"] > 0
        assert target.inputs["deadLetterConfig"]["arn"] in queue_arns


def test_every_aws_resource_belongs_to_a_component(run: ProgramRun) -> None:
    assert run.urns
    for urn in run.urns:
        parent_type, own_type = urn.split("::")[2].split("$")  # the URN names the parent's type and its own
        if parent_type == "pulumi:pulumi:Stack":
            assert own_type.startswith("media-pipeline:index:"), urn  # only components at the top level
        else:
            assert parent_type.startswith("media-pipeline:index:"), urn
