"""Webhook test support: a network guard, scriptable receivers on 127.0.0.1, the webhook tables, TLS certificates.

Not fixtures: the API's webhook tests import it too.

NETWORK RULE: every server here binds 127.0.0.1, and `guard_network` makes it impossible for a test to reach any
other address: name resolution answers only from the test's own table (nothing goes to a DNS server), and a socket
asked to connect anywhere but 127.0.0.1 raises before a packet leaves. The SSRF tests prove refusals under it.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.functions.declared_tables import WEBHOOK_DELIVERIES_TABLE, WEBHOOK_ENDPOINTS_TABLE, create_declared_table

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
HANG = "hang"  # a receiver behaviour: accept the request and never answer (until the test ends)
TRICKLE = "trickle"  # answer one byte of the status line a second, forever
MAX_HANG_SECONDS = 30


class NetworkGuardTripped(AssertionError):
    """A test tried to reach an address other than 127.0.0.1: the code under test would have sent a packet."""


def guard_network(monkeypatch: Any, names: Mapping[str, Sequence[str]]) -> list[str]:
    """Resolve only `names` (and IP literals, which need no lookup); connect only to 127.0.0.1. Returns the lookups."""
    lookups: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        lookups.append(name)
        try:
            addresses = [str(ipaddress.ip_address(name))]
        except ValueError:
            if name not in names:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            addresses = list(names[name])
        infos = []
        for address in addresses:
            if ipaddress.ip_address(address).version == 4:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0))))
            else:
                infos.append(
                    (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0), 0, 0))
                )
        return infos

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] != LOOPBACK:
            raise NetworkGuardTripped(f"connection to {address[0]} attempted")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return lookups


@dataclass
class Connections:
    """A connector for Transport that records where it was asked to go and refuses all but 127.0.0.1."""

    asked: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, address: tuple[str, int], timeout: float) -> socket.socket:
        self.asked.append(address)
        if address[0] != LOOPBACK:
            raise NetworkGuardTripped(f"transport asked to connect to {address[0]}")
        return socket.create_connection(address, timeout)


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified: bool | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's reverse lookup of the bound address
        self.server_name, self.server_port = LOOPBACK, self.server_address[1]


class Receiver:
    """A real HTTP server on 127.0.0.1 answering request n with `script[n]` (the last entry repeats).

    An entry is a status code, HANG or TRICKLE. With `secrets`, each request is verified with the Standard Webhooks
    reference implementation (the `standardwebhooks` package) and answered 400 when it does not verify.
    """

    def __init__(
        self,
        script: Sequence[int | str] = (204,),
        *,
        secrets: Sequence[str] = (),
        location: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.script = list(script)
        self.secrets = list(secrets)
        self.location = location
        self.requests: list[ReceivedRequest] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                verified = receiver._verify(headers, body)
                with receiver._lock:
                    index = len(receiver.requests)
                    receiver.requests.append(ReceivedRequest(self.path, headers, body, time.monotonic(), verified))
                action = receiver.script[min(index, len(receiver.script) - 1)]
                if action == HANG:
                    receiver.release.wait(MAX_HANG_SECONDS)
                    return
                if action == TRICKLE:
                    for byte in b"HTTP/1.1 200 OK\r\n":
                        if receiver.release.wait(1):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                status = 400 if verified is False else int(action)
                self.send_response(status)
                if receiver.location and 300 <= status < 400:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read the recorded requests, not the server's log lines."""

        self._server = _Server((LOOPBACK, 0), Handler)
        self.scheme = "http"
        if tls is not None:  # serve HTTPS: the handshake happens when a connection is accepted
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _verify(self, headers: dict[str, str], body: bytes) -> bool | None:
        if not self.secrets:
            return None
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            return True
        return False

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, host: str = LOOPBACK, path: str = "/hooks/media") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def create_webhook_tables(endpoints: str = "webhook-endpoints", deliveries: str = "webhook-deliveries") -> None:
    """The two tables as components/webhooks.py declares them."""
    create_declared_table(WEBHOOK_ENDPOINTS_TABLE, endpoints)
    create_declared_table(WEBHOOK_DELIVERIES_TABLE, deliveries)


def self_signed_certificate(directory: Any, hostname: str) -> tuple[str, str]:
    """A throwaway certificate for `hostname` (a DNS SAN only) and its key, as PEM files; returns their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{hostname}.crt", directory / f"{hostname}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)
