"""The webhooks function's I/O: HTTP delivery over SSRF-pinned connections, the SQS task queue, S3 download links.

One webhook attempt over HTTP(S) (`Transport`): connect to an address the policy checked, POST, read the status,
hang up.
- The URL is checked (functions/common/ssrf.py: its port, then every address) and resolved here, at every attempt, so
  an endpoint stored before a rule existed gets no delivery the rule refuses; the connection goes to one of
  exactly the checked addresses, with the URL's name as the Host header and as the TLS server name (SNI and
  certificate check), so no second lookup happens that DNS rebinding could answer differently.
- Redirects are never followed (http.client has no notion of them): a 3xx is a failed attempt like any other.
- The whole attempt, from connect to the status line, is bounded: a watchdog shuts the socket down at the
  deadline, so a receiver that trickles bytes cannot hold a delivery past `timeout_seconds`.
- No proxy from the environment is used; only the status is read (never more than the headers).
- What a failed attempt tells the client is a coarse code (`connect_failed`, `timeout`, `tls_error`,
  `refused_address`, `http_<status>`): never an OS error, an address or a port, which would make the delivery log an
  oracle for probing other hosts. The full story goes to the function's log (`HttpAttempt.detail`).

Delivery tasks travel as SQS messages (`SqsTaskQueue`): a retry is sent with as much of its wait as DelaySeconds
allows, and a task that arrives early is hidden again with ChangeMessageVisibility (service.py explains the limits).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from functions.common.clients import aws_client
from functions.common.ssrf import AddressPolicy, IPAddress, UrlRefused, UrlUnresolvable, WebhookUrl, check_url
from functions.contracts.webhooks import DeliveryError, status_error
from functions.webhooks.service import HTTP_GONE, DeliveryTask, HttpAttempt, TaskEnqueueFailed

Connector = Callable[[tuple[str, int], float], socket.socket]
"""Opens a TCP connection to (address, port) within a timeout: socket.create_connection, or a test's guard."""

USER_AGENT = "media-pipeline-webhooks/1"
MAX_ADDRESSES = 3
SQS_BATCH = 10


