"""A webhook receiver on 127.0.0.1, as a client's endpoint would be: it verifies every delivery's Standard Webhooks
signature on the raw body, answers 204 to a valid one and 401 to any other, and keeps what it received.

Signatures are checked with `functions.common.webhook_signing.verify` and, when the `standardwebhooks` reference
package is importable (a dev dependency), cross-checked with it: a delivery is valid only if every verifier accepts
it. Used by `python -m local demo`, `python -m local webhooks listen` and the tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from functions.common.webhook_signing import SignatureError, verify
from local.cli.client import ApiClient, ApiError

try:
    import standardwebhooks
except ImportError:  # an optional dev dependency: without it only the pipeline's own verifier runs
    standardwebhooks = None

HOST = "127.0.0.1"
DEFAULT_PATH = "/hooks"
MAX_BODY_BYTES = 1024 * 1024
REQUEST_TIMEOUT_SECONDS = 10
SHUTDOWN_POLL_SECONDS = 0.05
OWN_VERIFIER = "functions.common.webhook_signing.verify"
REFERENCE_VERIFIER = "standardwebhooks"


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver accepted for verification, and what each verifier said about it."""

    sequence: int
    received_at: float
    headers: dict[str, str]
    body: bytes
    verified: bool  # functions.common.webhook_signing.verify accepted it
    reference_verified: bool | None  # the standardwebhooks package accepted it; None when it is not installed
    error: str | None  # why the delivery is invalid, when it is
    status: int  # what the receiver answered
    payload: Any = field(default=None)

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def event_type(self) -> str | None:
        return self.payload.get("type") if isinstance(self.payload, dict) else None

    @property
    def data(self) -> dict[str, Any]:
        data = self.payload.get("data") if isinstance(self.payload, dict) else None
        return data if isinstance(data, dict) else {}

    def concerns(self, job_id: str) -> bool:
        """The delivery is about this job: by its payload, or by its webhook-id if the body is not readable."""
        return self.data.get("jobId") == job_id or self.webhook_id.startswith(f"msg_{job_id}_")


def check_signature(
    secret: str, headers: dict[str, str], body: bytes, now: int
) -> tuple[bool, bool | None, str | None]:
    """(own verifier's verdict, reference verifier's verdict or None, the first reason to refuse or None)."""
    errors: list[str] = []
    try:
        verify(secret, headers, body, now=now)
        verified = True
    except SignatureError as err:
        verified = False
        errors.append(f"{OWN_VERIFIER}: {err}")
    reference: bool | None = None
    if standardwebhooks is not None:
        try:
            standardwebhooks.Webhook(secret).verify(body, headers, json_parse=False)
            reference = True
        except (standardwebhooks.WebhookVerificationError, ValueError) as err:
            # ValueError covers what the reference raises on malformed input: a header without ',', bad base64,
            # a body that is not UTF-8.
            reference = False
            errors.append(f"{REFERENCE_VERIFIER}: {err or type(err).__name__}")
    if reference is not None and reference != verified:
        errors.insert(0, "the verifiers disagree")
    return verified, reference, "; ".join(errors) or None


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 (a free port unless one is given) run by a thread of this process."""

    def __init__(self, *, port: int = 0, path: str = DEFAULT_PATH, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.secret: str | None = None  # set once POST /webhooks has answered with it
        self.endpoint_id: str | None = None
        self._clock = clock
        self._deliveries: list[Delivery] = []
        self._condition = threading.Condition()
        self._server = ThreadingHTTPServer((HOST, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def deliveries(self) -> list[Delivery]:
        with self._condition:
            return list(self._deliveries)

    def wait_for(self, predicate: Callable[[Delivery], bool], timeout: float) -> Delivery | None:
        """The first delivery (in arrival order) that satisfies `predicate`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                found = next((d for d in self._deliveries if predicate(d)), None)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    return found
                self._condition.wait(remaining)

    def receive(self, headers: dict[str, str], body: bytes) -> Delivery:
        """Verifies one request and records it; returns the delivery with the status to answer."""
        secret = self.secret
        if secret is None:
            verified, reference, error = False, None, "the receiver is not registered yet (no secret)"
            status = 503
        else:
            verified, reference, error = check_signature(secret, headers, body, int(self._clock()))
            status = 204 if error is None else 401
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = None
        with self._condition:
            delivery = Delivery(
                sequence=len(self._deliveries),
                received_at=self._clock(),
                headers=headers,
                body=body,
                verified=verified,
                reference_verified=reference,
                error=error,
                status=status,
                payload=payload,
            )
            self._deliveries.append(delivery)
            self._condition.notify_all()
        return delivery


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_SECONDS

        def do_POST(self) -> None:
            if self.path != receiver.path:
                self._answer(404)
                return
            raw_length = self.headers.get("Content-Length") or ""
            if not raw_length.isdigit():
                self._answer(411)
                return
            if int(raw_length) > MAX_BODY_BYTES:
                self._answer(413)
                return
            body = self.rfile.read(int(raw_length))
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._answer(receiver.receive(headers, body).status)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def listen_and_register(client: ApiClient, *, port: int = 0, path: str = DEFAULT_PATH) -> WebhookReceiver:
    """Starts a receiver and registers it with `POST /webhooks` as the client's user; the receiver keeps the secret.

    The local cloud's config allows 127.0.0.1 past the SSRF policy; elsewhere the registration is refused (ApiError).
    """
    receiver = WebhookReceiver(port=port, path=path).start()
    try:
        endpoint = client.register_webhook(receiver.url)
    except BaseException:
        receiver.stop()
        raise
    receiver.secret = endpoint["secret"]
    receiver.endpoint_id = endpoint["id"]
    return receiver


def deregister(client: ApiClient, receiver: WebhookReceiver) -> str | None:
    """Removes the receiver's registration, so no delivery is retried into a closed port; returns why it could not."""
    if receiver.endpoint_id is None:
        return None
    try:
        client.delete_webhook(receiver.endpoint_id)
    except (ApiError, OSError) as err:
        return str(err)
    receiver.endpoint_id = None
    return None
