"""Where moto diverges from AWS in a way the program depends on, the local cloud corrects moto, not the program.

Bucket policies: moto evaluates a bucket policy's conditions without any request context and supports only
`StringEquals`; every other operator counts as satisfied, so a conditional Deny (the usual TLS-only statement
`Bool aws:SecureTransport false`) denies every request. Here statements are evaluated with IAM's rules for the
common operators, against the context the local endpoint stands for (AWS endpoints are HTTPS): a key that is
absent satisfies only negated operators, `...IfExists` and `Null: true`, as in IAM.

Presigned POST: moto stores whatever a form sends; S3 checks the form against its signed policy (expiration,
every condition, no unlisted fields), so a client that breaks the policy is refused locally as it is in AWS.

CopyObject: moto honours `x-amz-copy-source-if-none-match` but ignores `x-amz-copy-source-if-match`; S3 refuses
the copy with 412 PreconditionFailed when the source's ETag differs (the submit function relies on it).

S3 event notifications: S3 URL-encodes the object key but keeps `/`; moto encodes `/` as `%2F` too, which a
consumer that (wrongly) reads the key raw would only trip over locally.

EventBridge: moto's default target input (no InputTransformer) drops the event's `account` field, which every
EventBridge event carries and typed consumers (Powertools' EventBridgeModel) require.

DynamoDB: each request is atomic in DynamoDB; moto's backend is not, and the server runs requests on many threads. A
conditional write checks its condition and then writes, so two can both pass a check only one should; a transaction
applies its items one by one and, when one fails, restores a copy of every table it touches, erasing what other
requests wrote meanwhile. Each DynamoDB request therefore runs under one lock.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from local.permissions.access import ENDPOINT_CONTEXT, bucket_policy_permission

log = logging.getLogger("local.moto")
_dynamodb_requests = threading.RLock()
_s3_notifications_paused = threading.Event()


def evaluate_bucket_policies_like_iam() -> None:
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: FakeBucket, action: str, resource: str) -> PermissionResult:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        verdict = bucket_policy_permission(self.policy.decode(), action, resource, ENDPOINT_CONTEXT)
        return PermissionResult[verdict]

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


# Form fields S3 does not require a policy condition for.
_UNSIGNED_FIELDS = frozenset({"file", "policy", "signature", "awsaccesskeyid", "x-amz-signature"})


class PolicyViolation(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def check_post_policy(policy_b64: str, fields: dict[str, str], bucket: str, size: int, now: datetime) -> None:
    """Raises PolicyViolation where S3 would refuse the form: expired, a condition unmet, an unlisted field."""
    try:
        policy = json.loads(base64.b64decode(policy_b64))
    except (binascii.Error, ValueError) as err:
        raise PolicyViolation(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from err
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    if expiration <= now:
        raise PolicyViolation(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    values = {k.lower(): v for k, v in fields.items()} | {"bucket": bucket}
    covered: set[str] = set()
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            ((name, expected),) = condition.items()
            operator, field = "eq", name.lower()
        elif condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if size > high:
                raise PolicyViolation(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
            if size < low:
                raise PolicyViolation(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum size")
            continue
        else:
            operator, field, expected = condition[0].lower(), condition[1].lstrip("$").lower(), condition[2]
        covered.add(field)
        actual = values.get(field, "")
        holds = actual == expected if operator == "eq" else actual.startswith(str(expected))
        if not holds:
            failed = json.dumps(condition if isinstance(condition, list) else [operator, f"${field}", expected])
            raise PolicyViolation(
                403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {failed}"
            )
    extra = sorted(
        f for f in values if f not in covered | _UNSIGNED_FIELDS | {"bucket"} and not f.startswith("x-ignore-")
    )
    if extra:
        raise PolicyViolation(403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {extra[0]}")


def enforce_presigned_post_policies() -> None:
    from moto.s3.responses import S3Response

    original = S3Response._bucket_response_post
    if getattr(original, "_local_policy_check", False):
        return

    def bucket_response_post(self: S3Response, request: Any, bucket_name: str) -> Any:
        fields = {k: v for k, v in (getattr(self, "form_data", None) or {}).items()}
        if "policy" in fields and "key" in fields and "delete" not in fields:
            try:
                check_post_policy(fields["policy"], fields, bucket_name, len(self.body or b""), datetime.now(UTC))
            except PolicyViolation as err:
                body = f"<Error><Code>{err.code}</Code><Message>{escape(str(err))}</Message></Error>"
                return err.status, {"Content-Type": "application/xml"}, body
        return original(self, request, bucket_name)

    bucket_response_post._local_policy_check = True  # type: ignore[attr-defined]
    S3Response._bucket_response_post = bucket_response_post  # type: ignore[method-assign]


def honour_copy_source_if_match() -> None:
    from urllib.parse import parse_qs, unquote, urlparse

    from moto.s3.exceptions import PreconditionFailed
    from moto.s3.responses import S3Response

    original = S3Response.copy_object
    if getattr(original, "_local_if_match", False):
        return

    def copy_object(self: S3Response) -> Any:
        wanted = self.headers.get("x-amz-copy-source-if-match")
        if wanted:
            source = self.headers.get("x-amz-copy-source")
            source = source.decode("utf-8") if isinstance(source, bytes) else source
            parsed = urlparse(source)
            bucket, key = unquote(parsed.path).lstrip("/").split("/", 1)
            version = parse_qs(parsed.query).get("versionId", [None])[0]
            found = self.backend.get_object(bucket, key, version_id=version)
            if found is not None and wanted.strip('"') != found.etag.strip('"'):
                raise PreconditionFailed(failed_condition="x-amz-copy-source-If-Match")
        return original(self)

    copy_object._local_if_match = True  # type: ignore[attr-defined]
    S3Response.copy_object = copy_object  # type: ignore[method-assign]


def encode_notification_keys_like_s3() -> None:
    from urllib.parse import quote_plus

    from moto.s3 import notifications

    notifications.quote_plus = lambda key: quote_plus(key, safe="/")  # type: ignore[attr-defined]


def deliver_whole_eventbridge_events() -> None:
    from moto.events.utils import EventTemplateParser

    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
            '"version": "0",', '"version": "0", "account": "<account>",'
        )


def serialize_dynamodb_requests() -> None:
    """One DynamoDB request at a time, so each is atomic as in DynamoDB (conditional writes, transactions)."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "_local_serialized", False):
        return

    def call_action(self: DynamoHandler) -> Any:
        with _dynamodb_requests:
            return original(self)

    call_action._local_serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def pausable_s3_notifications() -> None:
    from moto.s3 import notifications

    original = notifications.send_event
    if getattr(original, "_local_pausable", False):
        return

    def send_event(*args: Any, **kwargs: Any) -> None:
        if not _s3_notifications_paused.is_set():
            original(*args, **kwargs)

    send_event._local_pausable = True  # type: ignore[attr-defined]
    notifications.send_event = send_event  # type: ignore[assignment]


@contextmanager
def s3_notifications_paused() -> Iterator[None]:
    """No S3 event notification is sent meanwhile, from any thread."""
    _s3_notifications_paused.set()
    try:
        yield
    finally:
        _s3_notifications_paused.clear()


def apply_all() -> None:
    """Every correction above; idempotent."""
    evaluate_bucket_policies_like_iam()
    enforce_presigned_post_policies()
    honour_copy_source_if_match()
    encode_notification_keys_like_s3()
    deliver_whole_eventbridge_events()
    serialize_dynamodb_requests()
    pausable_s3_notifications()
