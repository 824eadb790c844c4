"""The local Pulumi engine: runs the program under pulumi.runtime mocks whose new_resource creates it in moto.

The program is the one `pulumi up` runs (`__main__.py` in the project directory, with the stack's config);
every resource it registers is created from its resolved inputs, and the emulator's real outputs are
returned, so references between resources resolve exactly as they would in AWS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import runpy
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks, set_all_config, set_mocks
from pulumi.runtime.settings import get_root_resource

from local.engine.deployment import DeclaredResource, Deployment
from local.engine.emulator import ACCOUNT_ID, Emulator
from local.engine.invokes import InvokeAnswers, UnknownInvoke
from local.engine.pulumi_internals import run_program, wait_for
from local.engine.resources import ResourceFactory
from local.engine.stack_config import StackConfig

log = logging.getLogger("local.engine.program")


class ProgramFailed(RuntimeError):
    """The Pulumi program raised, or a resource could not be created from its inputs."""


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
        with self._lock:
            try:
                created = self._factory.create(args.typ, args.name, dict(args.inputs))
            except Exception as err:
                # The SDK swallows the message into a generic RPC failure; keep it to report which resource failed.
                self.errors.append(f"{args.typ} {args.name}: {type(err).__name__}: {err}")
                raise
            state = {**args.inputs, **created.outputs, "id": created.id}
            self._deployment.resources.append(
                DeclaredResource(
                    type=args.typ,
                    name=args.name,
                    id=created.id,
                    inputs=dict(args.inputs),
                    state=state,
                    behaviour=created.behaviour,
                    note=created.note,
                )
            )
            log.debug("created %s %s -> %s", args.typ, args.name, created.id)
            return created.id, state

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


def evaluate_program(project_dir: Path, config: StackConfig, emulator: Emulator, api_endpoint: str) -> Deployment:
    """Runs `project_dir/__main__.py` once under the local engine and returns what it declared."""
    project_dir = project_dir.resolve()
    region = config.values.get("aws:region", emulator.region)
    deployment = Deployment(project=config.project, stack=config.stack, region=region, account_id=ACCOUNT_ID)
    mocks = LocalMocks(
        ResourceFactory(emulator, deployment, api_endpoint, project_dir), InvokeAnswers(ACCOUNT_ID, region), deployment
    )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        set_all_config(dict(config.values))
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
