"""Request framing on the local gateway and the local CDN, attacked on raw sockets (issue 12, weakness 6).

A request whose body a server does not read in full (too large, an ambiguous or unsupported length, a body the CDN
never reads) is answered once with `Connection: close` and the connection is closed: the unread bytes, here a
complete `GET /health` or `GET /ok`, must never be answered as a second request. CL.TE and TE.CL desyncs,
obfuscated Transfer-Encoding values, obs-fold and malformed lengths are refused the same way; pipelined requests
with well-framed bodies (Content-Length or chunked) still get one answer each on a kept-alive connection.

The gateway is the fixture program's (`fixture_cloud`, whose `GET /health` needs no token), and for CORS preflights,
which API Gateway answers itself, an `HttpApiGateway` built in-process on a declared API with a CORS configuration
(the fixture program declares none); the CDN is a `LocalCdn` built in-process as test_local_cdn.py builds one, whose
viewer-request function answers every request itself.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from local.cdn.distribution import CacheBehaviour, Distribution
from local.cdn.functions import CloudFrontFunction
from local.cdn.server import LocalCdn
from local.cloud import free_port
from local.engine.deployment import Behaviour, DeclaredResource, Deployment, ResourceType
from local.engine.emulator import ACCOUNT_ID, Emulator
from local.mediaconvert.server import MAX_BODY_BYTES as MEDIACONVERT_MAX_BODY
from local.mediaconvert.server import MediaConvertServer
from local.runtime.gateway import MAX_BODY_BYTES, HttpApiGateway
from local.runtime.workers import Runtimes
from tests.e2e.conftest import RunningCloud

REGION = "us-east-1"
READ_SECONDS = 30.0
"""How long a test waits for answers on one connection, at most (a refused connection closes long before)."""
GRACE_SECONDS = 0.5
"""How long a test keeps reading after the answers it expects, to see that no other answer follows."""
ANSWER_EVERYTHING = """
function handler(event) {
  return {statusCode: 200, statusDescription: 'OK', body: {encoding: 'text', data: 'ok ' + event.request.uri}};
}
"""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Exchange:
    """What came back on one connection: the answers in order, whether the server closed it, and any bytes that do
    not make a complete answer."""

    responses: list[Response]
    closed: bool
    leftover: bytes

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]


def parse_responses(data: bytes, bodiless: bool = False) -> tuple[list[Response], bytes]:
    """HTTP/1.1 answers, one after the other, each delimited by its Content-Length (both servers always send one)."""
    responses: list[Response] = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        if not separator:
            break
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        no_body = bodiless or status < 200 or status in (204, 304)
        length = 0 if no_body else int(headers.get("content-length", "0"))
        if len(rest) < length:
            break
        responses.append(Response(status, headers, rest[:length]))
        data = rest[length:]
    return responses, data


def exchange(
    port: int, raw: bytes, expected: int | None = None, half_close: bool = False, bodiless: bool = False
) -> Exchange:
    """Sends `raw` on one connection to 127.0.0.1:`port` and reads until the server closes it, or until `expected`
    answers came and nothing more followed for GRACE_SECONDS, or until READ_SECONDS passed."""
    received, closed = b"", False
    deadline = time.monotonic() + READ_SECONDS
    with socket.create_connection(("127.0.0.1", port), timeout=READ_SECONDS) as connection:
        connection.sendall(raw)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            if expected is not None and len(parse_responses(received, bodiless)[0]) >= expected:
                left = min(left, GRACE_SECONDS)
            connection.settimeout(left)
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    responses, leftover = parse_responses(received, bodiless)
    return Exchange(responses, closed, leftover)


def assert_refused_once(got: Exchange, status: int) -> None:
    """One answer, the refusal, saying the connection closes; then the connection closed, nothing else sent."""
    assert got.statuses == [status], got
    assert got.responses[0].headers.get("connection", "").lower() == "close", got.responses[0].headers
    assert got.closed, "the server kept the connection open after a refusal"
    assert got.leftover == b"", got.leftover


def request(method: str, target: str, *header_lines: str, body: bytes = b"") -> bytes:
    head = "".join(f"{line}\r\n" for line in (f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *header_lines))
    return head.encode("latin-1") + b"\r\n" + body


def chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n"


# Transfer-Encoding values one parser might read as chunked and another not (TE.TE); none of them is plain `chunked`.
OBFUSCATED_CODINGS = {
    "xchunked": ("Transfer-Encoding: xchunked",),
    "chunk": ("Transfer-Encoding: chunk",),
    "chunked, identity": ("Transfer-Encoding: chunked, identity",),
    "identity, chunked": ("Transfer-Encoding: identity, chunked",),
    "gzip, chunked": ("Transfer-Encoding: gzip, chunked",),
    "chunked twice": ("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
    "chunked then x": ("Transfer-Encoding: chunked", "Transfer-Encoding: x"),
    "quoted": ('Transfer-Encoding: "chunked"',),
    "vertical tab": ("Transfer-Encoding: \x0bchunked",),
    "nul": ("Transfer-Encoding: chunked\x00",),
    "obs-fold": ("Transfer-Encoding:", " chunked"),
    "space before colon": ("Transfer-Encoding : chunked",),
    "tab before colon": ("Transfer-Encoding\t: chunked",),
}
# Unknown codings are not implemented (501); anything malformed is a bad request (400).
NOT_IMPLEMENTED = {
    "xchunked",
    "chunk",
    "chunked, identity",
    "identity, chunked",
    "gzip, chunked",
    "quoted",
    "chunked twice",
    "chunked then x",
}

# Content-Length headers that are not exactly one decimal number.
BAD_LENGTHS = {
    "negative": ("Content-Length: -1",),
    "plus sign": ("Content-Length: +5",),
    "hex": ("Content-Length: 0x10",),
    "exponent": ("Content-Length: 1e3",),
    "empty": ("Content-Length:",),
    "word": ("Content-Length: abc",),
    "list": ("Content-Length: 5, 5",),
    "inner space": ("Content-Length: 5 5",),
    "two equal": ("Content-Length: 5", "Content-Length: 5"),
    "two different": ("Content-Length: 5", "Content-Length: 6"),
    "huge": ("Content-Length: 99999999999999999999999999",),
    "obs-fold": ("Content-Length:", " 5"),
    "space before colon": ("Content-Length : 5",),
}


# --- the gateway ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(fixture_cloud: RunningCloud) -> tuple[int, str]:
    """The gateway's port and its stage prefix (`/` for `$default`)."""
    url = urlsplit(fixture_cloud.api_url)
    assert url.hostname == "127.0.0.1" and url.port is not None
    prefix = url.path if url.path.endswith("/") else url.path + "/"
    # Warm: a smuggled request, if the gateway parsed one, is answered in milliseconds, not after a cold start.
    assert exchange(url.port, smuggled_health(prefix), expected=1).statuses == [200]
    return url.port, prefix