class _ConnectFailed(OSError):
    """No TCP connection to this address: the next checked address may be tried."""


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP to a fixed address, whatever `host` (used for the Host header) resolves to."""

    def __init__(self, url: WebhookUrl, address: IPAddress, timeout: float, connector: Connector) -> None:
        super().__init__(url.host, url.port, timeout=timeout)
        self._address = str(address)
        self._connector = connector
        self._abort_handle: socket.socket | None = None
        self.aborted = False

    def _open(self) -> socket.socket:
        try:
            sock = self._connector((self._address, self.port), self.timeout)
        except OSError as err:
            raise _ConnectFailed(str(err) or type(err).__name__) from err
        # A duplicate of the descriptor: shutting it down ends the connection for the TLS layer too.
        self._abort_handle = sock.dup()
        if self.aborted:
            sock.close()
            raise TimeoutError("deadline passed while connecting")
        return sock

    def connect(self) -> None:
        self.sock = self._open()

    def abort(self) -> None:
        self.aborted = True
        handle = self._abort_handle
        if handle is not None:
            with contextlib.suppress(OSError):  # already closed by the peer or by us
                handle.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        super().close()
        if self._abort_handle is not None:
            self._abort_handle.close()
            self._abort_handle = None


class _PinnedTlsConnection(_PinnedConnection):
    """HTTPS to a fixed address; SNI and the certificate check use the URL's host name."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, url: WebhookUrl, address: IPAddress, timeout: float, connector: Connector, tls: Any) -> None:
        super().__init__(url, address, timeout, connector)
        self._tls = tls

    def connect(self) -> None:
        self.sock = self._tls.wrap_socket(self._open(), server_hostname=self.host)


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()  # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass
class Transport:
    """Sends signed webhooks under the address policy."""

    policy: AddressPolicy
    """Allow-list and resolver for the SSRF check."""
    timeout_seconds: float = 15.0
    """A delivery succeeds only with a 2xx within this long."""
    connector: Connector = socket.create_connection
    """How TCP connections are opened."""
    tls: Any = field(default_factory=_tls_context)
    """TLS context (certificate and host name checks on)."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpAttempt:
        started = time.monotonic()
        deadline = started + self.timeout_seconds

        def result(status: int | None, error: str | None, detail: str | None = None) -> HttpAttempt:
            return HttpAttempt(status, error, int((time.monotonic() - started) * 1000), detail)

        try:
            target, addresses = check_url(url, self.policy)
        except UrlUnresolvable as err:  # before UrlRefused: nowhere to connect, rather than somewhere not allowed
            return result(None, DeliveryError.CONNECT_FAILED, f"refused: {err}")
        except UrlRefused as err:
            return result(None, DeliveryError.REFUSED_ADDRESS, f"refused: {err}")
        request_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        detail = "no address to connect to"
        # IPv4 first: a function outside a VPC has no IPv6 route, and a failed connect costs part of the deadline.
        for address in sorted(addresses, key=lambda a: a.version)[:MAX_ADDRESSES]:
            where = f"[{address}]:{target.port}" if address.version == 6 else f"{address}:{target.port}"
            try:
                status = self._exchange(target, address, body, request_headers, deadline)
            except _ConnectFailed as err:
                detail = f"connection to {where} failed: {err}"
                if time.monotonic() >= deadline:  # a connect that used up the deadline is a failed connect too
                    break
                continue  # nothing was sent: the next checked address may answer
            except ssl.SSLError as err:  # before OSError: SSLError is one
                return result(None, DeliveryError.TLS_ERROR, f"TLS: {err.reason or err} ({where})")
            except (OSError, http.client.HTTPException) as err:
                if isinstance(err, TimeoutError):
                    return result(None, DeliveryError.TIMEOUT, f"timed out after {self.timeout_seconds:g} s")
                return result(None, DeliveryError.CONNECT_FAILED, f"no answer from {where}: {_describe(err)}")
            if 200 <= status < 300:
                return result(status, None)
            return result(status, status_error(status), _status_detail(status))
        return result(None, DeliveryError.CONNECT_FAILED, detail)

    def _exchange(
        self, url: WebhookUrl, address: IPAddress, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> int:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        connection: _PinnedConnection
        if url.scheme == "https":
            connection = _PinnedTlsConnection(url, address, remaining, self.connector, self.tls)
        else:
            connection = _PinnedConnection(url, address, remaining, self.connector)
        watchdog = threading.Timer(remaining, connection.abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            connection.request("POST", url.request_target, body=body, headers=dict(headers))
            response = connection.getresponse()
        except _ConnectFailed:
            raise
        except (OSError, http.client.HTTPException) as err:
            if connection.aborted:
                raise TimeoutError("deadline passed") from err
            raise
        else:
            if connection.aborted:
                raise TimeoutError("deadline passed")
            return response.status
        finally:
            watchdog.cancel()
            connection.close()


def _status_detail(status: int) -> str:
    if 300 <= status < 400:
        return f"HTTP {status}: redirect not followed"
    if status == HTTP_GONE:
        return "HTTP 410: endpoint gone, disabled"
    return f"HTTP {status}"


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}"[:200] if text else type(err).__name__


class SqsTaskQueue:
    """The delivery queue and its DLQ (the service's TaskQueue)."""

    def __init__(self, queue_url: str, dead_letter_queue_url: str, sqs: Any = None) -> None:
        self._queue_url = queue_url
        self._dlq_url = dead_letter_queue_url
        self._sqs = sqs or aws_client("sqs")

    def send(self, tasks: Sequence[DeliveryTask], delay_seconds: int = 0) -> None:
        for start in range(0, len(tasks), SQS_BATCH):
            chunk = tasks[start : start + SQS_BATCH]
            entries = [
                {"Id": str(index), "MessageBody": task.to_json(), "DelaySeconds": delay_seconds}
                for index, task in enumerate(chunk)
            ]
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            if response.get("Failed"):
                codes = sorted({failure.get("Code", "?") for failure in response["Failed"]})
                raise TaskEnqueueFailed(f"{len(response['Failed'])} of {len(chunk)} tasks not queued: {codes}")

    def defer(self, receipt_handle: str, seconds: int) -> None:
        self._sqs.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

    def dead_letter(self, task: DeliveryTask, reason: str) -> None:
        self._sqs.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=task.to_json(),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:256]}},
        )
