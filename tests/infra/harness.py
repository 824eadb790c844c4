"""Runs the whole Pulumi program under recording mocks and hands back what it declared."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import runpy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks, set_all_config, set_mocks
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import get_root_resource, set_root_resource

from tests.infra.stack_config import stack_config

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "media-pipeline"
STACK = "dev"
ACCOUNT = "123456789012"
REGION = "us-east-1"
# The committed stacks leave the issuer to their operator (the program refuses the placeholder); tests name one.
TEST_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool"
# The CDN signing key is a config secret only its operator holds: tests make their own, and pass it as a secret.
CDN_KEY = f"{PROJECT}:cdnPrivateKey"


@functools.cache
def signing_key_pem() -> str:
    """A CloudFront signing key (2048-bit RSA, PEM) made for this test process; never written anywhere."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class UnknownInvoke(AssertionError):
    """The program called a provider function these mocks do not model."""


@dataclass
class Recorded:
    """One resource the program registered: its type token, logical name, inputs and the mocked outputs."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str


def _suffix(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:7]


def _arn(service: str, resource: str, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


def _outputs(token: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Plausible physical ID and computed outputs for the resource types the program uses."""
    physical = str(inputs.get("name") or f"{name}-{_suffix(name)}")
    out: dict[str, Any] = {}
    if token == "aws:s3/bucket:Bucket":
        bucket = inputs.get("bucket") or physical
        regional = f"{bucket}.s3.{REGION}.amazonaws.com"
        return bucket, {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "id": bucket} | {
            "bucketRegionalDomainName": regional,
            "bucketDomainName": f"{bucket}.s3.amazonaws.com",
        }
    if token == "aws:cloudfront/distribution:Distribution":
        distribution_id = "E" + _suffix(name).upper()
        return distribution_id, {
            "arn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/{distribution_id}",
            "domainName": f"d{_suffix(name)}.cloudfront.net",
        }
    if token == "aws:cloudfront/publicKey:PublicKey":
        return "K" + _suffix(name).upper(), {}
    if token == "aws:secretsmanager/secret:Secret":
        arn = _arn("secretsmanager", f"secret:{physical}-AbCdEf")
        return arn, {"arn": arn}
    if token == "aws:sqs/queue:Queue":
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
        return url, {"name": physical, "arn": _arn("sqs", physical), "url": url}
    if token == "aws:sns/topic:Topic":
        arn = _arn("sns", physical)
        return arn, {"name": physical, "arn": arn}
    if token == "aws:iam/role:Role":
        return physical, {"name": physical, "arn": f"arn:aws:iam::{ACCOUNT}:role/{physical}"}
    if token == "aws:cloudwatch/logGroup:LogGroup":
        return physical, {"name": physical, "arn": _arn("logs", f"log-group:{physical}")}
    if token == "aws:lambda/function:Function":
        arn = _arn("lambda", f"function:{physical}")
        invoke = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"
        return physical, {"name": physical, "arn": arn, "invokeArn": invoke}
    if token == "aws:dynamodb/table:Table":
        return physical, {"name": physical, "arn": _arn("dynamodb", f"table/{physical}")}
    if token == "aws:cloudwatch/eventBus:EventBus":
        return physical, {"name": physical, "arn": _arn("events", f"event-bus/{physical}")}
    if token == "aws:cloudwatch/eventRule:EventRule":
        bus = inputs.get("eventBusName") or "default"
        path = f"rule/{physical}" if bus == "default" else f"rule/{bus}/{physical}"
        return physical, {"name": physical, "arn": _arn("events", path)}
    if token == "aws:ecr/repository:Repository":
        url = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{physical}"
        return physical, {"name": physical, "arn": _arn("ecr", f"repository/{physical}"), "registryId": ACCOUNT} | {
            "repositoryUrl": url
        }
    if token == "docker-build:index:Image":
        digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        return digest, {"digest": digest, "ref": f"{inputs['tags'][0]}@{digest}"}
    if token == "aws:mediaconvert/queue:Queue":
        return physical, {"name": physical, "arn": _arn("mediaconvert", f"queues/{physical}")}
    if token == "aws:apigatewayv2/api:Api":
        api_id = _suffix(name)
        return api_id, {
            "apiEndpoint": f"https://{api_id}.execute-api.{REGION}.amazonaws.com",
            "executionArn": _arn("execute-api", api_id),
            "arn": f"arn:aws:apigateway:{REGION}::/apis/{api_id}",
        }
    if token == "aws:apigatewayv2/stage:Stage":
        return physical, {"invokeUrl": f"https://{inputs['apiId']}.execute-api.{REGION}.amazonaws.com/"}
    if token.startswith("aws:"):
        service = token.split(":")[1].split("/", maxsplit=1)[0]
        out["arn"] = _arn(service, physical)
    return f"{name}-id", out


