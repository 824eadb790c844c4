"""Local Lambda runtime: a pool of worker processes per function, cold start on first use, warm reuse after.

Each worker gets exactly the environment its function resource declares, plus what the Lambda service
itself provides (endpoint, credentials, region, function name, memory, timeout). The declared timeout is
enforced: a worker that overruns is killed and the next invocation cold-starts a fresh one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from local.artifacts.builder import Artifact, worker_interpreter

log = logging.getLogger("local.runtime.workers")

# Time allowed for the worker to import the handler (Lambda's init phase is capped at 10 s, plus the timeout).
INIT_TIMEOUT_SECONDS = 60.0
WORKER_SCRIPT = Path(__file__).resolve().with_name("worker.py")


class FunctionError(RuntimeError):
    """The invocation failed; `error` is Lambda's error payload (errorType, errorMessage, stackTrace)."""

    def __init__(self, function: str, error: dict[str, Any]) -> None:
        super().__init__(f"{function}: {error.get('errorType')}: {error.get('errorMessage')}")
        self.function = function
        self.error = error


class FunctionTimeout(FunctionError):
    pass


class WorkerCrashed(FunctionError):
    pass


@dataclass(frozen=True)
class FunctionSpec:
    """What the function resource declares, resolved: name, ARN, its artifact, environment, limits."""

    name: str
    arn: str
    artifact: Artifact
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    credentials: dict[str, str] = field(default_factory=dict)
    """Temporary credentials of the function's role (AWS_ACCESS_KEY_ID, ...), which Lambda puts in its environment."""


@dataclass
class FunctionStats:
    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    crashes: int = 0
    cold_starts: int = 0


LogSink = Callable[[str, str], None]


