"""The local Pulumi engine: runs the program under pulumi.runtime mocks whose new_resource creates it in moto.

The program is the one `pulumi up` runs (`__main__.py` in the project directory, with the stack's config);
every resource it registers is created from its resolved inputs, and the emulator's real outputs are
returned, so references between resources resolve exactly as they would in AWS. Its provider function calls
(invokes) are answered with local values; an unknown token is an error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import runpy
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks, set_all_config, set_mocks
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret
from pulumi.runtime.settings import get_root_resource

from local.engine.deployment import DeclaredResource, Deployment
from local.engine.emulator import ACCOUNT_ID, Emulator
from local.engine.pulumi_internals import run_program, wait_for
from local.engine.resources import ResourceFactory
from local.engine.stack_config import StackConfig
from local.engine.state_store import StableNames

log = logging.getLogger("local.engine.program")


# --- invokes: answers to the program's provider function calls ----------------------------------------

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


# --- the engine ---------------------------------------------------------------------------------------------


class ProgramFailed(RuntimeError):
    """The Pulumi program raised, or a resource could not be created from its inputs."""


def reveal_secrets(value: Any) -> Any:
    """Inputs with every secret unwrapped: a resource is created from the value, as the provider receives it."""
    if is_rpc_secret(value):
        return reveal_secrets(unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: reveal_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal_secrets(v) for v in value]
    return value


class LocalMocks(Mocks):
    """Mocks whose new_resource creates the resource in the emulator; registrations are serialized."""

    def __init__(self, factory: ResourceFactory, invokes: InvokeAnswers, deployment: Deployment) -> None:
        self._factory = factory
        self._invokes = invokes
        self._deployment = deployment
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if not args.custom:
            # Component resources only group their children; they have no cloud counterpart.
            return args.name, {}
        inputs = reveal_secrets(dict(args.inputs))
        with self._lock:
            try:
                created = self._factory.create(args.typ, args.name, inputs)
            except Exception as err:
                # The SDK swallows the message into a generic RPC failure; keep it to report which resource failed.
                self.errors.append(f"{args.typ} {args.name}: {type(err).__name__}: {err}")
                raise
            self._deployment.resources.append(
                DeclaredResource(
                    type=args.typ,
                    name=args.name,
                    id=created.id,
                    inputs=inputs,
                    state={**inputs, **created.outputs, "id": created.id},
                    behaviour=created.behaviour,
                    note=created.note,
                )
            )
            log.debug("created %s %s -> %s", args.typ, args.name, created.id)
            # The program gets its inputs back as it sent them: a secret stays a secret in its outputs.
            return created.id, {**args.inputs, **created.outputs, "id": created.id}

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        try:
            return self._invokes.answer(args.token, dict(args.args)), []
        except UnknownInvoke as err:
            self.errors.append(str(err))
            raise


@contextmanager
def _program_context(project_dir: Path) -> Iterator[None]:
    """Pulumi runs a program in a fresh process from its directory, with the directory importable: here, modules
    already loaded from elsewhere under a name the program's directory provides (its `components`, say) are set
    aside while it runs, so the program imports its own, and put back afterwards."""
    previous_cwd, previous_path = Path.cwd(), list(sys.path)
    own = {p.stem for p in project_dir.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    shadowed = {n: m for n, m in sys.modules.items() if n.split(".", 1)[0] in own}
    for name in shadowed:
        del sys.modules[name]
    os.chdir(project_dir)
    sys.path.insert(0, str(project_dir))
    try:
        yield
    finally:
        os.chdir(previous_cwd)
        sys.path[:] = previous_path
        for name in [n for n in sys.modules if n.split(".", 1)[0] in own]:
            del sys.modules[name]
        sys.modules.update(shadowed)


def evaluate_program(
    project_dir: Path,
    config: StackConfig,
    emulator: Emulator,
    api_endpoint: str,
    cdn_endpoint: str = "",
    *,
    names: StableNames | None = None,
) -> Deployment:
    """Runs `project_dir/__main__.py` once under the local engine and returns what it declared; the HTTP API's and the
    CDN's endpoints are the URLs the local cloud will serve them on (the CDN's is the distribution's domain name);
    `names` keeps physical names stable across starts."""
    project_dir = project_dir.resolve()
    region = config.values.get("aws:region", emulator.region)
    deployment = Deployment(project=config.project, stack=config.stack, region=region, account_id=ACCOUNT_ID)
    mocks = LocalMocks(
        ResourceFactory(emulator, deployment, api_endpoint, project_dir, cdn_endpoint, names=names),
        InvokeAnswers(ACCOUNT_ID, region),
        deployment,
    )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        set_all_config(dict(config.values), secret_keys=sorted(config.secret_keys))
        set_mocks(mocks, project=config.project, stack=config.stack, preview=False)
        program = project_dir / "__main__.py"
        with _program_context(project_dir):
            try:
                run_program(lambda: runpy.run_path(str(program), run_name="__main__"))
            except Exception as err:
                details = "; ".join(mocks.errors) or f"{type(err).__name__}: {err}"
                raise ProgramFailed(f"{program}: {details}") from err
            if mocks.errors:
                raise ProgramFailed(f"{program}: " + "; ".join(mocks.errors))
            stack = get_root_resource()
            exported = getattr(stack, "outputs", {}) or {}
            if exported:
                deployment.outputs = dict(wait_for(pulumi.Output.all(**exported).future()) or {})
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return deployment
