"""IAM and resource policy documents as plain data: no Pulumi here, so they are unit-tested directly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

POLICY_VERSION = "2012-10-17"

# X-Ray has no resource-level permissions: these two actions are the only ones that may name "*".
XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
SQS_CONSUMER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


@dataclass(frozen=True)
class ResolvedGrant:
    """Named actions on named resources, with every resource already a plain string."""

    actions: tuple[str, ...]
    """IAM actions, each `service:Action`; wildcards are refused."""
    resources: tuple[str, ...]
    """ARNs the actions apply to; `*` is refused."""
    conditions: Mapping[str, Any] = field(default_factory=dict)
    """Optional IAM condition block."""


def assume_role_policy(service: str) -> dict[str, Any]:
    """Trust policy that lets one AWS service (e.g. lambda.amazonaws.com) assume the role."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def _check_grant(grant: ResolvedGrant) -> None:
    if not grant.actions or not grant.resources:
        raise ValueError(f"a grant needs actions and resources, got {grant!r}")
    for action in grant.actions:
        service, _, name = action.partition(":")
        if not service or not name or "*" in action:
            raise ValueError(f"grant action {action!r} must name one action, without wildcards")
    for resource in grant.resources:
        if resource == "*" or not resource.startswith("arn:"):
            raise ValueError(f"grant resource {resource!r} must be a named ARN")


def function_policy(log_group_arn: str, grants: Sequence[ResolvedGrant]) -> dict[str, Any]:
    """A Lambda role's inline policy: its own log group, X-Ray, and exactly the grants its caller names."""
    statements: list[dict[str, Any]] = [
        {"Sid": "OwnLogGroup", "Effect": "Allow", "Action": list(LOG_ACTIONS), "Resource": f"{log_group_arn}:*"},
        # X-Ray has no resource-level permissions, so this is the one statement allowed to say "*".
        {"Sid": "XRayTraces", "Effect": "Allow", "Action": list(XRAY_ACTIONS), "Resource": "*"},
    ]
    statements += [_grant_statement(index, grant) for index, grant in enumerate(grants)]
    return {"Version": POLICY_VERSION, "Statement": statements}


def service_role_policy(grants: Sequence[ResolvedGrant]) -> dict[str, Any]:
    """A service role's inline policy (e.g. MediaConvert's): exactly the grants, nothing added."""
    if not grants:
        raise ValueError("a service role policy needs at least one grant")
    return {"Version": POLICY_VERSION, "Statement": [_grant_statement(i, grant) for i, grant in enumerate(grants)]}


def _grant_statement(index: int, grant: ResolvedGrant) -> dict[str, Any]:
    _check_grant(grant)
    statement: dict[str, Any] = {
        "Sid": f"Grant{index}",
        "Effect": "Allow",
        "Action": sorted(set(grant.actions)),
        "Resource": list(dict.fromkeys(grant.resources)),
    }
    if grant.conditions:
        statement["Condition"] = dict(grant.conditions)
    return statement


def queue_send_policy(
    queue_arn: str, service: str, source_arns: Sequence[str], source_account: str | None = None
) -> dict[str, Any]:
    """SQS queue policy admitting only `service` sending on behalf of the named sources (topic, bucket, rules)."""
    if not source_arns:
        raise ValueError("a queue policy needs at least one source ARN")
    condition: dict[str, Any] = {"ArnEquals": {"aws:SourceArn": list(source_arns)}}
    if source_account is not None:
        # S3 bucket ARNs carry no account ID, so the owning account is pinned separately.
        condition["StringEquals"] = {"aws:SourceAccount": source_account}
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "AllowSourceToSend",
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": condition,
            }
        ],
    }


# What a publisher to (or a reader of) an SNS topic encrypted with a customer-managed key needs on that key.
TOPIC_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")


def topic_key_policy(account_id: str, publishing_services: Sequence[str]) -> dict[str, Any]:
    """Key policy of the topics' KMS key: the account's IAM policies decide for its roles (the usual delegation to the
    root principal), and each publishing service (e.g. CloudWatch alarms) may use the key, as the SNS developer guide's
    statement for CloudWatch has it."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountIamPolicies",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if publishing_services:
        statements.append(
            {
                "Sid": "PublishingServices",
                "Effect": "Allow",
                "Principal": {"Service": sorted(publishing_services)},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
            }
        )
    return {"Version": POLICY_VERSION, "Statement": statements}


def redrive_policy(dead_letter_queue_arn: str, max_receive_count: int) -> dict[str, Any]:
    """SQS redrive policy: after `max_receive_count` failed receives a message moves to the DLQ."""
    if max_receive_count < 1:
        raise ValueError(f"maxReceiveCount must be at least 1, got {max_receive_count}")
    return {"deadLetterTargetArn": dead_letter_queue_arn, "maxReceiveCount": max_receive_count}


def deny_insecure_transport(bucket_arn: str) -> dict[str, Any]:
    """Bucket policy refusing every request that does not use TLS."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def mediaconvert_jobs_arn(queue_arn: str) -> str:
    """ARN pattern of every MediaConvert job in a queue's account and region (`arn:aws:mediaconvert:r:a:jobs/*`).

    CreateJob is authorised against the job it creates (a required resource) as well as the queue it names, so a
    grant on the queue alone is refused.
    """
    prefix, sep, _ = queue_arn.rpartition(":queues/")
    if not sep or not prefix.startswith("arn:"):
        raise ValueError(f"{queue_arn!r} is not a MediaConvert queue ARN")
    return f"{prefix}:jobs/*"


def object_arns(bucket_arn: str, prefix: str, suffix: str = "") -> str:
    """ARN of every object under `prefix` in a bucket (`arn:aws:s3:::b/uploads/*`), or only those ending in `suffix`
    (`arn:aws:s3:::b/uploads/*/validated`)."""
    if not prefix.endswith("/"):
        raise ValueError(f"prefix {prefix!r} must end with '/'")
    if suffix and not suffix.startswith("/"):
        raise ValueError(f"suffix {suffix!r} must start with '/'")
    return f"{bucket_arn}/{prefix}*{suffix}"
