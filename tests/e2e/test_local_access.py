"""IAM's evaluation as the local cloud applies it: identity and resource policies, service principals, KMS key
policies and Lambda permissions, as plain data."""

from __future__ import annotations

import pytest

from local.permissions.access import Principal, Request, decide, lambda_permission_allows

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/transcode-role"
ROLE_PRINCIPAL = Principal(account=ACCOUNT, role_arn=ROLE)
SNS = Principal(account=ACCOUNT, service="sns.amazonaws.com")
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:transcode-720p"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:validated"
BUCKET = "arn:aws:s3:::outputs-1a2b"


def allow(action: str | list[str], resource: str | list[str], **extra: object) -> dict[str, object]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def policy(*statements: dict[str, object]) -> dict[str, object]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_an_identity_policy_allows_exactly_its_actions_on_its_resources() -> None:
    identity = policy(allow(["s3:GetObject", "s3:PutObject"], f"{BUCKET}/outputs/*"))
    assert decide(ROLE_PRINCIPAL, Request("s3:PutObject", (f"{BUCKET}/outputs/j/720p.mp4",)), [identity]).allowed
    refused = decide(ROLE_PRINCIPAL, Request("s3:PutObject", (f"{BUCKET}/uploads/j/source",)), [identity])
    assert not refused.allowed and "no identity-based policy allows the s3:PutObject action" in refused.reason
    assert not decide(ROLE_PRINCIPAL, Request("s3:DeleteObject", (f"{BUCKET}/outputs/x",)), [identity]).allowed


def test_an_explicit_deny_wins_over_any_allow() -> None:
    identity = policy(allow("s3:*", "*"), {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"{BUCKET}/*"})
    assert not decide(ROLE_PRINCIPAL, Request("s3:PutObject", (f"{BUCKET}/k",)), [identity]).allowed
    assert decide(ROLE_PRINCIPAL, Request("s3:GetObject", (f"{BUCKET}/k",)), [identity]).allowed


