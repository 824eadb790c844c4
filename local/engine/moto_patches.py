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

DynamoDB transactions: moto backs a TransactWriteItems up by deep-copying every table it names, whole, so that it can
roll back; with every request serialized, each upload (the api's usage transaction names the jobs table) then waits
for a copy of every job there is, and `POST /uploads` slows as jobs accumulate (seconds at a thousand jobs). Here a
transaction backs up only the items it names, and a cancelled one puts exactly those back, as before.

Three corrections are for speed only: on two CPUs the cloud's own work is taken from the encoders. moto's server
finds each request's service by listing its package folder from disk (`list_of_moto_modules`, about a millisecond per
request), and EventBridge builds a new JSONPath parser for every input path of every matched target. A profile of four
concurrent jobs put 13% and 7% of the cloud's request handling there. Both are now computed once. And moto writes a
DynamoDB answer by walking botocore's model of it, trying each of an attribute value's ten type names under several
spellings at every level: a GetItem of a job's record (5.6 kB, its history a list of maps) took 10 ms of the cloud's
CPU, and the pipeline and its callers read and write that record dozens of times per job. An item operation's answer
is already the wire's JSON (attribute values as {type: value}), so it is written with `json.dumps`, binary values in
base64 as the model would write them; any other answer, or one holding a value JSON cannot write, takes moto's way.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
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


@contextmanager
def dynamodb_requests_held() -> Iterator[None]:
    """No DynamoDB request runs meanwhile (one that is running finishes first)."""
    with _dynamodb_requests:
        yield


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


class _TablesByReference:
    """`copy` as moto's DynamoDB models see it: while a transaction runs, a deep copy of a whole table is the table
    itself (its backup is taken item by item instead); everything else is copied as usual."""

    active = False

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if self.active and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _item_slot(table: Any, key: dict[str, Any]) -> tuple[Any, Any] | None:
    """The (hash, range) of the item a transaction entry names, as moto keys its items; None when it names none."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if table.hash_key_attr not in key:
        return None
    range_attr = table.range_key_attr
    if table.has_range_key and range_attr not in key:
        return None
    return DynamoType(key[table.hash_key_attr]), DynamoType(key[range_attr]) if table.has_range_key else None


def _stored(table: Any, slot: tuple[Any, Any]) -> Any:
    hash_value, range_value = slot
    if table.has_range_key:
        return table.items[hash_value].get(range_value) if hash_value in table.items else None
    return table.items.get(hash_value)


def _restore(table: Any, slot: tuple[Any, Any], item: Any) -> None:
    hash_value, range_value = slot
    if table.has_range_key:
        if item is None:
            if hash_value in table.items:
                table.items[hash_value].pop(range_value, None)
        else:
            table.items[hash_value][range_value] = item
    elif item is None:
        table.items.pop(hash_value, None)
    else:
        table.items[hash_value] = item


def item_level_transaction_backups() -> None:
    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items
    if getattr(original, "_local_item_backups", False):
        return
    tables_by_reference = _TablesByReference()
    models.copy = tables_by_reference  # type: ignore[attr-defined]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backups: list[tuple[Any, tuple[Any, Any], Any]] = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            slot = _item_slot(table, op.get("Key") or op.get("Item") or {}) if table is not None else None
            if slot is not None:
                backups.append((table, slot, copy.deepcopy(_stored(table, slot))))
        tables_by_reference.active = True
        try:
            return original(self, transact_items)
        except Exception:
            for table, slot, item in reversed(backups):
                _restore(table, slot, item)
            raise
        finally:
            tables_by_reference.active = False

    transact_write_items._local_item_backups = True  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def list_moto_services_once() -> None:
    """moto's service folders, listed once: they are the installed package's and cannot change while it runs."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "_local_listed_once", False):
        return
    services = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return services

    list_of_moto_modules._local_listed_once = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]


def parse_event_input_paths_once() -> None:
    """EventBridge's input paths, parsed once per distinct path (moto imports `parse` inside each call, so the
    module attribute is what it finds). A parsed JSONPath is not changed by `find`."""
    from jsonpath_ng import ext

    if getattr(ext.parse, "_local_cached", False):
        return
    cached = functools.lru_cache(maxsize=256)(ext.parse)
    cached._local_cached = True  # type: ignore[attr-defined]
    ext.parse = cached


DYNAMODB_ITEM_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
)
"""Whose answers hold only items, keys, counts and consumed capacity: no timestamp, nothing the model renames."""
_DYNAMODB_JSON = "application/x-amz-json-1.0"


def _blob_as_base64(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} is not JSON")


def item_answer_json(result: Any) -> str | None:
    """A DynamoDB item operation's answer as the wire's JSON, or None when it holds what only moto's serializer
    writes (a None it would leave out, a set, a date)."""
    if not isinstance(result, dict) or any(value is None for value in result.values()):
        return None
    try:
        return json.dumps(result, default=_blob_as_base64, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def write_dynamodb_item_answers_as_json() -> None:
    from moto.dynamodb.responses import DynamoResult

    if getattr(DynamoResult.execute_result, "_local_json", False):
        return
    model_serialized = DynamoResult.execute_result

    @functools.wraps(model_serialized)
    def execute_result(self: DynamoResult, context: Any) -> Any:
        if context.operation_model.name in DYNAMODB_ITEM_OPERATIONS:
            body = item_answer_json(self.result)
            if body is not None:
                return 200, {"Content-Type": _DYNAMODB_JSON}, body
        return model_serialized(self, context)

    execute_result._local_json = True  # type: ignore[attr-defined]
    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]


def apply_all() -> None:
    """Every correction above; idempotent."""
    evaluate_bucket_policies_like_iam()
    enforce_presigned_post_policies()
    honour_copy_source_if_match()
    encode_notification_keys_like_s3()
    deliver_whole_eventbridge_events()
    serialize_dynamodb_requests()
    pausable_s3_notifications()
    item_level_transaction_backups()
    list_moto_services_once()
    parse_event_input_paths_once()
    write_dynamodb_item_answers_as_json()
