"""The local cloud: the emulator, the program's resources in it, function workers, event sources, the HTTP API, the
CDN.

Everything is derived from the deployment the engine returns; nothing about the pipeline's wiring is known here.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from components.lambda_runtime import PINS, load_lambda_runtime
from local.artifacts.builder import ArtifactBuilder, ArtifactError
from local.cdn.distribution import DistributionConfigError, load_distribution
from local.cdn.server import LocalCdn
from local.cdn.signed_requests import load_or_create_private_key
from local.engine.deployment import Deployment, ResourceType
from local.engine.emulator import Emulator
from local.engine.program import evaluate_program
from local.engine.resources import DELIVERY_QUEUE_PREFIX, put_program_object
from local.engine.stack_config import load_stack_config
from local.engine.state_store import (
    NAMES_FILE,
    DataSnapshot,
    StableNames,
    StateError,
    reset_hint,
    state_root,
    wipe,
)
from local.mediaconvert.model import ServiceError
from local.mediaconvert.service import MediaConvertStandIn, StandInOptions
from local.permissions import enforcement, roles
from local.runtime.auth import AuthorizerSettings, JwtAuthorizer, SigningKey, issue_token
from local.runtime.clock import LocalClock
from local.runtime.event_sources import AsyncDeliveryLoop, ScheduleRunner, SqsEventSource
from local.runtime.gateway import HttpApiGateway
from local.runtime.workers import FunctionRuntime, FunctionSpec, Runtimes

log = logging.getLogger("local.cloud")
MEDIACONVERT_SERVICE = "mediaconvert.amazonaws.com"

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_LAYER = Path(__file__).resolve().parent / "Pulumi.local.yaml"
OUTPUTS_FILE = "outputs.json"
DEPLOYMENT_FILE = "deployment.json"
WORKERS_FILE = "workers.json"
SNAPSHOT_INTERVAL_SECONDS = 5.0
"""How much a crash (or `kill -9`) can lose at most, plus one capture's time."""


class CloudConfigError(ValueError):
    """The program declares something the local cloud cannot run as declared."""


@dataclass
class CloudOptions:
    project_dir: Path = PROJECT_DIR
    stack: str = "dev"
    state_dir: Path | None = None
    port: int = 0
    cdn_port: int = 0
    """Where the program's CloudFront distribution is served on 127.0.0.1 (default: a free port)."""
    layers: list[Path] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    time_scale: float = 0.01
    concurrency: int = 2
    echo_logs: bool = False
    cache_dir: Path | None = None
    """Where assembled artifacts are kept (default: .local/cache beside the local cloud's code, shared by stacks)."""
    progress: Callable[[str], None] | None = None
    """Told about slow first-time work (installing the layer, the SDK, an image's requirements); default: the log."""

    @property
    def state(self) -> Path:
        return self.state_dir or self.project_dir / ".local"

    def config_layers(self) -> list[Path]:
        if self.layers is not None:
            return self.layers
        user_layer = self.state / "Pulumi.local.yaml"
        return [p for p in (DEFAULT_LAYER, user_layer) if p.exists()]


def program_pins(project_dir: Path) -> Path:
    """The runtime and layer pins of the program being run (a copy of this project has its own), else this one's."""
    own = project_dir / "components" / PINS.name
    return own if own.exists() else PINS


SUPPLIED_SECRETS = frozenset({"cdnPrivateKey"})