class Worker:
    """One worker process: a long-lived execution environment serving one invocation at a time."""

    _numbers = itertools.count(1)

    def __init__(self, spec: FunctionSpec, base_environment: dict[str, str], log_sink: LogSink, tmp_root: Path) -> None:
        self.spec = spec
        self.number = next(self._numbers)
        self.busy_since: float | None = None
        self.ready = False
        self._log_sink = log_sink
        self._responses: queue.Queue[dict[str, Any] | None] = queue.Queue()
        tmp_dir = tmp_root / f"{spec.name}-{self.number}"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        artifact = spec.artifact
        # The runtime's and the image's variables, then the function's own, then what Lambda reserves.
        environment = {
            **base_environment,
            **artifact.environment,
            **spec.environment,
            **spec.credentials,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_seconds),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{self.number}",
            "LAMBDA_TASK_ROOT": str(artifact.task_root),
            "TMPDIR": str(tmp_dir),
        }
        # Isolated (-I) and without site-packages (-S): the worker imports from its artifact's directories only.
        command = [worker_interpreter(artifact.python), "-I", "-S", str(WORKER_SCRIPT), artifact.handler]
        self._process = subprocess.Popen(
            [*command, *map(str, artifact.sys_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=artifact.task_root,
            text=True,
            bufsize=1,
            # Its own process group, as a Lambda sandbox holds all it starts: killing the group ends them all.
            start_new_session=True,
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        threading.Thread(target=self._read_responses, args=(self._process.stdout,), daemon=True).start()
        threading.Thread(target=self._read_logs, args=(self._process.stderr,), daemon=True).start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _read_responses(self, stream: IO[str]) -> None:
        for line in stream:
            self._responses.put(json.loads(line))
        self._responses.put(None)

    def _read_logs(self, stream: IO[str]) -> None:
        for line in stream:
            self._log_sink(self.spec.name, line.rstrip("\n"))

    def _next_response(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self._responses.get(timeout=timeout)
        except queue.Empty as err:
            raise TimeoutError from err

    def wait_ready(self) -> None:
        """The cold start: the worker imports the handler and reports ready, or the import error."""
        try:
            message = self._next_response(INIT_TIMEOUT_SECONDS + self.spec.timeout_seconds)
        except TimeoutError as err:
            self.kill()
            raise FunctionTimeout(self.spec.name, {"errorType": "Runtime.InitTimeout", "errorMessage": "init"}) from err
        if message is None or message["type"] != "ready":
            self.kill()
            error = (message or {}).get("error") or {"errorType": "Runtime.ExitError", "errorMessage": "exited in init"}
            raise WorkerCrashed(self.spec.name, error)
        self.ready = True

    def invoke(self, event: Any, request_id: str) -> Any:
        deadline = time.time() + self.spec.timeout_seconds
        request = {
            "requestId": request_id,
            "event": event,
            "deadlineMs": int(deadline * 1000),
            "functionArn": self.spec.arn,
        }
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as err:  # ValueError: stdin closed by a concurrent stop
            self.kill()
            raise WorkerCrashed(self.spec.name, {"errorType": "Runtime.ExitError", "errorMessage": str(err)}) from err
        try:
            message = self._next_response(max(0.0, deadline - time.time()) + 0.5)
        except TimeoutError as err:
            self.kill()
            raise FunctionTimeout(
                self.spec.name,
                {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {self.spec.timeout_seconds} s",
                },
            ) from err
        if message is None:
            code = self._process.wait()
            raise WorkerCrashed(
                self.spec.name, {"errorType": "Runtime.ExitError", "errorMessage": f"worker exited with {code}"}
            )
        if message["type"] == "error":
            raise FunctionError(self.spec.name, message["error"])
        return json.loads(message["payload"])

    def alive(self) -> bool:
        return self._process.poll() is None

    def kill(self) -> None:
        """The worker and everything it started (ffmpeg, say)."""
        self._kill_group()
        self._process.wait()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the worker and all it started are gone already
            os.killpg(self._process.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):  # killed with its group below
                self._process.wait(timeout=2)
        self.kill()


@dataclass
class FunctionRuntime:
    """The execution environments of one function: at most `concurrency` workers, reused while warm."""

    spec: FunctionSpec
    base_environment: dict[str, str]
    log_sink: LogSink
    tmp_root: Path
    concurrency: int = 1
    stats: FunctionStats = field(default_factory=FunctionStats)
    _idle: list[Worker] = field(default_factory=list)
    _busy: set[Worker] = field(default_factory=set)
    _condition: threading.Condition = field(default_factory=threading.Condition)
    _stopped: bool = False

    def _acquire(self) -> Worker:
        with self._condition:
            while True:
                if self._stopped:
                    raise WorkerCrashed(self.spec.name, {"errorType": "Local.Stopped", "errorMessage": "stopping"})
                self._idle = [w for w in self._idle if w.alive()]
                if self._idle:
                    worker = self._idle.pop()
                    break
                if len(self._busy) < self.concurrency:
                    worker = None
                    break
                self._condition.wait()
            if worker is None:
                self.stats.cold_starts += 1
                worker = Worker(self.spec, self.base_environment, self.log_sink, self.tmp_root)
            worker.busy_since = time.time()
            self._busy.add(worker)
        return worker

    def _release(self, worker: Worker, healthy: bool) -> None:
        with self._condition:
            self._busy.discard(worker)
            worker.busy_since = None
            if healthy and not self._stopped and worker.alive():
                self._idle.append(worker)
            else:
                worker.kill()
            self._condition.notify()

    def invoke(self, event: Any) -> Any:
        """Runs the handler on `event` and returns its result; raises FunctionError (or a subclass) on failure."""
        request_id = str(uuid.uuid4())
        worker = self._acquire()
        healthy = False
        self.stats.invocations += 1
        try:
            if not worker.ready:
                worker.wait_ready()
            result = worker.invoke(event, request_id)
            healthy = True
            return result
        except FunctionTimeout:
            self.stats.timeouts += 1
            self.stats.errors += 1
            raise
        except WorkerCrashed:
            self.stats.crashes += 1
            self.stats.errors += 1
            raise
        except FunctionError:
            healthy = True
            self.stats.errors += 1
            raise
        finally:
            self._release(worker, healthy)

    def workers(self) -> list[dict[str, Any]]:
        with self._condition:
            return [
                {"pid": w.pid, "number": w.number, "busySince": w.busy_since}
                for w in [*self._busy, *self._idle]
                if w.alive()
            ]

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._condition.notify_all()
        for worker in workers:
            worker.stop()


class Runtimes:
    """Every function's runtime, found by name or ARN (qualified or not)."""

    def __init__(self) -> None:
        self._by_name: dict[str, FunctionRuntime] = {}

    def add(self, runtime: FunctionRuntime) -> None:
        self._by_name[runtime.spec.name] = runtime

    def get(self, reference: str) -> FunctionRuntime:
        name = reference.split(":function:", 1)[1].split(":", 1)[0] if ":function:" in reference else reference
        if name not in self._by_name:
            raise LookupError(f"no local function {reference!r}")
        return self._by_name[name]

    def all(self) -> list[FunctionRuntime]:
        return list(self._by_name.values())

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {"stats": vars(rt.stats), "workers": rt.workers(), "timeoutSeconds": rt.spec.timeout_seconds}
            for name, rt in self._by_name.items()
        }

    def stop(self) -> None:
        threads = [threading.Thread(target=rt.stop) for rt in self._by_name.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
