"""Where moto diverges from AWS in a way the program depends on, the local cloud corrects moto, not the program.

Bucket policies: moto evaluates a bucket policy's conditions without any request context and supports only
`StringEquals`; every other operator counts as satisfied, so a conditional Deny (the usual TLS-only statement
`Bool aws:SecureTransport false`) denies every request. Here statements are evaluated with IAM's rules for the
common operators, against the context the local endpoint stands for (AWS endpoints are HTTPS): a key that is
absent satisfies only negated operators, `...IfExists` and `Null: true`, as in IAM.

EventBridge: moto's default target input (no InputTransformer) drops the event's `account` field, which every
EventBridge event carries and typed consumers (Powertools' EventBridgeModel) require.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("local.moto")

REQUEST_CONTEXT: dict[str, str] = {"aws:securetransport": "true"}


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _like(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    return lambda expected, actual: compare(float(actual), float(expected))


_POSITIVE: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda expected, actual: actual == expected,
    "StringEqualsIgnoreCase": lambda expected, actual: actual.lower() == expected.lower(),
    "StringLike": _like,
    "Bool": lambda expected, actual: actual.lower() == expected.lower(),
    "ArnEquals": lambda expected, actual: actual == expected,
    "ArnLike": _like,
    "NumericEquals": _numeric(lambda a, e: a == e),
    "NumericLessThan": _numeric(lambda a, e: a < e),
    "NumericLessThanEquals": _numeric(lambda a, e: a <= e),
    "NumericGreaterThan": _numeric(lambda a, e: a > e),
    "NumericGreaterThanEquals": _numeric(lambda a, e: a >= e),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}


class UnsupportedCondition(ValueError):
    pass


def condition_holds(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    """One condition of a statement, with IAM's semantics for absent keys."""
    op = operator.removeprefix("ForAnyValue:").removeprefix("ForAllValues:")
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    actual = context.get(key.lower())
    if op == "Null":
        return (actual is None) == (str(expected).lower() == "true")
    if actual is None:
        return if_exists or op in _NEGATED
    if op in _NEGATED:
        return not any(_POSITIVE[_NEGATED[op]](e, actual) for e in _as_list(expected))
    if op not in _POSITIVE:
        raise UnsupportedCondition(operator)
    return any(_POSITIVE[op](e, actual) for e in _as_list(expected))


def _matches(patterns: Any, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in _as_list(patterns))


def statement_applies(statement: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    if "Action" in statement and not _matches(statement["Action"], action):
        return False
    if "NotAction" in statement and _matches(statement["NotAction"], action):
        return False
    if "Resource" in statement and not _matches(statement["Resource"], resource):
        return False
    if "NotResource" in statement and _matches(statement["NotResource"], resource):
        return False
    for operator, conditions in (statement.get("Condition") or {}).items():
        for key, expected in conditions.items():
            if not condition_holds(operator, key, expected, context):
                return False
    return True


def bucket_policy_permission(policy: str, action: str, resource: str, context: dict[str, str]) -> str:
    """`DENIED`, `PERMITTED` or `NEUTRAL`, as moto's PermissionResult names them; an explicit Deny wins."""
    statements = json.loads(policy).get("Statement", [])
    permitted = False
    for statement in statements if isinstance(statements, list) else [statements]:
        try:
            applies = statement_applies(statement, action, resource, context)
        except UnsupportedCondition as err:
            log.warning("bucket policy statement %s: condition %s not evaluated locally", statement.get("Sid"), err)
            applies = False
        if applies and statement.get("Effect") == "Deny":
            return "DENIED"
        permitted = permitted or (applies and statement.get("Effect") == "Allow")
    return "PERMITTED" if permitted else "NEUTRAL"


def evaluate_bucket_policies_like_iam() -> None:
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: FakeBucket, action: str, resource: str) -> PermissionResult:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        verdict = bucket_policy_permission(self.policy.decode(), action, resource, REQUEST_CONTEXT)
        return PermissionResult[verdict]

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def deliver_whole_eventbridge_events() -> None:
    from moto.events.utils import EventTemplateParser

    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
            '"version": "0",', '"version": "0", "account": "<account>",'
        )


def apply_all() -> None:
    """Every correction above; idempotent."""
    evaluate_bucket_policies_like_iam()
    deliver_whole_eventbridge_events()