def supplied_config(state: Path, cdn_endpoint: str, s3_endpoint: str) -> dict[str, Any]:
    """The stack config the local cloud supplies for itself, as a deployed stack's own config holds it: the key its
    CDN trusts (`cdnPrivateKey`, generated once per state directory, a secret as `pulumi config set --secret` makes
    it), where the CDN serves (`cdnBaseUrl`), and the emulator's endpoint, where presigned links point, as an origin
    the console's page may reach (`consoleExtraOrigins`). A layer or `--config` still wins (and cdnPrivateKey stays a
    secret)."""
    return {
        "cdnPrivateKey": load_or_create_private_key(state),
        "cdnBaseUrl": cdn_endpoint,
        "consoleExtraOrigins": [s3_endpoint],
    }


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
CHOSEN_PORTS_BELOW_EPHEMERAL = 8000
"""How many ports below the kernel's ephemeral range `free_port` chooses from."""
_ports_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def _ephemeral_low() -> int | None:
    try:
        return int(EPHEMERAL_PORTS.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on, for a server that binds it a moment later.

    Chosen at random just below the kernel's ephemeral range, and never twice by one process: a port that bind(0)
    found free was, once, given to another process's bind(0) (a test's local cloud, beside this one) before this one
    bound it. Below the range, no bind(0) and no outgoing connection lands on it meanwhile."""
    low = _ephemeral_low()
    if low is not None and low > 1024 + CHOSEN_PORTS_BELOW_EPHEMERAL:
        candidates = range(low - CHOSEN_PORTS_BELOW_EPHEMERAL, low)
        for _ in range(100):
            port = secrets.choice(candidates)
            with _ports_lock:
                if port in _ports_handed_out or not _bindable(port):
                    continue
                _ports_handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LogSink:
    """Function logs: one file per function under .local/logs, optionally echoed with the function's name."""

    def __init__(self, directory: Path, echo: TextIO | None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._echo = echo
        self._files: dict[str, TextIO] = {}
        self._lock = threading.Lock()

    def __call__(self, function: str, line: str) -> None:
        with self._lock:
            if function not in self._files:
                self._files[function] = (self._directory / f"{function}.log").open("a", buffering=1)
            self._files[function].write(line + "\n")
            if self._echo is not None:
                self._echo.write(f"[{function}] {line}\n")

    def close(self) -> None:
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()


class LocalCloud:
    def __init__(self, options: CloudOptions, echo: TextIO | None = None) -> None:
        self.options = options
        self.clock = LocalClock(scale=options.time_scale)
        self.emulator: Emulator | None = None
        self.deployment: Deployment | None = None
        self.runtimes = Runtimes()
        self.gateway: HttpApiGateway | None = None
        self.cdn: LocalCdn | None = None
        self.mediaconvert: MediaConvertStandIn | None = None
        self.sources: list[SqsEventSource] = []
        self.deliveries: list[AsyncDeliveryLoop] = []
        self.schedules: ScheduleRunner | None = None
        self.api_url = ""
        self.cdn_url = ""
        self.token_settings: AuthorizerSettings | None = None
        self.signing_key: SigningKey | None = None
        self._echo = echo
        self._logs: LogSink | None = None
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._snapshot: DataSnapshot | None = None
        self._snapshotter: threading.Thread | None = None
        self._restored = False
        """Set once the saved data is back: only then may a capture replace the snapshot."""

    # --- start ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        options = self.options
        state = options.state
        state.mkdir(parents=True, exist_ok=True)
        _refuse_if_in_use(state)
        for stale in (OUTPUTS_FILE, WORKERS_FILE):
            (state / stale).unlink(missing_ok=True)
        port = options.port or free_port()
        endpoint = f"http://127.0.0.1:{port}"
        cdn_port = options.cdn_port or free_port()
        cdn_endpoint = f"http://127.0.0.1:{cdn_port}"
        emulator_port = free_port()
        config = load_stack_config(
            options.project_dir,
            options.stack,
            options.config_layers(),
            options.overrides,
            supplied=supplied_config(state, cdn_endpoint, f"http://127.0.0.1:{emulator_port}"),
            supplied_secrets=SUPPLIED_SECRETS,
        )
        self.emulator = Emulator(region=config.values.get("aws:region", "us-east-1"))
        self.emulator.start(emulator_port)
        durable_root = state_root(state, config.project, config.stack)
        try:
            names = StableNames(durable_root / NAMES_FILE, config.project, config.stack)
            self.deployment = evaluate_program(
                options.project_dir, config, self.emulator, endpoint, cdn_endpoint, names=names
            )
            names.save()
            self._snapshot = DataSnapshot(
                durable_root, config.project, config.stack, self.emulator, self.deployment.account_id
            )
            saved = self._snapshot.load() or {}
            if saved:
                self._snapshot.restore(saved)
                self._rewrite_program_objects(options.project_dir)
        except StateError as err:
            raise CloudConfigError(str(err)) from err
        # From here on every call a role makes, and every delivery a service makes, is authorized.
        enforcement.enable()
        self.signing_key = SigningKey.load_or_create(state)
        authorizers = self._authorizers(self.signing_key)
        self._logs = LogSink(state / "logs", self._echo)
        self._start_mediaconvert(saved.get("mediaconvertJobs") or [])
        self._restored = True
        self._start_functions()
        self._start_event_sources()
        self.gateway = HttpApiGateway(self.deployment, self.runtimes, authorizers, port)
        self.gateway.start()
        self.api_url = self.deployment.outputs.get("apiUrl") or f"{endpoint}/"
        self._start_cdn(cdn_port)
        self._write_state_files()
        self._monitor = threading.Thread(target=self._write_workers_periodically, name="monitor", daemon=True)
        self._monitor.start()
        self._snapshotter = threading.Thread(target=self._capture_periodically, name="snapshot", daemon=True)
        self._snapshotter.start()

    def _rewrite_program_objects(self, project_dir: Path) -> None:
        """The objects the program writes (the console's files) are the program's, as `pulumi up` writes them: the
        restored data must not bring back the previous start's (its config.json names the previous API port)."""
        assert self.deployment is not None and self.emulator is not None
        s3 = self.emulator.client("s3")
        for declared in self.deployment.of_type(ResourceType.S3_BUCKET_OBJECT_V2):
            put_program_object(s3, declared.inputs, project_dir.resolve())

    def _authorizers(self, key: SigningKey) -> dict[str, JwtAuthorizer]:
        assert self.deployment is not None
        authorizers: dict[str, JwtAuthorizer] = {}
        for declared in self.deployment.of_type(ResourceType.HTTP_AUTHORIZER):
            inputs = declared.inputs
            if inputs.get("authorizerType") != "JWT":
                raise CloudConfigError(f"authorizer {declared.name}: {inputs.get('authorizerType')} is not emulated")
            jwt_config = inputs.get("jwtConfiguration") or {}
            settings = AuthorizerSettings(
                issuer=jwt_config["issuer"], audiences=tuple(jwt_config.get("audiences") or ())
            )
            sources = inputs.get("identitySources") or ["$request.header.Authorization"]
            authorizers[declared.id] = JwtAuthorizer(key, settings, sources[0])
            self.token_settings = self.token_settings or settings
        if self.token_settings is not None:
            self.token_settings.save(self.options.state)
        return authorizers

    def _start_cdn(self, port: int) -> None:
        """The program's CloudFront distribution on 127.0.0.1:port, if it declares one."""
        assert self.deployment is not None and self.emulator is not None
        try:
            distribution = load_distribution(self.deployment)
        except DistributionConfigError as err:
            raise CloudConfigError(str(err)) from err
        if distribution is None:
            return
        self.cdn = LocalCdn(
            distribution,
            self.emulator,
            self.deployment.account_id,
            self.deployment.region,
            port,
            mint_token=self._mint_token,
        )
        self.cdn.start()
        self.cdn_url = self.cdn.url

    def _mint_token(self, subject: str, ttl_seconds: int) -> str:
        """A token for the console's local sign-in, as `python -m local token` signs one."""
        if self.signing_key is None or self.token_settings is None:
            raise CloudConfigError("the program declares no JWT authorizer: there is nothing to sign in to")
        return issue_token(self.signing_key, self.token_settings, subject, ttl_seconds)

    def _start_mediaconvert(self, saved_jobs: list[dict[str, Any]]) -> None:
        """The MediaConvert stand-in, with the queues the program declares (and the account's Default queue) and the
        jobs of the previous run (the unfinished ones queued to run again)."""
        assert self.deployment is not None and self.emulator is not None
        options = StandInOptions(
            account_id=self.deployment.account_id,
            region=self.deployment.region,
            work_dir=self.options.state / "tmp" / "mediaconvert",
            clock=self.clock,
        )
        account, region, emulator = self.deployment.account_id, self.deployment.region, self.emulator

        def role_credentials(role_arn: str) -> dict[str, str]:
            # MediaConvert reads and writes S3 as the role a job passes, which must trust it.
            return roles.assume_role_for(
                emulator.client("sts"), account, role_arn, MEDIACONVERT_SERVICE, "mediaconvert"
            )

        def authorize(operation: str, headers: Mapping[str, str], params: dict[str, Any]) -> None:
            refusal = enforcement.mediaconvert_refusal(account, region, operation, headers, params)
            if refusal:
                raise ServiceError(403, "ForbiddenException", refusal)

        self.mediaconvert = MediaConvertStandIn(self.emulator, options, functools.cache(role_credentials), authorize)
        for queue in self.deployment.of_type(ResourceType.MEDIACONVERT_QUEUE):
            self.mediaconvert.add_queue(queue.state["name"], queue.state["arn"], queue.state["status"])
        try:
            resumed = self.mediaconvert.restore_jobs(saved_jobs)
        except (KeyError, TypeError, ValueError) as err:
            hint = reset_hint(self._snapshot.path) if self._snapshot else ""
            raise CloudConfigError(f"the saved MediaConvert jobs could not be restored ({err}); {hint}") from err
        if resumed:
            log.info("%d MediaConvert jobs unfinished at the last stop are submitted again", resumed)
        self.mediaconvert.start()

    def _start_functions(self) -> None:
        assert self.deployment is not None and self.emulator is not None and self._logs is not None
        assert self.mediaconvert is not None
        base_environment = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            **self.emulator.function_environment(),
            **self.mediaconvert.function_environment(),
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        builder = ArtifactBuilder(
            self.deployment,
            self.options.project_dir.resolve(),
            load_lambda_runtime(program_pins(self.options.project_dir)),
            **({"cache_root": self.options.cache_dir} if self.options.cache_dir else {}),
            progress=self.options.progress or (lambda message: log.info("%s", message)),
        )
        for function in self.deployment.of_type(ResourceType.FUNCTION):
            variables = ((function.inputs.get("environment") or {}).get("variables")) or {}
            try:
                artifact = builder.for_function(function)
            except ArtifactError as err:
                raise CloudConfigError(str(err)) from err
            spec = FunctionSpec(
                name=function.state["name"],
                arn=function.state["arn"],
                artifact=artifact,
                environment={k: str(v) for k, v in variables.items()},
                timeout_seconds=int(function.state["timeout"]),
                memory_mb=int(function.state["memorySize"]),
                # Each function runs as its own role, with temporary credentials, as Lambda runs it.
                credentials=roles.assume_role_for(
                    self.emulator.client("sts"),
                    self.deployment.account_id,
                    function.inputs["role"],
                    "lambda.amazonaws.com",
                    function.state["name"],
                ),
            )
            reserved = function.inputs.get("reservedConcurrentExecutions")
            concurrency = self.options.concurrency
            if isinstance(reserved, int | float) and reserved > 0:
                concurrency = min(concurrency, int(reserved))
            self.runtimes.add(
                FunctionRuntime(
                    spec=spec,
                    base_environment=base_environment,
                    log_sink=self._logs,
                    tmp_root=self.options.state / "tmp",
                    concurrency=concurrency,
                )
            )

    def _queue_url(self, arn: str) -> str:
        assert self.deployment is not None and self.emulator is not None
        for queue in self.deployment.of_type(ResourceType.SQS_QUEUE):
            if queue.state.get("arn") == arn:
                return str(queue.state["url"])
        return str(self.emulator.client("sqs").get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"])

    def _start_event_sources(self) -> None:
        assert self.deployment is not None and self.emulator is not None
        for mapping in self.deployment.of_type(ResourceType.EVENT_SOURCE_MAPPING):
            source_arn = mapping.inputs.get("eventSourceArn", "")
            if ":sqs:" not in source_arn:
                raise CloudConfigError(f"event source mapping {mapping.name}: only SQS sources are emulated")
            runtime = self.runtimes.get(mapping.state["functionArn"])
            source = SqsEventSource(mapping, self._queue_url(source_arn), runtime, self.emulator, self.clock)
            source.start()
            self.sources.append(source)
        for delivery in self.deployment.deliveries:
            function = self.deployment.function_by_reference(delivery.function_arn)
            policy = self.deployment.async_invoke_policy(function)
            refusal = self.deployment.invoke_refusal(function, delivery.service, delivery.source_arn)
            loop = AsyncDeliveryLoop(
                delivery, policy, self.runtimes.get(delivery.function_arn), self.emulator, self.clock, refusal=refusal
            )
            loop.start()
            self.deliveries.append(loop)
        self.schedules = ScheduleRunner(self.deployment.of_type(ResourceType.EVENT_RULE), self.emulator, self.clock)
        self.schedules.start()

    # --- state files ----------------------------------------------------------------------------------------

    def _write_state_files(self) -> None:
        assert self.deployment is not None and self.emulator is not None and self.mediaconvert is not None
        state = self.options.state
        endpoints = {"emulatorEndpoint": self.emulator.endpoint, "mediaconvertEndpoint": self.mediaconvert.endpoint}
        if self.cdn_url:
            endpoints["cdnUrl"] = self.cdn_url
        outputs = {**self.deployment.outputs, "apiUrl": self.api_url, **endpoints}
        deployment = {
            "project": self.deployment.project,
            "stack": self.deployment.stack,
            "region": self.deployment.region,
            **endpoints,
            "pid": os.getpid(),
            "resources": [
                {"type": r.type, "name": r.name, "id": r.id, "behaviour": str(r.behaviour), "note": r.note}
                for r in self.deployment.resources
            ],
            "queues": [
                {"name": q.state["name"], "url": q.state["url"], "arn": q.state["arn"]}
                for q in self.deployment.of_type(ResourceType.SQS_QUEUE)
            ],
            "deadLetterArns": sorted(self.deployment.dead_letter_arns()),
            "deliveryQueuePrefix": DELIVERY_QUEUE_PREFIX,
        }
        _write_json(state / DEPLOYMENT_FILE, deployment)
        self._write_workers()
        # Written last: its presence means the local cloud is ready.
        _write_json(state / OUTPUTS_FILE, outputs)

    def _write_workers(self) -> None:
        snapshot = {
            "functions": self.runtimes.snapshot(),
            "sources": {s.name: vars(s.stats) for s in [*self.sources, *self.deliveries]},
            "schedules": dict(self.schedules.fired) if self.schedules else {},
            "requests": self.gateway.requests if self.gateway else 0,
            "cdn": {"requests": self.cdn.requests, "refused": self.cdn.refused} if self.cdn else None,
            "refusals": [vars(r) for r in list(enforcement.refusals)],
            "updatedAt": time.time(),
        }
        _write_json(self.options.state / WORKERS_FILE, snapshot)

    def _write_workers_periodically(self) -> None:
        while not self._stop.wait(0.25):
            self._write_workers()

    def _capture(self) -> None:
        """The emulator's data and the MediaConvert jobs to disk (state_store.py)."""
        assert self._snapshot is not None and self.mediaconvert is not None
        self._snapshot.capture(self.mediaconvert.export_jobs)

    def _capture_periodically(self) -> None:
        while not self._stop.wait(SNAPSHOT_INTERVAL_SECONDS):
            try:
                self._capture()
            except Exception:  # the next capture tries again; the one on stop reports its failure
                log.warning("snapshot of the local cloud's data failed", exc_info=True)

    # --- stop -----------------------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=2)
        if self._snapshotter is not None:
            self._snapshotter.join()
        if self.gateway is not None:
            self.gateway.stop()
        if self.cdn is not None:
            self.cdn.stop()
        loops = [*self.sources, *self.deliveries, *([self.schedules] if self.schedules else [])]
        for loop in loops:
            loop.stop()
        if self.mediaconvert is not None:
            self.mediaconvert.stop()
        self.runtimes.stop()
        for loop in loops:
            loop.join()
        if self._restored:
            # Last, once nothing changes the data any more; a message a worker was handling is kept, in flight.
            try:
                self._capture()
            except Exception:  # reported; the emulator must still stop, and the previous snapshot is intact
                log.exception("the local cloud's data could not be saved on stop; the last snapshot is kept")
        if self.emulator is not None:
            self.emulator.stop()
        if self._logs is not None:
            self._logs.close()
        (self.options.state / OUTPUTS_FILE).unlink(missing_ok=True)
        (self.options.state / WORKERS_FILE).unlink(missing_ok=True)


def reset_state(state: Path) -> list[Path]:
    """Wipes the emulator's state of a state directory (state_store.wipe): the next start is an empty cloud with new
    names. Refused while a local cloud runs on it."""
    _refuse_if_in_use(state)
    return wipe(state)


def _refuse_if_in_use(state: Path) -> None:
    """One local cloud per state directory: a second would overwrite the first one's outputs and key files."""
    deployment_file, outputs_file = state / DEPLOYMENT_FILE, state / OUTPUTS_FILE
    if not (deployment_file.exists() and outputs_file.exists()):
        return
    pid = int(json.loads(deployment_file.read_text()).get("pid", 0))
    if pid and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        raise CloudConfigError(f"another local cloud (pid {pid}) is using {state}; stop it or pass --state-dir")


def _write_json(path: Path, data: Any) -> None:
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str))
    temporary.replace(path)