def test_every_resource_of_a_request_must_be_allowed() -> None:
    identity = policy(allow("dynamodb:Query", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/jobs"))
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/jobs"
    assert decide(ROLE_PRINCIPAL, Request("dynamodb:Query", (table,)), [identity]).allowed
    assert not decide(ROLE_PRINCIPAL, Request("dynamodb:Query", (table, f"{table}/index/byOwner")), [identity]).allowed


@pytest.mark.parametrize(
    ("context", "allowed"),
    [({"s3:prefix": "uploads/abc"}, True), ({"s3:prefix": "outputs/abc"}, False), ({}, False)],
)
def test_conditions_are_evaluated_against_the_request(context: dict[str, str], allowed: bool) -> None:
    identity = policy(allow("s3:ListBucket", BUCKET, Condition={"StringLike": {"s3:prefix": ["uploads/*"]}}))
    assert decide(ROLE_PRINCIPAL, Request("s3:ListBucket", (BUCKET,), context), [identity]).allowed is allowed


def test_a_queue_policy_admits_only_the_named_service_from_the_named_source() -> None:
    queue_policy = policy(
        allow(
            "sqs:SendMessage",
            QUEUE,
            Principal={"Service": "sns.amazonaws.com"},
            Condition={"ArnEquals": {"aws:SourceArn": TOPIC}},
        )
    )
    from_topic = Request("sqs:SendMessage", (QUEUE,), {"aws:SourceArn": TOPIC})
    assert decide(SNS, from_topic, resource_policy=queue_policy).allowed
    other_topic = Request("sqs:SendMessage", (QUEUE,), {"aws:SourceArn": f"{TOPIC}-other"})
    assert not decide(SNS, other_topic, resource_policy=queue_policy).allowed
    events = Principal(account=ACCOUNT, service="events.amazonaws.com")
    refused = decide(events, from_topic, resource_policy=queue_policy)
    assert not refused.allowed and "no resource-based policy allows" in refused.reason
    assert not decide(SNS, from_topic, resource_policy=None).allowed  # services need the resource's consent


def test_a_resource_policy_naming_the_role_is_enough_without_an_identity_policy() -> None:
    queue_policy = policy(allow("sqs:SendMessage", QUEUE, Principal={"AWS": ROLE}))
    assert decide(ROLE_PRINCIPAL, Request("sqs:SendMessage", (QUEUE,)), [], resource_policy=queue_policy).allowed
    other = Principal(account=ACCOUNT, role_arn=f"arn:aws:iam::{ACCOUNT}:role/other")
    assert not decide(other, Request("sqs:SendMessage", (QUEUE,)), [], resource_policy=queue_policy).allowed


def test_a_key_policy_delegating_to_the_account_needs_the_identity_policy_too() -> None:
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k"
    delegating = policy(allow("kms:*", "*", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))
    request = Request("kms:GenerateDataKey", (key,))
    assert decide(ROLE_PRINCIPAL, request, [policy(allow(["kms:GenerateDataKey"], key))], key_policy=delegating).allowed
    assert not decide(ROLE_PRINCIPAL, request, [], key_policy=delegating).allowed
    direct = policy(allow("kms:GenerateDataKey*", "*", Principal={"AWS": ROLE}))
    assert decide(ROLE_PRINCIPAL, request, [], key_policy=direct).allowed
    assert not decide(ROLE_PRINCIPAL, request, [policy(allow("kms:*", "*"))], key_policy=policy()).allowed


def test_a_lambda_permission_names_the_service_and_the_source() -> None:
    rule = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/media-pipeline-dev/tracker-pipeline-events"
    permissions = [{"action": "lambda:InvokeFunction", "principal": "events.amazonaws.com", "sourceArn": rule}]
    assert lambda_permission_allows(permissions, "events.amazonaws.com", rule, ACCOUNT)
    assert not lambda_permission_allows(permissions, "sns.amazonaws.com", rule, ACCOUNT)
    assert not lambda_permission_allows(permissions, "events.amazonaws.com", f"{rule}-other", ACCOUNT)
    api = f"arn:aws:execute-api:us-east-1:{ACCOUNT}:abc123"
    wildcard = [{"action": "lambda:InvokeFunction", "principal": "apigateway.amazonaws.com", "sourceArn": f"{api}/*/*"}]
    assert lambda_permission_allows(wildcard, "apigateway.amazonaws.com", f"{api}/$default/GET/jobs/{{jobId}}", ACCOUNT)
    accounted = [{"action": "lambda:InvokeFunction", "principal": "s3.amazonaws.com", "sourceAccount": ACCOUNT}]
    assert lambda_permission_allows(accounted, "s3.amazonaws.com", "arn:aws:s3:::b", ACCOUNT)
    assert not lambda_permission_allows(accounted, "s3.amazonaws.com", "arn:aws:s3:::b", "999999999999")


def test_aws_star_is_everyone_and_a_session_arn_names_its_caller() -> None:
    deny_all = policy({"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": f"{BUCKET}/*"})
    identity = policy(allow("s3:GetObject", f"{BUCKET}/*"))
    request = Request("s3:GetObject", (f"{BUCKET}/k",))
    assert not decide(ROLE_PRINCIPAL, request, [identity], resource_policy=deny_all).allowed
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/transcode-role/transcode-fn"
    caller = Principal(account=ACCOUNT, role_arn=ROLE, session_arn=session)
    by_session = policy(allow("s3:GetObject", f"{BUCKET}/*", Principal={"AWS": session}))
    assert decide(caller, request, [], resource_policy=by_session).allowed


def test_not_principal_denies_everyone_it_does_not_name() -> None:
    others = policy(
        allow("s3:*", "*", Principal="*"),
        {"Effect": "Deny", "NotPrincipal": {"AWS": ROLE}, "Action": "s3:*", "Resource": f"{BUCKET}/*"},
    )
    request = Request("s3:GetObject", (f"{BUCKET}/k",))
    assert decide(ROLE_PRINCIPAL, request, [], resource_policy=others).allowed
    other = Principal(account=ACCOUNT, role_arn=f"arn:aws:iam::{ACCOUNT}:role/other")
    assert not decide(other, request, [], resource_policy=others).allowed


def test_an_unknown_condition_operator_fails_safe() -> None:
    late = {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}
    request = Request("s3:GetObject", (f"{BUCKET}/k",))
    assert not decide(ROLE_PRINCIPAL, request, [policy(allow("s3:GetObject", "*", Condition=late))]).allowed
    deny = {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*", "Condition": late}
    assert not decide(ROLE_PRINCIPAL, request, [policy(allow("s3:GetObject", "*"), deny)]).allowed


def test_iam_wildcards_are_only_star_and_question_mark() -> None:
    identity = policy(allow("s3:GetObject", f"{BUCKET}/[ab]*"))
    assert not decide(ROLE_PRINCIPAL, Request("s3:GetObject", (f"{BUCKET}/a1",)), [identity]).allowed
    assert decide(ROLE_PRINCIPAL, Request("s3:GetObject", (f"{BUCKET}/[ab]1",)), [identity]).allowed
    assert decide(ROLE_PRINCIPAL, Request("S3:getobject", (f"{BUCKET}/[ab]1",)), [identity]).allowed  # case-insensitive


def test_for_all_values_holds_without_the_key_and_numbers_that_are_not_numbers_do_not_match() -> None:
    request = Request("s3:ListBucket", (BUCKET,))
    all_values = policy(allow("s3:ListBucket", BUCKET, Condition={"ForAllValues:StringLike": {"s3:prefix": "a*"}}))
    assert decide(ROLE_PRINCIPAL, request, [all_values]).allowed
    numeric = policy(allow("s3:ListBucket", BUCKET, Condition={"NumericLessThan": {"s3:max-keys": "10"}}))
    assert not decide(ROLE_PRINCIPAL, Request("s3:ListBucket", (BUCKET,), {"s3:max-keys": "ten"}), [numeric]).allowed
