"""One Lambda execution environment: imports a handler once (cold start) and serves invocations (warm).

Started by the local cloud as `python -I -S local/runtime/worker.py HANDLER PATH...` with exactly the function's
environment: isolated (no PYTHONPATH, no site-packages, not even this file's directory), importing only from PATH...,
the function's artifact in Lambda's order. Requests arrive as JSON lines on stdin; responses go as JSON lines to the
original stdout, which is moved to a private descriptor first, so whatever the handler prints lands on stderr (the
function's log) instead of corrupting the protocol. Standard library only: it must not change what the handler's
process imports.

Each invocation is framed in the log as Lambda frames it: `START RequestId: … Version: $LATEST`, then `END`, then
`REPORT` with its duration, billed duration, memory size, the most memory the environment used and, on the
environment's first invocation, its init duration (the cold start's import of the handler).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers use."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_ms: int
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None
    _clock: Callable[[], float] = field(default=time.time, repr=False)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.deadline_ms - self._clock() * 1000))


def _error(err: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(err).__name__,
        "errorMessage": str(err),
        "stackTrace": traceback.format_exception(type(err), err, err.__traceback__),
    }


class HandlerNotFound(Exception):
    """The module imported but has no such attribute (Lambda's Runtime.HandlerNotFound)."""


def _load_handler(spec: str) -> Callable[[Any, Any], Any]:
    module_name, _, attribute = spec.rpartition(".")
    if not module_name:
        raise ImportError(f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # Lambda's own wording, so a local failure reads like the deployed one
        raise ImportError(f"Unable to import module '{module_name}': {err}") from err
    if not hasattr(module, attribute):
        raise HandlerNotFound(f"Handler '{attribute}' missing on module '{module_name}'")
    return getattr(module, attribute)


def report_line(request_id: str, duration_ms: float, memory_mb: int, init_ms: float | None = None) -> str:
    """Lambda's REPORT line for an invocation: durations in ms, memory in MB (the environment's peak: the worker or
    the largest process it waited for, an ffmpeg say)."""
    peak_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {math.ceil(duration_ms)} ms"
        f"\tMemory Size: {memory_mb} MB\tMax Memory Used: {math.ceil(peak_kb / 1024)} MB"
    )
    return line + (f"\tInit Duration: {init_ms:.2f} ms" if init_ms is not None else "")


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def serve(handler_spec: str, requests: IO[str], channel: IO[str]) -> int:
    init_started = time.perf_counter()
    try:
        handler = _load_handler(handler_spec)
    except Exception as err:  # Reported to the caller and logged, then this environment ends.
        kind = "Runtime.HandlerNotFound" if isinstance(err, HandlerNotFound) else "Runtime.ImportModuleError"
        print(f"[ERROR] {kind}: {err}", file=sys.stderr, flush=True)
        _send(channel, {"type": "init_error", "error": {**_error(err), "errorType": kind}})
        return 1
    init_ms: float | None = (time.perf_counter() - init_started) * 1000
    _send(channel, {"type": "ready"})
    environment = os.environ
    for line in requests:
        request = json.loads(line)
        context = LambdaContext(
            function_name=environment.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            function_version=environment.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            invoked_function_arn=request["functionArn"],
            memory_limit_in_mb=int(environment.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")),
            aws_request_id=request["requestId"],
            log_group_name=environment.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            log_stream_name=environment.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
            deadline_ms=request["deadlineMs"],
        )
        print(f"START RequestId: {context.aws_request_id} Version: $LATEST", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            result = handler(request["event"], context)
            response = {"type": "result", "requestId": context.aws_request_id, "payload": json.dumps(result)}
        except Exception as err:  # The handler's failure is the invocation's result, as in Lambda.
            traceback.print_exc(file=sys.stderr)
            response = {"type": "error", "requestId": context.aws_request_id, "error": _error(err)}
        duration_ms = (time.perf_counter() - started) * 1000
        print(f"END RequestId: {context.aws_request_id}", file=sys.stderr, flush=True)
        report = report_line(context.aws_request_id, duration_ms, context.memory_limit_in_mb, init_ms)
        print(report, file=sys.stderr, flush=True)
        init_ms = None
        _send(channel, response)
    return 0


def _end_group_with_parent(parent: int) -> None:
    """The local cloud killed outright (`kill -9`) cannot stop its workers: each one's process group (the worker and
    whatever it started) then ends itself, within a second."""
    while os.getppid() == parent:
        time.sleep(1)
    os.killpg(0, signal.SIGKILL)


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python -I -S local/runtime/worker.py MODULE.FUNCTION [IMPORT_PATH ...]", file=sys.stderr)
        return 2
    # The artifact's directories go before the standard library, as Lambda's bootstrap puts them.
    sys.path[:0] = sys.argv[2:]
    if os.getpgrp() == os.getpid():  # started in its own group (never kill the group of whoever started it)
        threading.Thread(target=_end_group_with_parent, args=(os.getppid(),), daemon=True).start()
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return serve(sys.argv[1], sys.stdin, channel)


if __name__ == "__main__":
    sys.exit(main())