def smuggled_health(prefix: str) -> bytes:
    return request("GET", f"{prefix}health")


@pytest.mark.e2e
def test_two_pipelined_requests_on_one_connection_are_answered_twice(gateway: tuple[int, str]) -> None:
    port, prefix = gateway

    got = exchange(port, smuggled_health(prefix) * 2, expected=2)

    assert got.statuses == [200, 200] and not got.closed and got.leftover == b""
    assert all(b'"ok": true' in r.body or b'"ok":true' in r.body for r in got.responses)


@pytest.mark.e2e
def test_the_bytes_after_a_413_are_never_answered_as_a_request(gateway: tuple[int, str]) -> None:
    port, prefix = gateway
    smuggled = smuggled_health(prefix)
    attack = request("POST", f"{prefix}uploads", f"Content-Length: {MAX_BODY_BYTES + 1}", body=smuggled)

    got = exchange(port, attack)

    assert_refused_once(got, 413)
    assert got.responses[0].body == b'{"message": "Request Entity Too Large"}'


@pytest.mark.e2e
def test_a_413_after_expect_100_continue_is_the_only_answer(gateway: tuple[int, str]) -> None:
    port, prefix = gateway
    smuggled = smuggled_health(prefix)
    lines = (f"Content-Length: {MAX_BODY_BYTES + 1}", "Expect: 100-continue")

    got = exchange(port, request("POST", f"{prefix}uploads", *lines, body=smuggled))

    assert_refused_once(got, 413)  # no `100 Continue` for a body that will not be read


@pytest.mark.e2e
def test_cl_te_is_refused_and_the_connection_closed(gateway: tuple[int, str]) -> None:
    port, prefix = gateway
    body = b"0\r\n\r\n" + smuggled_health(prefix)
    lines = (f"Content-Length: {len(body)}", "Transfer-Encoding: chunked")

    assert_refused_once(exchange(port, request("POST", f"{prefix}uploads", *lines, body=body)), 400)


