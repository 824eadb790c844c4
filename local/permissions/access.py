"""IAM's policy evaluation, for the local cloud: which requests a role's identity policies allow, and which deliveries
a queue's, topic's, key's or function's resource policy admits from a service.

The rules are IAM's for one account: an explicit Deny in any applicable statement wins; otherwise a request is allowed
when an identity policy allows it, or a resource policy allows that very principal; a service principal (S3, SNS,
EventBridge, API Gateway delivering on the account's behalf) is allowed only by the resource policy. Statements match
on Action/NotAction, Resource/NotResource (`*` and `?` wildcards) and Principal, and conditions are evaluated against
the request's context keys: a key that is absent satisfies only negated operators, `...IfExists` and `Null: true`.
A KMS key's policy must admit the caller (directly, or the account root, which delegates to IAM policies).
Plain functions over plain dicts, unit-tested without moto.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

log = logging.getLogger("local.permissions.access")

Policy = Mapping[str, Any]
# What every request to the local endpoint stands for: AWS endpoints are HTTPS.
ENDPOINT_CONTEXT: Mapping[str, str] = {"aws:SecureTransport": "true"}


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@cache
def _wildcard(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM's wildcards: `*` any run of characters, `?` any one; nothing else is special (no `[...]` classes)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(pattern: str, value: str) -> bool:
    return _wildcard(pattern).fullmatch(value) is not None


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def holds(expected: str, actual: str) -> bool:
        try:
            return compare(float(actual), float(expected))
        except ValueError:  # IAM: a value that is not a number does not match
            return False

    return holds


_POSITIVE: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda expected, actual: actual == expected,
    "StringEqualsIgnoreCase": lambda expected, actual: actual.lower() == expected.lower(),
    "StringLike": _like,
    "Bool": lambda expected, actual: actual.lower() == expected.lower(),
    "ArnEquals": _like,  # IAM applies the wildcards of ARN patterns for ArnEquals too
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


def condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, str]) -> bool:
    """One condition of a statement, with IAM's semantics for absent keys (context keys are lower-case)."""
    for_all_values = operator.startswith("ForAllValues:")
    op = operator.removeprefix("ForAnyValue:").removeprefix("ForAllValues:")
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    if op not in _POSITIVE and op not in _NEGATED and op != "Null":
        raise UnsupportedCondition(operator)
    actual = context.get(key.lower())
    if op == "Null":
        return (actual is None) == (str(expected).lower() == "true")
    if actual is None:
        return if_exists or for_all_values or op in _NEGATED
    if op in _NEGATED:
        return not any(_POSITIVE[_NEGATED[op]](e, actual) for e in _as_list(expected))
    return any(_POSITIVE[op](e, actual) for e in _as_list(expected))


def _matches(patterns: Any, value: str) -> bool:
    return any(_wildcard(p).fullmatch(value) for p in _as_list(patterns))


def _action_matches(patterns: Any, action: str) -> bool:
    return any(_wildcard(p, ignore_case=True).fullmatch(action) for p in _as_list(patterns))  # actions ignore case


def statement_applies(statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]) -> bool:
    """Action, resource and conditions of one statement (principals are the caller's business)."""
    if "Action" in statement and not _action_matches(statement["Action"], action):
        return False
    if "NotAction" in statement and _action_matches(statement["NotAction"], action):
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


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a role session (the role's ARN and the session's) or an AWS service acting for the
    account."""

    account: str
    role_arn: str | None = None
    service: str | None = None
    session_arn: str | None = None

    def _listed(self, principal: Any) -> bool:
        if principal == "*":
            return True
        if not isinstance(principal, Mapping):
            return False
        if self.service is not None:
            return self.service in _as_list(principal.get("Service", []))
        aws = set(_as_list(principal.get("AWS", [])))
        return "*" in aws or bool(aws & {self.role_arn, self.session_arn} - {None})

    def named_by(self, statement: Mapping[str, Any]) -> bool:
        """Whether the statement's Principal (or NotPrincipal) takes in this principal itself, not merely its
        account; `*`, whether bare or as `{"AWS": "*"}`, is everyone."""
        if "NotPrincipal" in statement:
            return not self._listed(statement["NotPrincipal"]) and not self.account_named_by(
                {"Principal": statement["NotPrincipal"]}
            )
        return self._listed(statement.get("Principal"))

    def account_named_by(self, statement: Mapping[str, Any]) -> bool:
        """Whether the statement names this principal's account root, which delegates to its IAM policies."""
        principal = statement.get("Principal")
        if not isinstance(principal, Mapping) or self.service is not None:
            return False
        roots = {self.account, f"arn:aws:iam::{self.account}:root"}
        return bool(roots & set(_as_list(principal.get("AWS", []))))

    @property
    def label(self) -> str:
        return self.service or self.role_arn or self.account


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def _statements(policy: Policy | str | None) -> list[Mapping[str, Any]]:
    if policy is None or policy == "":
        return []
    document = json.loads(policy) if isinstance(policy, str) else policy
    statements = document.get("Statement", [])
    return list(statements) if isinstance(statements, list) else [statements]


