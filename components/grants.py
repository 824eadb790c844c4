"""Grants as components write them (ARNs may still be Pulumi Inputs) and the ARN patterns they name.

policies.py builds the documents from plain strings; this module resolves the Inputs first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi import Input, Output

from components import policies


@dataclass(frozen=True)
class Grant:
    """Named IAM actions on named resources (no wildcards; X-Ray and the own log group are added for you)."""

    actions: tuple[str, ...]
    """IAM actions, e.g. `("s3:GetObject",)`."""
    resources: tuple[Input[str], ...]
    """ARNs the actions apply to."""
    conditions: Mapping[str, Any] = field(default_factory=dict)
    """Optional IAM condition block with plain values."""


def resolve_grants(grants: Sequence[Grant]) -> Output[list[policies.ResolvedGrant]]:
    """The grants once every resource ARN is known, in order, for the policies.py document builders."""
    return Output.all(*[Output.all(*g.resources) for g in grants]).apply(
        lambda arns: [
            policies.ResolvedGrant(tuple(g.actions), tuple(res), dict(g.conditions))
            for g, res in zip(grants, arns, strict=True)
        ]
    )


def objects_under(bucket_arn: Input[str], prefix: str, suffix: str = "") -> Output[str]:
    """ARN of every object under `prefix` in a bucket, or only those ending in `suffix` (policies.object_arns)."""
    return Output.from_input(bucket_arn).apply(lambda arn: policies.object_arns(arn, prefix, suffix))


def index_arn(table_arn: Input[str], index_name: str) -> Output[str]:
    """ARN of a DynamoDB table's index: Query on an index is authorised against it, not against the table."""
    return Output.concat(table_arn, "/index/", index_name)