@pytest.mark.e2e
def test_te_cl_is_refused_and_the_connection_closed(gateway: tuple[int, str]) -> None:
    port, prefix = gateway
    body = chunked(smuggled_health(prefix))
    lines = ("Transfer-Encoding: chunked", "Content-Length: 4")

    assert_refused_once(exchange(port, request("POST", f"{prefix}uploads", *lines, body=body)), 400)


@pytest.mark.e2e
@pytest.mark.parametrize("with_length", [False, True], ids=["alone", "with Content-Length"])
@pytest.mark.parametrize("coding", sorted(OBFUSCATED_CODINGS))
def test_an_obfuscated_transfer_encoding_is_refused(gateway: tuple[int, str], coding: str, with_length: bool) -> None:
    port, prefix = gateway
    body = b"0\r\n\r\n" + smuggled_health(prefix)
    lines = OBFUSCATED_CODINGS[coding] + ((f"Content-Length: {len(body)}",) if with_length else ())
    malformed = coding not in NOT_IMPLEMENTED or with_length

    got = exchange(port, request("POST", f"{prefix}uploads", *lines, body=body))

    assert_refused_once(got, 400 if malformed else 501)


@pytest.mark.e2e
@pytest.mark.parametrize("length", sorted(BAD_LENGTHS))
def test_a_content_length_that_is_not_one_number_is_refused(gateway: tuple[int, str], length: str) -> None:
    port, prefix = gateway
    attack = request("POST", f"{prefix}uploads", *BAD_LENGTHS[length], body=smuggled_health(prefix))

    assert_refused_once(exchange(port, attack), 400)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "header_lines",
    [("X-Note: a", " folded"), ("X-Note: a", "\tfolded"), ("no colon here",), (" X-Leading: continuation",)],
    ids=["obs-fold space", "obs-fold tab", "no colon", "first line folded"],
)
def test_a_malformed_header_line_is_refused_before_the_next_request(
    gateway: tuple[int, str], header_lines: tuple[str, ...]
) -> None:
    port, prefix = gateway
    attack = request("GET", f"{prefix}health", *header_lines) + smuggled_health(prefix)

    assert_refused_once(exchange(port, attack), 400)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "framing",
    [
        b"zz\r\n" + b"x" * 8 + b"\r\n0\r\n\r\n",
        b"0x5\r\nxxxxx\r\n0\r\n\r\n",
        b"-5\r\nxxxxx\r\n0\r\n\r\n",
        b" 5\r\nxxxxx\r\n0\r\n\r\n",
        b"5\r\nxxxxxxxx\r\n0\r\n\r\n",
        b"5\nxxxxx\n0\n\n",
        b"5\r\nxxxxx\r\n0\r\nX-Trailer folded\r\n\r\n",
    ],
    ids=["size not hex", "size 0x", "size negative", "size space", "data longer than size", "bare LF", "bad trailer"],
)
def test_a_malformed_chunked_body_is_refused_and_the_connection_closed(
    gateway: tuple[int, str], framing: bytes
) -> None:
    port, prefix = gateway
    attack = request("POST", f"{prefix}uploads", "Transfer-Encoding: chunked", body=framing) + smuggled_health(prefix)

    assert_refused_once(exchange(port, attack), 400)


@pytest.mark.e2e
def test_a_chunked_body_over_the_limit_is_refused_with_413(gateway: tuple[int, str]) -> None:
    port, prefix = gateway
    framing = f"{MAX_BODY_BYTES + 1:x}\r\n".encode() + smuggled_health(prefix)

    got = exchange(port, request("POST", f"{prefix}uploads", "Transfer-Encoding: chunked", body=framing))

    assert_refused_once(got, 413)


@pytest.mark.e2e
def test_a_body_shorter_than_its_content_length_is_not_dispatched(gateway: tuple[int, str]) -> None:
    port, prefix = gateway

    got = exchange(port, request("POST", f"{prefix}uploads", "Content-Length: 100", body=b"{}"), half_close=True)

    assert_refused_once(got, 400)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("header_lines", "body"),
    [
        (("Content-Length: 2",), b"{}"),
        (("Transfer-Encoding: chunked",), b"2\r\n{}\r\n0\r\n\r\n"),
        (("Transfer-Encoding: Chunked ",), b"1;ext=1\r\n{\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n"),
        (("Content-Length: 0",), b""),
    ],
    ids=["content-length", "chunked", "chunked with extension and trailer", "empty"],
)
def test_a_well_framed_body_keeps_the_connection_for_the_next_request(
    gateway: tuple[int, str], header_lines: tuple[str, ...], body: bytes
) -> None:
    port, prefix = gateway
    pipelined = request("POST", f"{prefix}uploads", *header_lines, body=body) + smuggled_health(prefix)

    got = exchange(port, pipelined, expected=2)

    assert got.statuses == [401, 200] and not got.closed and got.leftover == b""  # uploads needs a token


