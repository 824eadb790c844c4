"""Permissions enforced in the emulator as AWS enforces them: on every API call a role makes, and on every delivery a
service makes on the account's behalf.

API calls. moto authenticates a request's access key but evaluates identity policies only against `*` for most
services, ignoring Resource and Condition. Here its authorization hook is replaced: the caller is the role session
the credentials belong to (or the local cloud's own admin key, which is not subject to policies), the resource is the
one the request names (a queue, a table or index, a topic, an event bus, a key, a secret, a bucket or object, presigned
requests included), and `access.py` decides with the role's policies and the resource's own policy. A CopyObject also
needs s3:GetObject on its source; a DynamoDB transaction is authorized item by item, each as the action it performs
on its own table (TransactWriteItems and TransactGetItems are no IAM actions); a Publish to an encrypted topic also
needs the topic's key, and reading a secret
encrypted with a customer managed key that key's kms:Decrypt; an expired presigned URL, and a read of a missing key by
a caller who may not list the bucket, are refused as S3 refuses them. Refusals are the services' own errors (S3's and
SQS's AccessDenied, DynamoDB's, EventBridge's, KMS's and Secrets Manager's AccessDeniedException; a query service's
AccessDenied). Signatures are not verified: the session token identifies the session.

Deliveries. Before S3 sends a notification to a queue or topic, SNS delivers to a subscribed queue, or EventBridge
delivers to a queue target, the destination's policy must admit that service from that source (`aws:SourceArn`,
`aws:SourceAccount`). A refused delivery is dropped as AWS drops it (EventBridge sends it to the target's DLQ, if that
queue's policy admits it, with `ERROR_CODE` NO_PERMISSIONS and no retries), and recorded in `refusals` with a warning.
Lambda targets are checked by the local cloud itself (`lambda_permission_allows`), as are API Gateway integrations.

Enforcement starts when the local cloud has created the program's resources (`enable`); until then, and in any
process that never enables it (tests using moto directly), moto behaves as it does unpatched.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree

from local.permissions.access import ENDPOINT_CONTEXT, Decision, Principal, Request, decide
from local.permissions.roles import ADMIN_ACCESS_KEY, Caller, caller_for, role_policies

log = logging.getLogger("local.permissions")

DELIVERY_QUEUE_PREFIX = "local-delivery-"
JSON_ERRORS = {
    "dynamodb": "AccessDeniedException",
    "events": "AccessDeniedException",
    "kms": "AccessDeniedException",
    "secretsmanager": "AccessDeniedException",
}
# API operations authorized as another IAM action: a batch as its single action (IAM has no separate actions for
# these batches), S3's HeadBucket as ListBucket.
IAM_ACTIONS = {
    "s3:HeadBucket": "s3:ListBucket",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sns:PublishBatch": "sns:Publish",
}
# What each item of a DynamoDB transaction is authorized as, on its own table: IAM has no action for the transaction
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
TRANSACTION_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}
TRANSACTIONS = ("dynamodb:TransactWriteItems", "dynamodb:TransactGetItems")
_state = {"enabled": False}
_delivering = threading.local()


@dataclass(frozen=True)
class Refusal:
    """A delivery a service could not make because the destination's policy does not admit it."""

    service: str
    source: str
    destination: str
    reason: str


refusals: deque[Refusal] = deque(maxlen=200)


def enable() -> None:
    _state["enabled"] = True


def disable() -> None:
    """Back to moto's own behaviour (for a test that enabled enforcement in-process)."""
    _state["enabled"] = False


def refuse(service: str, source: str, destination: str, reason: str) -> None:
    refusals.append(Refusal(service, source, destination, reason))
    log.warning("%s could not deliver from %s to %s: %s", service, source, destination, reason)


# --- API calls ------------------------------------------------------------------------------------------------------


def _first(values: Any) -> str | None:
    if isinstance(values, list):
        return str(values[0]) if values else None
    return None if values is None else str(values)


def _credentials(response: Any) -> tuple[str | None, str | None]:
    """Access key and session token: from the Authorization header, a presigned URL's query, or a POST form."""
    authorization = response.headers.get("Authorization", "")
    if "Credential=" in authorization:
        return authorization.split("Credential=", 1)[1].split("/", 1)[0], response.headers.get("X-Amz-Security-Token")
    fields = {k.lower(): v for k, v in (getattr(response, "querystring", None) or {}).items()}
    fields |= {k.lower(): v for k, v in (getattr(response, "form_data", None) or {}).items()}
    credential = _first(fields.get("x-amz-credential"))  # SigV4: KEY/date/region/service/aws4_request
    token = _first(fields.get("x-amz-security-token"))
    return (credential.split("/", 1)[0] if credential else _first(fields.get("awsaccesskeyid"))), token


