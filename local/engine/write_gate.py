"""A point in time for the snapshot (state_store.py): every request that may change the emulator's data passes a
gate, which the snapshot closes while it reads S3, DynamoDB and SQS.

Without it a snapshot reads the buckets, then the tables, then the queues while workers go on: an output written
after the buckets were read, by a worker whose message was deleted before the queues were read, is in neither, and the
restored cloud holds a job waiting for work nobody will do. With the gate, a snapshot is the cloud as a crash at one
instant would leave it, and every function already survives a crash at any instant (at-least-once delivery,
conditional writes; tests/e2e/test_faults.py).

Reads pass the gate: the snapshot's own requests are reads (it would wait for itself otherwise), and so are SQS
receives, whose only change, a message in flight, the snapshot keeps as a visible message anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Writes finish in milliseconds; one that never does (a defect) must not stop the cloud: that snapshot fails instead.
HOLD_TIMEOUT_SECONDS = 30.0
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Operation names (the X-Amz-Target suffix of JSON-protocol requests: DynamoDB, SQS, EventBridge...) that read.
READ_OPERATION_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "Receive")


class WriteGate:
    """Writes pass while it is open; `closed()` waits for the writes in progress and holds new ones until it ends."""

    def __init__(self, hold_timeout: float = HOLD_TIMEOUT_SECONDS) -> None:
        self._hold_timeout = hold_timeout
        self._condition = threading.Condition()
        self._writing = 0
        self._closed = False

    @contextmanager
    def passing(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._closed)
            self._writing += 1
        try:
            yield
        finally:
            with self._condition:
                self._writing -= 1
                self._condition.notify_all()

    @contextmanager
    def closed(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._closed)
            self._closed = True
            if not self._condition.wait_for(lambda: self._writing == 0, timeout=self._hold_timeout):
                self._closed = False
                self._condition.notify_all()
                raise TimeoutError(f"{self._writing} requests still writing after {self._hold_timeout:.0f} s")
        try:
            yield
        finally:
            with self._condition:
                self._closed = False
                self._condition.notify_all()


GATE = WriteGate()


def is_read(environ: dict[str, Any]) -> bool:
    if environ.get("REQUEST_METHOD", "") in READ_METHODS:
        return True
    operation = str(environ.get("HTTP_X_AMZ_TARGET", "")).rsplit(".", 1)[-1]
    return operation.startswith(READ_OPERATION_PREFIXES)


def install() -> None:
    """Every request the moto server dispatches goes through the gate unless it reads. Idempotent."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original: Callable[..., Any] = DomainDispatcherApplication.__call__
    if getattr(original, "_local_gated", False):
        return

    def gated_call(self: DomainDispatcherApplication, environ: dict[str, Any], start_response: Any) -> Any:
        if is_read(environ):
            return original(self, environ, start_response)
        with GATE.passing():
            return original(self, environ, start_response)

    gated_call._local_gated = True  # type: ignore[attr-defined]
    DomainDispatcherApplication.__call__ = gated_call  # type: ignore[method-assign]


@contextmanager
def writes_held() -> Iterator[None]:
    """No request changes the emulator's data meanwhile (the writes in progress finish first)."""
    with GATE.closed():
        yield