@pytest.fixture(scope="module")
def cors_gateway_port() -> Iterator[int]:
    """A gateway whose API declares CORS and no route: it answers preflights itself and 404 to anything else."""
    deployment = Deployment(project="framing", stack="test", region=REGION, account_id=ACCOUNT_ID)
    cors = {
        "allowOrigins": ["http://localhost:3000", "http://127.0.0.1:3000"],
        "allowMethods": ["GET", "POST"],
        "allowHeaders": ["*"],
        "exposeHeaders": ["retry-after"],
    }
    api = DeclaredResource(
        ResourceType.HTTP_API, "api", "api0001", {"corsConfiguration": cors}, {"id": "api0001"}, Behaviour.RUNTIME
    )
    deployment.resources.append(api)
    gateway = HttpApiGateway(deployment, Runtimes(), {}, free_port())
    gateway.start()
    try:
        yield gateway.port
    finally:
        gateway.stop()


def preflight(*header_lines: str, body: bytes = b"") -> bytes:
    lines = ("Origin: http://localhost:3000", "Access-Control-Request-Method: POST", *header_lines)
    return request("OPTIONS", "/jobs", *lines, body=body)


def test_a_preflights_body_is_read_not_answered_as_a_request(cors_gateway_port: int) -> None:
    smuggled = request("GET", "/nowhere")

    got = exchange(cors_gateway_port, preflight(f"Content-Length: {len(smuggled)}", body=smuggled), expected=1)

    assert got.statuses == [204] and got.leftover == b"", got
    assert got.responses[0].headers["access-control-allow-origin"] == "http://localhost:3000"


def test_cors_names_only_the_requests_own_origin_and_only_when_allowed(cors_gateway_port: int) -> None:
    """As API Gateway: one origin echoed (a browser refuses a list), none for an origin not allowed; actual responses,
    errors included, carry it with the exposed headers."""
    allowed, refused = preflight(), preflight().replace(b"http://localhost:3000", b"http://evil.example")
    actual = request("GET", "/nowhere", "Origin: http://127.0.0.1:3000")

    got = exchange(cors_gateway_port, allowed + refused + actual, expected=3)

    assert got.statuses == [204, 204, 404]
    assert got.responses[0].headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "access-control-allow-origin" not in got.responses[1].headers
    assert got.responses[2].headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    assert got.responses[2].headers["access-control-expose-headers"] == "retry-after"


def test_pipelined_preflights_are_answered_twice(cors_gateway_port: int) -> None:
    pipelined = preflight("Content-Length: 2", body=b"{}") + preflight("Transfer-Encoding: chunked", body=b"0\r\n\r\n")

    got = exchange(cors_gateway_port, pipelined, expected=2)

    assert got.statuses == [204, 204] and not got.closed and got.leftover == b""


def test_a_body_within_the_limit_gets_100_continue_then_its_answer(cors_gateway_port: int) -> None:
    got = exchange(cors_gateway_port, preflight("Content-Length: 2", "Expect: 100-continue", body=b"{}"), expected=2)

    assert got.statuses == [100, 204] and not got.closed and got.leftover == b""


def test_a_preflight_over_the_limit_is_refused_once(cors_gateway_port: int) -> None:
    attack = preflight(f"Content-Length: {MAX_BODY_BYTES + 1}", body=request("GET", "/nowhere"))

    assert_refused_once(exchange(cors_gateway_port, attack), 413)


# --- the CDN ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdn_port() -> Iterator[int]:
    """A CDN whose only behaviour's viewer-request function answers 200 to everything (no origin is reached)."""
    behaviour = CacheBehaviour(
        path_pattern="*",
        target_origin_id="none",
        allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
        functions={"viewer-request": CloudFrontFunction("answer-everything", ANSWER_EVERYTHING)},
    )
    distribution = Distribution("E1", "arn:aws:cloudfront::1:distribution/E1", "127.0.0.1:1", {}, behaviour)
    cdn = LocalCdn(distribution, Emulator.attach("http://127.0.0.1:9", REGION), ACCOUNT_ID, REGION, free_port())
    cdn.start()
    try:
        yield cdn.port
    finally:
        cdn.stop()