class RecordingMocks(Mocks):
    """Records every registration; answers only the invokes the program is known to make."""

    def __init__(self) -> None:
        self.resources: list[Recorded] = []
        self.calls: list[str] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        if not args.custom:  # component resources: recorded, nothing to compute
            self.resources.append(Recorded(args.typ, args.name, inputs, {}, ""))
            return "", {}
        physical_id, computed = _outputs(args.typ, args.name, inputs)
        outputs = {**inputs, **computed}
        self.resources.append(Recorded(args.typ, args.name, inputs, outputs, physical_id))
        return physical_id, outputs

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]  # the plain-dict form
        self.calls.append(args.token)
        if args.token == "aws:index/getRegion:getRegion":
            return {"id": REGION, "name": REGION, "region": REGION, "description": "US East (N. Virginia)"}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            identity = {"id": ACCOUNT, "accountId": ACCOUNT, "userId": "AIDATEST"}
            return {**identity, "arn": f"arn:aws:iam::{ACCOUNT}:user/test"}
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            registry = args.args.get("registryId", ACCOUNT)
            return {
                "id": REGION,
                "registryId": registry,
                "userName": "AWS",
                "password": "mock-password",
                "authorizationToken": "QVdTOm1vY2stcGFzc3dvcmQ=",
                "proxyEndpoint": f"https://{registry}.dkr.ecr.{REGION}.amazonaws.com",
                "expiresAt": "2030-01-01T00:00:00Z",
            }
        raise UnknownInvoke(f"the program called {args.token}, which these mocks do not answer")


class RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping the parents a registration's aliases name (mocks never see aliases)."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.alias_parents: dict[str, list[str]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        parents = [alias.spec.parentUrn for alias in request.aliases if alias.spec.parentUrn]
        if parents:
            self.alias_parents[response.urn] = parents
        return response


@dataclass
class ProgramRun:
    """Everything one run of __main__.py declared."""

    resources: list[Recorded]
    urns: list[str]
    outputs: dict[str, Any]
    config: dict[str, str]
    calls: list[str] = field(default_factory=list)
    config_keys_read: set[str] = field(default_factory=set)
    alias_parents: dict[str, list[str]] = field(default_factory=dict)
    """URN -> the parents its aliases name: where a moved resource used to live."""

    def of_type(self, token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == token]

    def only(self, token: str) -> Recorded:
        """The one resource of a type the program declares once (registration order is not fixed, so never `[0]`)."""
        matches = self.of_type(token)
        assert len(matches) == 1, f"expected one {token}, found {len(matches)}"
        return matches[0]

    def named(self, token: str, name: str) -> Recorded:
        matches = [r for r in self.of_type(token) if r.name == name]
        assert len(matches) == 1, f"expected one {token} named {name}, found {len(matches)}"
        return matches[0]

    def by_output(self, token: str, key: str, value: Any) -> Recorded:
        matches = [r for r in self.of_type(token) if r.outputs.get(key) == value]
        assert len(matches) == 1, f"expected one {token} with {key}={value!r}, found {len(matches)}"
        return matches[0]

    def function_policy(self, function: Recorded) -> dict[str, Any]:
        """The inline policy document of a function's execution role."""
        role = self.by_output("aws:iam/role:Role", "arn", function.inputs["role"])
        policies = [p for p in self.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role.id]
        assert len(policies) == 1, f"role of {function.name} has {len(policies)} inline policies"
        return json.loads(policies[0].inputs["policy"])

    def dead_letter_queue_arns(self) -> set[str]:
        """Every queue something dead-letters into: SQS redrive, EventBridge targets, Lambda async failures."""
        arns = {
            json.loads(q.inputs["redrivePolicy"])["deadLetterTargetArn"]
            for q in self.of_type("aws:sqs/queue:Queue")
            if q.inputs.get("redrivePolicy")
        }
        arns |= {t.inputs["deadLetterConfig"]["arn"] for t in self.of_type("aws:cloudwatch/eventTarget:EventTarget")}
        arns |= {
            c.inputs["destinationConfig"]["onFailure"]["destination"]
            for c in self.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
        }
        return arns

    def count_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for resource in self.resources:
            counts[resource.type] = counts.get(resource.type, 0) + 1
        return counts


def run_program(
    overrides: Mapping[str, Any] | None = None, stack: str = STACK, secret_keys: Sequence[str] = (CDN_KEY,)
) -> ProgramRun:
    """Execute __main__.py with a stack's config (dev by default; a test issuer and signing key, then overrides) under
    recording mocks, preview off. `secret_keys` are the keys the stack holds as secrets."""
    defaults = {"jwtIssuer": TEST_ISSUER, "cdnPrivateKey": signing_key_pem()}
    config = stack_config(ROOT, stack, {**defaults, **(overrides or {})})
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    keys_read: set[str] = set()
    original_full_key = pulumi.Config.full_key

    def recording_full_key(self: pulumi.Config, key: str) -> str:
        full = original_full_key(self, key)
        keys_read.add(full)
        return full

    captured: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        root = get_root_resource()
        assert root is not None
        return pulumi.Output.from_input(root.outputs).apply(captured.update)

    set_root_resource(None)  # type: ignore[arg-type]  # a fresh stack resource per run
    # Pulumi's runtime asks for the current event loop; an earlier test in this process (the local cloud's engine,
    # anything that used asyncio.run) may have left none, so each run gets its own.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        with mock.patch.object(pulumi.Config, "full_key", recording_full_key):
            set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
            set_all_config(config, list(secret_keys))
            program()
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return ProgramRun(
        resources=mocks.resources,
        urns=list(monitor.resources),
        outputs=json.loads(json.dumps(captured)),
        config=config,
        calls=mocks.calls,
        config_keys_read={k for k in keys_read if k.startswith(f"{PROJECT}:")},
        alias_parents=monitor.alias_parents,
    )
