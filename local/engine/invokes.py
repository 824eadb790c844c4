"""Answers to the program's provider function calls (invokes) with local values; unknown tokens are errors."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

Answer = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownInvoke(LookupError):
    """The program called a provider function the local engine has no answer for."""


def _policy_statement(spec: dict[str, Any]) -> dict[str, Any]:
    def one_or_many(values: list[str]) -> str | list[str]:
        return values[0] if len(values) == 1 else sorted(values)

    statement: dict[str, Any] = {}
    if spec.get("sid"):
        statement["Sid"] = spec["sid"]
    statement["Effect"] = spec.get("effect") or "Allow"
    for key, api in (("actions", "Action"), ("notActions", "NotAction")):
        if spec.get(key):
            statement[api] = one_or_many(spec[key])
    for key, api in (("resources", "Resource"), ("notResources", "NotResource")):
        if spec.get(key):
            statement[api] = one_or_many(spec[key])
    for key, api in (("principals", "Principal"), ("notPrincipals", "NotPrincipal")):
        if spec.get(key):
            principals: dict[str, Any] = {}
            for principal in spec[key]:
                principals[principal["type"]] = one_or_many(principal["identifiers"])
            statement[api] = "*" if principals == {"*": "*"} else principals
    if spec.get("conditions"):
        conditions: dict[str, dict[str, Any]] = {}
        for condition in spec["conditions"]:
            conditions.setdefault(condition["test"], {})[condition["variable"]] = one_or_many(condition["values"])
        statement["Condition"] = conditions
    return statement


class InvokeAnswers:
    """The provider functions a program typically calls, answered for the local account and region."""

    def __init__(self, account_id: str, region: str) -> None:
        self._account = account_id
        self._region = region
        self._answers: dict[str, Answer] = {
            "aws:index/getCallerIdentity:getCallerIdentity": self._caller_identity,
            "aws:index/getRegion:getRegion": self._region_info,
            "aws:index/getPartition:getPartition": self._partition,
            "aws:ecr/getAuthorizationToken:getAuthorizationToken": self._ecr_token,
            "aws:iam/getPolicyDocument:getPolicyDocument": self._policy_document,
        }

    def answer(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
        if token not in self._answers:
            raise UnknownInvoke(f"the local engine has no answer for invoke {token} (args {sorted(args)})")
        return self._answers[token](args)

    def _caller_identity(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "accountId": self._account,
            "arn": f"arn:aws:iam::{self._account}:user/local",
            "userId": "AIDALOCALUSER",
            "id": self._account,
        }

    def _region_info(self, args: dict[str, Any]) -> dict[str, Any]:
        region = args.get("region") or args.get("name") or self._region
        return {
            "name": region,
            "region": region,
            "id": region,
            "description": "local",
            "endpoint": f"ec2.{region}.amazonaws.com",
        }

    def _partition(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws", "id": "aws"}

    def _ecr_token(self, args: dict[str, Any]) -> dict[str, Any]:
        registry = f"{self._account}.dkr.ecr.{self._region}.amazonaws.com"
        return {
            "authorizationToken": base64.b64encode(b"AWS:local").decode(),
            "userName": "AWS",
            "password": "local",
            "proxyEndpoint": f"https://{registry}",
            "expiresAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 12 * 3600)),
            "id": self._region,
        }

    def _policy_document(self, args: dict[str, Any]) -> dict[str, Any]:
        document = {"Version": args.get("version") or "2012-10-17"}
        document["Statement"] = [_policy_statement(s) for s in args.get("statements") or []]  # type: ignore[assignment]
        return {
            "json": json.dumps(document, indent=2),
            "minifiedJson": json.dumps(document, separators=(",", ":")),
            "id": str(abs(hash(json.dumps(document, sort_keys=True)))),
        }