def _deleted_keys(response: Any) -> list[str]:
    """The keys a multi-object delete (`POST /{bucket}?delete`, DeleteObjects) names in its XML body."""
    body = response.body
    try:
        root = ElementTree.fromstring(body.decode() if isinstance(body, bytes) else str(body or ""))
    except ElementTree.ParseError:
        return []
    return [element.text or "" for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "Key"]


def _s3_resources(response: Any, resource: str, action: str) -> list[tuple[str, str]]:
    """(action, resource) pairs an S3 request needs: a POST form names its key in the form; a copy reads its source;
    a multi-object delete needs s3:DeleteObject on each key it names (S3 has no action of its own for it)."""
    needed = []
    fields = getattr(response, "querystring", None) or {}
    if action == "s3:DeleteObject" and resource.count("/") == 0 and "delete" in fields:
        keys = _deleted_keys(response)
        return [(action, f"{resource}/{key}") for key in keys] or [(action, resource)]
    if resource.count("/") == 0 and action == "s3:PutObject" and _first(fields.get("key")):
        resource = f"{resource}/{_first(fields.get('key'))}"
    needed.append((action, resource))
    source = response.headers.get("x-amz-copy-source")
    if source and action == "s3:PutObject":
        source = source.decode() if isinstance(source, bytes) else source
        needed.append(("s3:GetObject", f"arn:aws:s3:::{unquote(urlparse(source).path).lstrip('/')}"))
    return needed


def _json_body(response: Any) -> dict[str, Any]:
    body = response.body
    if isinstance(body, dict):  # some handlers (DynamoDB) parse it before authorizing
        return body
    return json.loads(body or "{}")


def _table_arn(response: Any, table: str) -> str:
    return table_arn(response.current_account, response.region, table)


def table_arn(account: str, region: str, table: str) -> str:
    """A table's ARN from its name (or the ARN a request may give instead)."""
    return table if table.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{table}"


def _dynamodb_resources(response: Any) -> list[str]:
    body = _json_body(response)
    if "TableName" in body:
        table = _table_arn(response, body["TableName"])
        return [f"{table}/index/{body['IndexName']}" if body.get("IndexName") else table]
    tables = set(body.get("RequestItems") or {})
    return [_table_arn(response, t) for t in sorted(tables)] or ["*"]


def transaction_requests(
    body: dict[str, Any], action: str, account: str, region: str, context: dict[str, str]
) -> list[Request]:
    """A DynamoDB transaction as IAM authorizes it: one request per item, the item's own action on its table, with
    `dynamodb:EnclosingOperation` naming the transaction. An item of an unknown kind is asked as the transaction."""
    operation = action.split(":", 1)[1]
    within = {**context, "dynamodb:EnclosingOperation": operation}
    requests = [
        Request(
            TRANSACTION_ITEM_ACTIONS.get(kind, action),
            (table_arn(account, region, str(item.get("TableName"))),),
            within,
        )
        for entry in body.get("TransactItems") or []
        for kind, item in entry.items()
    ]
    return requests or [Request(action, ("*",), context)]


def _bus_arns(response: Any) -> list[str]:
    buses = set()
    for entry in _json_body(response).get("Entries") or []:
        bus = entry.get("EventBusName") or "default"
        buses.add(
            bus
            if bus.startswith("arn:")
            else f"arn:aws:events:{response.region}:{response.current_account}:event-bus/{bus}"
        )
    return sorted(buses) or ["*"]


def kms_key(account: str, region: str, key_id: str) -> Any:
    from moto.kms.models import kms_backends

    return kms_backends[account][region].describe_key(key_id)


def _topic(account: str, region: str, arn: str) -> Any:
    from moto.sns.models import sns_backends

    return sns_backends[account][region].get_topic(arn)


def _secret(account: str, region: str, secret_id: str) -> Any:
    """The secret a SecretId names (its name, full ARN or partial ARN); None when there is none."""
    from moto.secretsmanager.models import secretsmanager_backends

    return secretsmanager_backends[account][region].secrets.get(secret_id)


