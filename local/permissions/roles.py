"""Who calls the emulator, and as what: each function's role, assumed as Lambda assumes it, and the policies that
apply to a caller. Reads the in-process moto backends the local cloud's server runs on.

The local cloud's own control plane (creating the program's resources, emulating the services' side of deliveries,
tests injecting faults) signs with the emulator's admin key and is not subject to policies; everything a function or
MediaConvert does is signed with temporary credentials of its role, and evaluated (`access.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from local.permissions.access import Principal, Request, decide

# The local cloud's control plane signs with these; no policy applies to them.
ADMIN_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}
ADMIN_ACCESS_KEY = ADMIN_CREDENTIALS["AWS_ACCESS_KEY_ID"]
PARTITION = "aws"
SESSION_SECONDS = 3600  # the role's default maximum session duration


class RoleNotAssumable(RuntimeError):
    """The role's trust policy does not let the service assume it (Lambda refuses to create such a function)."""


@dataclass(frozen=True)
class Caller:
    """A role session, as IAM names it in an AccessDenied message."""

    account: str
    role_name: str
    session: str

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.role_name}"

    @property
    def arn(self) -> str:
        return f"arn:aws:sts::{self.account}:assumed-role/{self.role_name}/{self.session}"

    @property
    def principal(self) -> Principal:
        return Principal(account=self.account, role_arn=self.role_arn, session_arn=self.arn)


def _iam(account: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account][PARTITION]


def caller_for(account: str, access_key: str, session_token: str | None) -> Caller | None:
    """The role session these credentials belong to; None for unknown keys or a wrong session token."""
    from moto.sts.models import sts_backends

    for session in sts_backends[account][PARTITION].assumed_roles:
        if session.access_key_id == access_key:
            if session_token != session.session_token:
                return None
            return Caller(account, session.role_arn.rsplit("/", 1)[-1], session.session_name)
    return None


def role_policies(account: str, role_name: str) -> list[str]:
    """The role's inline policies and the default versions of its attached managed policies, as JSON documents."""
    iam = _iam(account)
    documents = []
    for name in iam.list_role_policies(role_name):
        _, document = iam.get_role_policy(role_name, name)
        documents.append(document if isinstance(document, str) else json.dumps(document))
    attached, _ = iam.list_attached_role_policies(role_name)
    for policy in attached:
        version = next(v for v in policy.versions if v.is_default)
        documents.append(version.document if isinstance(version.document, str) else json.dumps(version.document))
    return documents


def trust_allows(account: str, role_arn: str, service: str) -> bool:
    role = _iam(account).get_role_by_arn(role_arn)
    service_principal = Principal(account=account, service=service)
    request = Request("sts:AssumeRole", (role_arn,))
    statements = json.loads(role.assume_role_policy_document).get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        # Trust policies name no Resource: they apply to the role itself.
        if (
            service_principal.named_by(statement)
            and decide(
                service_principal, request, resource_policy={"Statement": [{**statement, "Resource": role_arn}]}
            ).allowed
        ):
            return True
    return False


def assume_role_for(sts: Any, account: str, role_arn: str, service: str, session: str) -> dict[str, str]:
    """Temporary credentials of `role_arn` for `service` (e.g. lambda.amazonaws.com), as the environment variables
    Lambda sets; RoleNotAssumable when the role does not trust that service."""
    if not trust_allows(account, role_arn, service):
        raise RoleNotAssumable(
            f"the role {role_arn} cannot be assumed by {service}: its trust policy does not allow it"
        )
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=session[:64], DurationSeconds=SESSION_SECONDS)[
        "Credentials"
    ]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }
