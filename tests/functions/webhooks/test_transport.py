"""One attempt over real HTTP to receivers on 127.0.0.1: the checked address is the one used, redirects are not
followed, the deadline holds against hanging and trickling receivers, TLS checks the URL's name.

Under guard_network: names resolve only from DNS below, and any connection but to 127.0.0.1 raises.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from functions.common.ssrf import AddressPolicy, parse_allowed_networks
from functions.common.webhook_signing import new_secret, webhook_headers
from functions.webhooks.adapters import Transport
from tests.functions.webhooks.support import (
    HANG,
    LOOPBACK,
    TRICKLE,
    Connections,
    Receiver,
    guard_network,
    self_signed_certificate,
)

RECEIVER_NAME = "receiver.example.test"
DNS = {
    RECEIVER_NAME: [LOOPBACK],
    "internal.example.test": ["10.0.0.7"],
    "metadata.example.test": ["169.254.169.254"],
    "sneaky.example.test": ["93.184.215.14", LOOPBACK],
}
LOCAL = AddressPolicy(allowed=parse_allowed_networks([LOOPBACK]))
BODY = json.dumps({"type": "job.completed", "timestamp": "2026-01-01T00:00:00.000Z", "data": {"jobId": "J"}}).encode()


@pytest.fixture(autouse=True)
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_network(monkeypatch, DNS)


@pytest.fixture
def connections() -> Connections:
    return Connections()


def signed(secret: str) -> dict[str, str]:
    return webhook_headers([secret], "msg_J_completed", int(time.time()), BODY)


def test_a_2xx_is_a_delivery_the_reference_receiver_verifies_with_the_name_as_host(
    connections: Connections, lookups: list[str]
) -> None:
    secret = new_secret()
    with Receiver([202], secrets=[secret]) as receiver:
        result = Transport(LOCAL, connector=connections).post(receiver.url(RECEIVER_NAME), BODY, signed(secret))
    assert (result.status_code, result.error, result.delivered) == (202, None, True)
    (request,) = receiver.requests
    assert request.verified is True
    assert request.path == "/hooks/media"
    assert request.body == BODY
    assert request.headers["host"] == f"{RECEIVER_NAME}:{receiver.port}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "media-pipeline-webhooks/1"
    assert request.headers["webhook-id"] == "msg_J_completed"
    assert connections.asked == [(LOOPBACK, receiver.port)]
    # One name lookup, and the connection went to its checked answer (numeric addresses are not looked up in DNS).
    assert [name for name in lookups if name != LOOPBACK] == [RECEIVER_NAME]


def test_a_redirect_to_the_metadata_service_is_not_followed(connections: Connections) -> None:
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    with Receiver([302], location=metadata) as receiver:
        result = Transport(LOCAL, connector=connections).post(receiver.url(), BODY, signed(new_secret()))
    assert (result.status_code, result.delivered) == (302, False)
    assert result.error == "http_302"
    assert result.detail == "HTTP 302: redirect not followed"
    assert len(receiver.requests) == 1
    assert connections.asked == [(LOOPBACK, receiver.port)]  # following it would have tripped the guard


@pytest.mark.parametrize(("script", "error"), [([500], "http_500"), ([410], "http_410")])
def test_other_statuses_fail_and_410_says_the_endpoint_is_gone(script: list[int], error: str) -> None:
    with Receiver(script) as receiver:
        result = Transport(LOCAL, connector=Connections()).post(receiver.url(), BODY, signed(new_secret()))
    assert (result.status_code, result.error, result.delivered, result.gone) == (
        script[0],
        error,
        False,
        error == "http_410",
    )


@pytest.mark.parametrize("behaviour", [HANG, TRICKLE])
def test_a_receiver_that_hangs_or_trickles_is_cut_off_at_the_deadline(behaviour: str) -> None:
    with Receiver([behaviour]) as receiver:
        started = time.monotonic()
        result = Transport(LOCAL, timeout_seconds=1.5, connector=Connections()).post(
            receiver.url(), BODY, signed(new_secret())
        )
        elapsed = time.monotonic() - started
    assert (result.status_code, result.error, result.detail) == (None, "timeout", "timed out after 1.5 s")
    # Cut off, not waited out: the receiver never finishes, so any bound well short of the test's end proves it.
    assert 1.4 <= elapsed < 10.0
    assert len(receiver.requests) == 1


def test_a_closed_port_is_a_failed_connection_that_names_no_os_error_address_or_port() -> None:
    probe = socket.socket()
    probe.bind((LOOPBACK, 0))
    port = probe.getsockname()[1]
    probe.close()
    result = Transport(LOCAL, connector=Connections()).post(f"http://{LOOPBACK}:{port}/", BODY, {})
    assert (result.status_code, result.error) == (None, "connect_failed")
    # The operator's log line has the details the client's answer must not: the OS error, the address and port.
    assert result.detail is not None and "refused" in result.detail.lower()
    assert f"{LOOPBACK}:{port}" in result.detail


def test_a_receiver_that_hangs_up_before_answering_is_a_failed_connection() -> None:
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def hang_up() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")  # a service that is not HTTP: no status line
        connection.close()

    server = threading.Thread(target=hang_up, daemon=True)
    server.start()
    try:
        result = Transport(LOCAL, connector=Connections()).post(f"http://{LOOPBACK}:{port}/", BODY, {})
    finally:
        server.join(timeout=5)
        listener.close()
    assert (result.status_code, result.error) == (None, "connect_failed")
    assert result.detail is not None and "SSH" not in result.error


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.7/hook", "a private address"),
        ("http://internal.example.test/hook", "a private address"),
        ("http://metadata.example.test/latest/meta-data/", "a link-local address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
        ("http://sneaky.example.test:8080/hook", "a loopback address"),
        ("http://[::ffff:a9fe:a9fe]/", "a link-local address"),
        ("http://2852039166/", "four decimal octets"),
    ],
)
def test_refused_urls_never_reach_the_connection_layer(url: str, reason: str, connections: Connections) -> None:
    result = Transport(AddressPolicy(), connector=connections).post(url, BODY, signed(new_secret()))
    assert (result.status_code, result.error) == (None, "refused_address")
    assert result.detail is not None and reason in result.detail
    assert connections.asked == []


@pytest.mark.parametrize("port", [22, 25, 6379, 11211])
def test_a_service_port_is_refused_at_delivery_without_a_lookup_or_a_connection(
    port: int, connections: Connections, lookups: list[str]
) -> None:
    # An endpoint stored before the port rule existed is checked again, like every URL, before each attempt.
    for url in (f"http://8.8.8.8:{port}/", f"http://{RECEIVER_NAME}:{port}/hook"):
        result = Transport(AddressPolicy(), connector=connections).post(url, BODY, signed(new_secret()))
        assert (result.status_code, result.error) == (None, "refused_address")
        assert result.detail is not None and result.detail.startswith(f"refused: the URL's port {port} ")
    assert connections.asked == [] and lookups == []


def test_without_the_allow_list_a_local_receiver_is_refused(connections: Connections) -> None:
    with Receiver([204]) as receiver:
        result = Transport(AddressPolicy(), connector=connections).post(receiver.url(RECEIVER_NAME), BODY, {})
    assert (result.error, result.detail) == (
        "refused_address",
        "refused: the URL's host resolves to a loopback address",
    )
    assert receiver.requests == [] and connections.asked == []


def test_a_name_that_rebinds_between_lookups_is_connected_to_as_first_checked(connections: Connections) -> None:
    answers = iter([[LOOPBACK], ["10.0.0.7"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    policy = AddressPolicy(allowed=LOCAL.allowed, resolver=rebinding)
    with Receiver([204]) as receiver:
        result = Transport(policy, connector=connections).post(receiver.url(RECEIVER_NAME), BODY, {})
    assert result.delivered
    assert calls == [RECEIVER_NAME]  # one lookup per attempt: the second, rebound answer is never asked for
    assert connections.asked == [(LOOPBACK, receiver.port)]


def test_https_sends_the_name_as_sni_and_checks_the_certificate_against_it(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path, RECEIVER_NAME)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=cert)
    with Receiver([200], tls=server_tls) as receiver:
        good = Transport(LOCAL, connector=Connections(), tls=client_tls).post(receiver.url(RECEIVER_NAME), BODY, {})
        # The same server reached by its address: the certificate names only the host, so TLS refuses.
        bad = Transport(LOCAL, connector=Connections(), tls=client_tls).post(receiver.url(LOOPBACK), BODY, {})
    assert (good.status_code, good.error) == (200, None)
    assert receiver.requests[0].headers["host"] == f"{RECEIVER_NAME}:{receiver.port}"
    assert (bad.status_code, bad.error) == (None, "tls_error")
    assert bad.detail is not None and bad.detail.startswith("TLS:")
    assert len(receiver.requests) == 1


def test_a_connect_that_uses_up_the_deadline_is_a_failed_connection_not_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A filtered port (no answer to the SYN) looks like a closed one to the client: both are `connect_failed`.
    guard_network(monkeypatch, {"dual.example.test": [LOOPBACK, "::1"]})
    asked: list[tuple[str, int]] = []

    def filtered(address: tuple[str, int], timeout: float) -> socket.socket:
        asked.append(address)
        time.sleep(timeout)
        raise TimeoutError("timed out")

    policy = AddressPolicy(allowed=parse_allowed_networks([LOOPBACK, "::1"]))
    result = Transport(policy, timeout_seconds=0.5, connector=filtered).post("http://dual.example.test:8080/", BODY, {})
    assert (result.status_code, result.error) == (None, "connect_failed")
    assert result.detail == f"connection to {LOOPBACK}:8080 failed: timed out"
    assert asked == [(LOOPBACK, 8080)]  # the deadline was gone: the second address was not tried