def resource_policy_of(service: str, account: str, region: str, resource: str) -> str | None:
    """The resource's own policy, where the service has one that can admit a role of the same account."""
    try:
        if service == "secretsmanager":
            secret = _secret(account, region, resource)
            return secret.policy if secret is not None else None
        if service == "sqs":
            from moto.sqs.models import sqs_backends

            return sqs_backends[account][region].get_queue(resource.rsplit(":", 1)[-1]).policy
        if service == "sns":
            return _topic(account, region, resource).policy
        if service == "s3":
            from moto.s3.models import s3_backends

            bucket = s3_backends[account]["aws"].get_bucket(resource.split(":::", 1)[1].split("/", 1)[0])
            return bucket.policy.decode() if bucket.policy else None
    except Exception:  # a resource that does not exist: the service answers that itself, after authorization
        return None
    return None


def _presigned_url_expired(response: Any) -> bool:
    """A presigned URL past its lifetime: S3 refuses it (SigV4 X-Amz-Date + X-Amz-Expires, or SigV2 Expires)."""
    query = {k.lower(): v for k, v in (getattr(response, "querystring", None) or {}).items()}
    signed_at, lifetime = _first(query.get("x-amz-date")), _first(query.get("x-amz-expires"))
    if signed_at and lifetime:
        start = datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return datetime.now(UTC) > start + timedelta(seconds=int(lifetime))
    expires = _first(query.get("expires"))
    return bool(expires and expires.isdigit() and time.time() > int(expires))


def _missing_object_needs_list_bucket(response: Any, caller: Caller, policies: list[str], resource: str) -> bool:
    """S3 answers a read of a missing key with 403, not 404, unless the caller may list the bucket."""
    from moto.s3.models import s3_backends

    bucket, _, key = resource.split(":::", 1)[1].partition("/")
    try:
        if s3_backends[response.current_account]["aws"].get_object(bucket, key) is not None:
            return False
    except Exception:  # no such bucket: S3 says so itself
        return False
    bucket_arn = f"arn:aws:s3:::{bucket}"
    listing = Request("s3:ListBucket", (bucket_arn,), ENDPOINT_CONTEXT)
    bucket_policy = resource_policy_of("s3", response.current_account, response.region, bucket_arn)
    return not decide(caller.principal, listing, policies, bucket_policy).allowed


def _denied(response: Any, service: str, caller: Caller, action: str, message: str) -> Exception:
    """The service's own refusal: S3's AccessDenied, a JSON service's AccessDeniedException, a query service's 403."""
    from moto.core.exceptions import AccessDeniedError, JsonRESTError
    from moto.s3.exceptions import S3AccessDeniedError

    log.warning("%s", message)
    if service == "s3":
        return S3AccessDeniedError()
    if response.headers.get("X-Amz-Target"):  # the JSON protocols (DynamoDB, EventBridge, KMS, SQS)
        error = JsonRESTError(JSON_ERRORS.get(service, "AccessDenied"), message)
        error.code = 400 if service in JSON_ERRORS else 403
        return error
    return AccessDeniedError(caller.arn, action)


def _requests(response: Any, service: str, action: str, resource: str) -> list[Request]:
    context = dict(ENDPOINT_CONTEXT)
    account, region = response.current_account, response.region
    if service == "s3":
        prefix = _first((getattr(response, "querystring", None) or {}).get("prefix"))
        if prefix is not None:
            context["s3:prefix"] = prefix
        return [Request(a, (r,), context) for a, r in _s3_resources(response, resource, action)]
    if service == "dynamodb" and action in TRANSACTIONS:
        return transaction_requests(_json_body(response), action, account, region, context)
    if service == "dynamodb":
        return [Request(action, tuple(_dynamodb_resources(response)), context)]
    if service == "events":
        return [Request(action, tuple(_bus_arns(response)), context)]
    if service == "sns":
        topic = response._get_param("TopicArn") or response._get_param("TargetArn") or "*"
        requests = [Request(action, (topic,), context)]
        if action == "sns:Publish" and topic != "*":
            key = getattr(_topic(account, region, topic), "kms_master_key_id", "")
            if key:
                key_arn = kms_key(account, region, key).arn
                requests += [Request(a, (key_arn,), context) for a in ("kms:GenerateDataKey", "kms:Decrypt")]
        return requests
    if service == "sqs" and resource == "*" and response._get_param("QueueName"):  # GetQueueUrl names the queue
        return [Request(action, (f"arn:aws:sqs:{region}:{account}:{response._get_param('QueueName')}",), context)]
    if service == "secretsmanager":
        return _secretsmanager_requests(response, action, context)
    if service == "kms":
        key = response._get_param("KeyId")
        return [Request(action, (kms_key(account, region, key).arn if key else "*",), context)]
    return [Request(action, (resource,), context)]


def _secretsmanager_requests(response: Any, action: str, context: dict[str, str]) -> list[Request]:
    """A secret's ARN for each secret the request names; reading a value encrypted with a customer managed key also
    needs kms:Decrypt on that key (Secrets Manager decrypts as the caller), and a batch read the read of each secret."""
    account, region = response.current_account, response.region
    named = response._get_param("SecretIdList") or [response._get_param("SecretId") or response._get_param("Name")]
    requests = [Request(action, ("*",), context)] if action == "secretsmanager:BatchGetSecretValue" else []
    per_secret = "secretsmanager:GetSecretValue" if requests else action
    for secret_id in [str(s) for s in named if s]:
        secret = _secret(account, region, secret_id)
        arn = secret.arn if secret is not None else secret_id
        if not arn.startswith("arn:"):  # a secret that does not exist: refused or not found by its name
            arn = f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"
        requests.append(Request(per_secret, (arn,), context))
        key_id = getattr(secret, "kms_key_id", None)
        if per_secret == "secretsmanager:GetSecretValue" and key_id and key_id != "alias/aws/secretsmanager":
            try:
                key_arn = kms_key(account, region, key_id).arn
            except Exception:  # an AWS managed key: Secrets Manager's own grant covers it
                continue
            via = {**context, "kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
            requests.append(Request("kms:Decrypt", (key_arn,), via))
    return requests or [Request(action, ("*",), context)]


def authorize(response: Any, iam_request_cls: type, resource: str = "*") -> None:
    """moto's authorization hook, replaced: the role session's policies and the resource's policy decide."""
    if not _state["enabled"]:
        return
    access_key, token = _credentials(response)
    if access_key == ADMIN_ACCESS_KEY:
        return
    is_s3 = iam_request_cls.__name__ == "S3IAMRequest"
    if is_s3 and getattr(response, "method", "") == "OPTIONS":
        return  # a CORS preflight: S3 answers it from the bucket's CORS configuration alone, unsigned
    from moto.core.exceptions import InvalidClientTokenIdError

    account, region = response.current_account, response.region
    caller = caller_for(account, access_key, token) if access_key else None
    service = "s3" if is_s3 else (response.service_name or "")
    if caller is None:
        if is_s3:
            from moto.s3.exceptions import S3AccessDeniedError

            raise S3AccessDeniedError()
        raise InvalidClientTokenIdError()
    operation = response.data.get("Action") if is_s3 else response._get_action()
    action = IAM_ACTIONS.get(f"{service}:{operation}", f"{service}:{operation}")
    if action == "sts:GetCallerIdentity":
        return  # always allowed, whatever the policies say
    policies = role_policies(account, caller.role_name)
    if is_s3 and "Authorization" not in response.headers and _presigned_url_expired(response):
        from moto.s3.exceptions import S3ClientError

        raise S3ClientError("AccessDenied", "Request has expired")
    if action == "s3:GetObject" and _missing_object_needs_list_bucket(response, caller, policies, resource):
        bucket = resource.split("/", 1)[0]
        message = f"User: {caller.arn} is not authorized to perform: s3:ListBucket on resource: {bucket}"
        raise _denied(response, service, caller, "s3:ListBucket", f"{message} (a read of a missing key answers 403)")
    for request in _requests(response, service, action, resource):
        target = request.resources[0]
        if request.action.startswith("kms:") and target != "*":
            # A key's own policy must admit the caller, directly or by delegating to the account's IAM policies.
            decision = decide(caller.principal, request, policies, key_policy=kms_key(account, region, target).policy)
        else:
            resource_policy = resource_policy_of(request.action.split(":", 1)[0], account, region, target)
            decision = decide(caller.principal, request, policies, resource_policy)
        if not decision.allowed:
            message = f"User: {caller.arn} is not authorized to perform: {request.action} on resource: {target}"
            raise _denied(response, service, caller, request.action, f"{message} because {decision.reason}")


def mediaconvert_refusal(account: str, region: str, operation: str, headers: Any, params: dict[str, Any]) -> str:
    """Why the caller of a MediaConvert operation may not make it ("" when it may). CreateJob needs
    mediaconvert:CreateJob on the job and on the queue it names, and iam:PassRole on the role it hands over."""
    if not _state["enabled"]:
        return ""
    authorization = headers.get("Authorization") or headers.get("authorization") or ""
    access_key = authorization.split("Credential=", 1)[1].split("/", 1)[0] if "Credential=" in authorization else None
    if access_key == ADMIN_ACCESS_KEY:
        return ""
    token = headers.get("X-Amz-Security-Token") or headers.get("x-amz-security-token")
    caller = caller_for(account, access_key, token) if access_key else None
    if caller is None:
        return "The security token included in the request is invalid"
    prefix = f"arn:aws:mediaconvert:{region}:{account}"
    queue = str(params.get("Queue") or "Default")
    queue_arn = queue if queue.startswith("arn:") else f"{prefix}:queues/{queue}"
    job = f"{prefix}:jobs/{params.get('Id', '*')}"
    needed = {
        "CreateJob": [
            Request("mediaconvert:CreateJob", (job, queue_arn)),
            Request(
                "iam:PassRole",
                (str(params.get("Role", "")),),
                {"iam:PassedToService": "mediaconvert.amazonaws.com"},
            ),
        ],
        "GetJob": [Request("mediaconvert:GetJob", (job,))],
        "CancelJob": [Request("mediaconvert:CancelJob", (job,))],
    }.get(operation, [Request(f"mediaconvert:{operation}", ("*",))])
    policies = role_policies(account, caller.role_name)
    for request in needed:
        decision = decide(caller.principal, request, policies)
        if not decision.allowed:
            target = ", ".join(request.resources)
            return f"User: {caller.arn} is not authorized to perform: {request.action} on resource: {target}"
    return ""


# --- deliveries by services -----------------------------------------------------------------------------------------


def queue_admits(account: str, region: str, queue_name: str, service: str, source_arn: str) -> Decision:
    """Whether a queue's policy lets `service` send to it on behalf of `source_arn` (local delivery queues, which stand
    in for Lambda targets, admit everything: the function's own permission is checked when it is invoked)."""
    if queue_name.startswith(DELIVERY_QUEUE_PREFIX):
        return Decision(True)
    from moto.sqs.models import sqs_backends

    try:
        queue = sqs_backends[account][region].get_queue(queue_name)
    except Exception:  # a queue that does not exist: the service has nowhere to deliver
        return Decision(False, f"the queue {queue_name} does not exist")
    request = Request(
        "sqs:SendMessage", (queue.queue_arn,), {"aws:SourceArn": source_arn, "aws:SourceAccount": account}
    )
    return decide(Principal(account=account, service=service), request, resource_policy=queue.policy)


def topic_admits(account: str, region: str, topic_arn: str, service: str, source_arn: str) -> Decision:
    """Whether a topic's policy lets `service` publish to it on behalf of `source_arn`."""
    try:
        policy = _topic(account, region, topic_arn).policy
    except Exception:  # a topic that does not exist: the service has nowhere to deliver
        return Decision(False, f"the topic {topic_arn} does not exist")
    request = Request("sns:Publish", (topic_arn,), {"aws:SourceArn": source_arn, "aws:SourceAccount": account})
    return decide(Principal(account=account, service=service), request, resource_policy=policy)


def _patch_s3_notifications() -> None:
    from moto.s3 import notifications

    if getattr(notifications.send_event, "_local_permissions", False):
        return
    send_event, send_sqs, send_sns = (
        notifications.send_event,
        notifications._send_sqs_message,
        notifications._send_sns_message,
    )

    def send_event_from_bucket(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        _delivering.bucket = bucket.arn
        try:
            send_event(account_id, event_name, bucket, key)
        finally:
            _delivering.bucket = None

    def checked(send: Callable[[str, Any, str, str], None], admits: Callable[..., Decision]) -> Callable[..., None]:
        """S3's delivery to a queue or topic, made only if its policy admits S3 from the bucket."""

        def deliver(account_id: str, event_body: Any, destination: str, region_name: str) -> None:
            if _state["enabled"]:
                source = getattr(_delivering, "bucket", None) or ""
                decision = admits(account_id, region_name, destination, "s3.amazonaws.com", source)
                if not decision.allowed:
                    refuse("s3.amazonaws.com", source, destination, decision.reason)
                    return
            send(account_id, event_body, destination, region_name)

        return deliver

    send_event_from_bucket._local_permissions = True  # type: ignore[attr-defined]
    notifications.send_event = send_event_from_bucket  # type: ignore[assignment]
    notifications._send_sqs_message = checked(send_sqs, queue_admits)  # type: ignore[assignment]
    notifications._send_sns_message = checked(send_sns, topic_admits)  # type: ignore[assignment]


def _patch_sns_subscriptions() -> None:
    from moto.sns.models import Subscription

    original = Subscription.publish
    if getattr(original, "_local_permissions", False):
        return

    def publish(self: Subscription, message: str, message_id: str, *args: Any, **kwargs: Any) -> None:
        if self.protocol == "sqs" and _state["enabled"]:
            matcher = self._filter_policy_matcher
            attributes = kwargs.get("message_attributes", args[1] if len(args) > 1 else None)
            if matcher is None or matcher.matches(attributes, message):
                queue_name, region = self.endpoint.split(":")[-1], self.endpoint.split(":")[3]
                decision = queue_admits(self.account_id, region, queue_name, "sns.amazonaws.com", self.topic.arn)
                if not decision.allowed:
                    refuse("sns.amazonaws.com", self.topic.arn, self.endpoint, decision.reason)
                    return
        original(self, message, message_id, *args, **kwargs)

    publish._local_permissions = True  # type: ignore[attr-defined]
    Subscription.publish = publish  # type: ignore[method-assign]


def send_to_dead_letter_queue(
    account: str,
    region: str,
    *,
    dead_letter_arn: str,
    rule_arn: str,
    target_arn: str,
    body: str,
    code: str,
    message: str,
) -> None:
    """EventBridge's DLQ delivery: the event, with why it failed, if the DLQ's own policy admits EventBridge."""
    from moto.sqs.models import sqs_backends

    queue_name = dead_letter_arn.rsplit(":", 1)[-1]
    decision = queue_admits(account, region, queue_name, "events.amazonaws.com", rule_arn)
    if not decision.allowed:
        refuse("events.amazonaws.com", rule_arn, dead_letter_arn, f"dead-letter queue: {decision.reason}")
        return
    attributes = {"RULE_ARN": rule_arn, "TARGET_ARN": target_arn, "ERROR_CODE": code, "ERROR_MESSAGE": message}
    sqs_backends[account][region].send_message(
        queue_name,
        body,
        message_attributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )


def _patch_eventbridge_queue_targets() -> None:
    from moto.events.models import Rule

    original = Rule._send_to_sqs_queue
    if getattr(original, "_local_permissions", False):
        return

    def send_to_sqs_queue(self: Rule, resource_id: str, event: dict[str, Any], group_id: str | None = None) -> None:
        if not _state["enabled"]:
            original(self, resource_id, event, group_id)
            return
        decision = queue_admits(self.account_id, self.region_name, resource_id, "events.amazonaws.com", self.arn)
        if decision.allowed:
            original(self, resource_id, event, group_id)
            return
        target = next((t for t in self.targets if t["Arn"].rsplit(":", 1)[-1] == resource_id), {})
        refuse("events.amazonaws.com", self.arn, target.get("Arn", resource_id), decision.reason)
        dead_letter_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
        if dead_letter_arn:  # permission errors are not retried: straight to the DLQ
            send_to_dead_letter_queue(
                self.account_id,
                self.region_name,
                dead_letter_arn=dead_letter_arn,
                rule_arn=self.arn,
                target_arn=target["Arn"],
                body=json.dumps(event, default=str),
                code="NO_PERMISSIONS",
                message=decision.reason,
            )

    send_to_sqs_queue._local_permissions = True  # type: ignore[attr-defined]
    Rule._send_to_sqs_queue = send_to_sqs_queue  # type: ignore[method-assign]


def install() -> None:
    """Replaces moto's authorization hook and wraps its deliveries; inert until `enable()`. Idempotent."""
    from moto.core.authorization import ActionAuthenticatorMixin

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize  # type: ignore[method-assign,assignment]
    _patch_s3_notifications()
    _patch_sns_subscriptions()
    _patch_eventbridge_queue_targets()