def _verdicts(
    statements: Iterable[Mapping[str, Any]], action: str, resource: str, context: Mapping[str, str]
) -> set[str]:
    """Effects of the statements that apply. A condition the local evaluation does not know fails safe: its Allow
    does not apply, its Deny does."""
    effects = set()
    for statement in statements:
        try:
            if statement_applies(statement, action, resource, context):
                effects.add(str(statement.get("Effect")))
        except UnsupportedCondition as err:
            log.warning("policy statement %s: condition %s is not evaluated locally", statement.get("Sid"), err)
            if statement.get("Effect") == "Deny":
                effects.add("Deny")
    return effects


@dataclass(frozen=True)
class Request:
    """One action on one or more resources (each must be allowed), with its condition context."""

    action: str
    resources: tuple[str, ...]
    context: Mapping[str, str] = field(default_factory=dict)


def decide(
    principal: Principal,
    request: Request,
    identity_policies: Iterable[Policy | str] = (),
    resource_policy: Policy | str | None = None,
    key_policy: Policy | str | None = None,
) -> Decision:
    """IAM's decision for a principal in the resource's own account."""
    identity = [s for p in identity_policies for s in _statements(p)]
    on_resource = _statements(resource_policy)
    on_key = _statements(key_policy)
    context = {k.lower(): v for k, v in request.context.items()}
    for resource in request.resources:
        named = [s for s in on_resource if principal.named_by(s)]
        denied_by_resource = [s for s in on_resource if principal.named_by(s) or principal.account_named_by(s)]
        if "Deny" in _verdicts(identity, request.action, resource, context) | _verdicts(
            denied_by_resource, request.action, resource, context
        ):
            return Decision(False, f"an explicit deny in a policy applies to {request.action} on {resource}")
        if key_policy is not None:
            key_named = [s for s in on_key if principal.named_by(s)]
            key_delegated = [s for s in on_key if principal.account_named_by(s)]
            if "Deny" in _verdicts(key_named + key_delegated, request.action, resource, context):
                return Decision(False, f"the key policy denies {request.action}")
            directly = "Allow" in _verdicts(key_named, request.action, resource, context)
            delegated = "Allow" in _verdicts(key_delegated, request.action, resource, context)
            if not directly and not (delegated and "Allow" in _verdicts(identity, request.action, resource, context)):
                return Decision(False, f"the key policy does not allow {principal.label} to {request.action}")
            continue
        allowed = "Allow" in _verdicts(named, request.action, resource, context)
        if principal.service is None:
            allowed = allowed or "Allow" in _verdicts(identity, request.action, resource, context)
        if not allowed:
            where = "resource-based policy" if principal.service else "identity-based policy"
            return Decision(False, f"no {where} allows the {request.action} action on {resource}")
    return Decision(True)


def bucket_policy_permission(policy: str, action: str, resource: str, context: Mapping[str, str]) -> str:
    """`DENIED`, `PERMITTED` or `NEUTRAL` for a request moto authorizes by the bucket policy alone (any caller)."""
    effects = _verdicts(_statements(policy), action, resource, {k.lower(): v for k, v in context.items()})
    if "Deny" in effects:
        return "DENIED"
    return "PERMITTED" if "Allow" in effects else "NEUTRAL"


def lambda_permission_allows(
    permissions: Iterable[Mapping[str, Any]], service: str, source_arn: str | None, source_account: str | None
) -> bool:
    """Whether a function's resource policy (its `aws:lambda/permission:Permission` resources' inputs) lets a
    service invoke it for this source: the principal, `source_arn` (wildcards allowed) and `source_account`."""
    for permission in permissions:
        if permission.get("action") not in ("lambda:InvokeFunction", "lambda:*"):
            continue
        if permission.get("principal") != service:
            continue
        expected_arn = permission.get("sourceArn")
        if expected_arn and (source_arn is None or not _like(expected_arn, source_arn)):
            continue
        expected_account = permission.get("sourceAccount")
        if expected_account and expected_account != source_account:
            continue
        return True
    return False