SMUGGLED_OK = request("GET", "/ok")


def test_the_cdn_answers_two_pipelined_gets_twice(cdn_port: int) -> None:
    got = exchange(cdn_port, request("GET", "/a") + request("GET", "/b", "Content-Length: 0"), expected=2)

    assert got.statuses == [200, 200] and not got.closed and got.leftover == b""
    assert [r.body for r in got.responses] == [b"ok /a", b"ok /b"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_body_sent_to_the_cdn_is_refused_and_never_answered_as_a_request(cdn_port: int, method: str) -> None:
    attack = request(method, "/first", f"Content-Length: {len(SMUGGLED_OK)}", body=SMUGGLED_OK)

    got = exchange(cdn_port, attack, bodiless=method == "HEAD")

    assert_refused_once(got, 403)  # CloudFront answers 403 to a GET that carries a body
    assert got.responses[0].headers["x-cache"] == "Error from cloudfront"


def test_a_chunked_body_sent_to_the_cdn_is_refused(cdn_port: int) -> None:
    attack = request("GET", "/first", "Transfer-Encoding: chunked", body=chunked(SMUGGLED_OK))

    assert_refused_once(exchange(cdn_port, attack), 403)


def test_a_method_the_cdn_does_not_serve_is_answered_once_even_with_a_body(cdn_port: int) -> None:
    attack = request("POST", "/first", f"Content-Length: {len(SMUGGLED_OK)}", body=SMUGGLED_OK)

    assert_refused_once(exchange(cdn_port, attack), 501)


@pytest.mark.parametrize("desync", ["CL.TE", "TE.CL"])
def test_the_cdn_refuses_cl_te_and_te_cl(cdn_port: int, desync: str) -> None:
    body = b"0\r\n\r\n" + SMUGGLED_OK if desync == "CL.TE" else chunked(SMUGGLED_OK)
    length = len(body) if desync == "CL.TE" else 4
    attack = request("GET", "/first", f"Content-Length: {length}", "Transfer-Encoding: chunked", body=body)

    assert_refused_once(exchange(cdn_port, attack), 400)


@pytest.mark.parametrize("coding", sorted(OBFUSCATED_CODINGS))
def test_the_cdn_refuses_an_obfuscated_transfer_encoding(cdn_port: int, coding: str) -> None:
    attack = request("GET", "/first", *OBFUSCATED_CODINGS[coding], body=b"0\r\n\r\n" + SMUGGLED_OK)

    assert_refused_once(exchange(cdn_port, attack), 501 if coding in NOT_IMPLEMENTED else 400)


@pytest.mark.parametrize("length", sorted(BAD_LENGTHS))
def test_the_cdn_refuses_a_content_length_that_is_not_one_number(cdn_port: int, length: str) -> None:
    attack = request("GET", "/first", *BAD_LENGTHS[length], body=SMUGGLED_OK)

    assert_refused_once(exchange(cdn_port, attack), 400)


def test_the_cdn_refuses_obs_fold(cdn_port: int) -> None:
    attack = request("GET", "/first", "X-Note: a", " folded") + SMUGGLED_OK

    assert_refused_once(exchange(cdn_port, attack), 400)


# --- the MediaConvert stand-in's API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mediaconvert_port() -> Iterator[int]:
    """The stand-in's HTTP endpoint with no operation handlers: every request it dispatches answers 501."""
    server = MediaConvertServer({}, port=free_port())
    server.start()
    yield int(urlsplit(server.endpoint).port or 0)
    server.stop()


def test_the_bytes_after_a_413_from_the_mediaconvert_stand_in_are_never_answered(mediaconvert_port: int) -> None:
    smuggled = request("GET", "/2017-08-29/jobs")
    raw = request("POST", "/2017-08-29/jobs", f"Content-Length: {MEDIACONVERT_MAX_BODY + 1}", body=smuggled)
    assert_refused_once(exchange(mediaconvert_port, raw, expected=1), 413)


def test_the_mediaconvert_stand_in_refuses_a_cl_te_desync_and_closes(mediaconvert_port: int) -> None:
    smuggled = request("GET", "/2017-08-29/jobs")
    body = b"0\r\n\r\n" + smuggled
    raw = request("POST", "/2017-08-29/jobs", f"Content-Length: {len(body)}", "Transfer-Encoding: chunked", body=body)
    assert_refused_once(exchange(mediaconvert_port, raw, expected=1), 400)
