"""The local HTTP API: serves the routes the program's apigatewayv2 resources declare on 127.0.0.1.

Requests become API Gateway HTTP API payload 2.0 events for the route's Lambda integration; routes with a
JWT authorizer answer 401 {"message":"Unauthorized"} as API Gateway does on a missing or invalid token.

A request's framing is read strictly (`FramedRequestHandler`, which the local CDN shares): a body that is not read in
full, because it is too large or its length is ambiguous, is refused with `Connection: close`, and what follows it on
the connection is discarded, never parsed as another request (request smuggling).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.engine.deployment import Deployment, ResourceType
from local.permissions import enforcement
from local.runtime.auth import JwtAuthorizer, Unauthorized
from local.runtime.workers import FunctionError, FunctionTimeout, Runtimes

log = logging.getLogger("local.runtime.gateway")

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded", "+json", "+xml")
MAX_BODY_BYTES = 10 * 1024 * 1024
API_GATEWAY = "apigateway.amazonaws.com"
REFUSALS = {400: "Bad Request", 413: "Request Entity Too Large", 501: "Not Implemented"}
MAX_FRAMING_LINE = 4096
"""A chunk-size or trailer line longer than this is refused."""
MAX_TRAILER_LINES = 64
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024
"""After a refusal, what the client still sends is read and discarded for this long, up to this much, then closed."""
_DECIMAL = re.compile(r"[0-9]{1,18}")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # obs-fold leaves CR LF in the value; HTAB is allowed
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[^\r\n]*)?\r\n")
_TRAILER = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n\x00]*\r\n")


class _ApiServer(ThreadingHTTPServer):
    """API Gateway takes a burst of connections at once: socketserver's default backlog (5) would reset the rest."""

    request_queue_size = 128


class GatewayConfigError(ValueError):
    """The program's API resources cannot be served (e.g. a route's integration does not exist)."""


@dataclass(frozen=True)
class Route:
    route_key: str
    method: str
    pattern: re.Pattern[str] | None
    function: str
    authorizer: JwtAuthorizer | None
    scopes: tuple[str, ...]
    specificity: tuple[int, int, int]
    refusal: str = ""
    """Why the function's resource policy does not let API Gateway invoke it for this route; empty when it does."""

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.pattern is None:
            return {}
        if self.method not in ("ANY", method):
            return None
        found = self.pattern.fullmatch(path)
        return None if found is None else {k: v for k, v in found.groupdict().items()}


def compile_route(route_key: str) -> tuple[str, re.Pattern[str] | None, tuple[int, int, int]]:
    """`GET /jobs/{jobId}` → method, regex with named groups, sort key (literal segments first, greedy last)."""
    if route_key == "$default":
        return "ANY", None, (-1, 0, 0)
    method, _, path = route_key.partition(" ")
    parts, literal, greedy = [], 0, 0
    for segment in path.strip("/").split("/") if path.strip("/") else []:
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"(?P<{segment[1:-2]}>.+)")
            greedy = 1
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
            literal += 1
    pattern = re.compile("/" + "/".join(parts))
    return method.upper(), pattern, (1 - greedy, literal, int(method.upper() != "ANY"))


def _warn_on_multiple_apis(deployment: Deployment) -> None:
    apis = deployment.of_type(ResourceType.HTTP_API)
    if len(apis) > 1:
        log.warning("%d HTTP APIs declared; the local gateway serves %s", len(apis), apis[0].name)


def invoke_source_arn(deployment: Deployment, route_key: str) -> str:
    """The ARN API Gateway invokes an integration as (a Permission's `source_arn` must match it):
    `{executionArn}/{stage}/{METHOD}{path}` for the route."""
    apis, stages = deployment.of_type(ResourceType.HTTP_API), deployment.of_type(ResourceType.HTTP_STAGE)
    execution_arn = apis[0].state.get("executionArn", "") if apis else ""
    stage = stages[0].state.get("name", "$default") if stages else "$default"
    method, _, path = route_key.partition(" ")
    return f"{execution_arn}/{stage}/{method.upper() if path else route_key}{path}"


def build_routes(deployment: Deployment, authorizers: dict[str, JwtAuthorizer]) -> list[Route]:
    _warn_on_multiple_apis(deployment)
    integrations = {i.id: i for i in deployment.of_type(ResourceType.HTTP_INTEGRATION)}
    routes: list[Route] = []
    for declared in deployment.of_type(ResourceType.HTTP_ROUTE):
        inputs = declared.inputs
        target = inputs.get("target") or ""
        integration = integrations.get(target.removeprefix("integrations/"))
        if integration is None:
            raise GatewayConfigError(f"route {inputs['routeKey']!r}: target {target!r} is not a declared integration")
        declared_function = deployment.function_by_reference(integration.inputs["integrationUri"])
        function = declared_function.state["name"]
        authorizer = None
        if inputs.get("authorizationType", "NONE") == "JWT":
            if inputs.get("authorizerId") not in authorizers:
                raise GatewayConfigError(f"route {inputs['routeKey']!r}: authorizer {inputs.get('authorizerId')!r}")
            authorizer = authorizers[inputs["authorizerId"]]
        elif inputs.get("authorizationType", "NONE") != "NONE":
            raise GatewayConfigError(f"route {inputs['routeKey']!r}: {inputs['authorizationType']} is not emulated")
        method, pattern, specificity = compile_route(inputs["routeKey"])
        routes.append(
            Route(
                route_key=inputs["routeKey"],
                method=method,
                pattern=pattern,
                function=function,
                authorizer=authorizer,
                scopes=tuple(inputs.get("authorizationScopes") or ()),
                specificity=specificity,
                refusal=deployment.invoke_refusal(
                    declared_function, API_GATEWAY, invoke_source_arn(deployment, inputs["routeKey"])
                ),
            )
        )
    return sorted(routes, key=lambda r: r.specificity, reverse=True)


def stage_prefix(deployment: Deployment) -> str:
    stages = deployment.of_type(ResourceType.HTTP_STAGE)
    name = stages[0].state.get("name", "$default") if stages else "$default"
    return "" if name == "$default" else f"/{name}"


def cors_headers(cors: dict[str, Any] | None, origin: str | None, *, preflight: bool) -> dict[str, str]:
    """The CORS headers API Gateway adds for a request from `origin` under an HTTP API's corsConfiguration: the
    origin echoed only when it is allowed (nothing otherwise, and the browser refuses), the methods, headers and max
    age on a preflight, the exposed headers on an actual response. Integration responses' own CORS headers lose."""
    if not cors or not origin:
        return {}
    allowed = cors.get("allowOrigins") or []
    if "*" not in allowed and origin not in allowed:
        return {}
    headers = {"access-control-allow-origin": "*" if "*" in allowed else origin}
    if "*" not in allowed:
        headers["vary"] = "origin"
    if cors.get("allowCredentials"):
        headers["access-control-allow-credentials"] = "true"
    if preflight:
        headers["access-control-allow-methods"] = ",".join(cors.get("allowMethods") or ["*"])
        headers["access-control-allow-headers"] = ",".join(cors.get("allowHeaders") or ["*"])
        headers["access-control-max-age"] = str(cors.get("maxAge") or 0)
    elif cors.get("exposeHeaders"):
        headers["access-control-expose-headers"] = ",".join(cors["exposeHeaders"])
    return headers


def is_text(content_type: str) -> bool:
    return any(marker in content_type.lower() for marker in TEXT_TYPES)


# --- request framing (RFC 9112 section 6), read strictly -----------------------------------------------------------


class FramingRefused(Exception):
    """A request whose body cannot be delimited, or will not be read: answered with `status`, then closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class BodyFraming:
    """How a request's body is delimited: its Content-Length, or chunked."""

    length: int = 0
    chunked: bool = False

    @property
    def has_body(self) -> bool:
        return self.chunked or self.length > 0


def body_framing(headers: Message, request_version: str) -> BodyFraming:
    """The body's framing from the request's headers; anything two parsers could read differently is refused:
    a malformed header line or obs-fold, both Content-Length and Transfer-Encoding (CL.TE, TE.CL), a coding other
    than one `chunked`, a Content-Length that is not exactly one decimal number."""
    if headers.defects or headers.get_payload():
        raise FramingRefused(400, "a header line is malformed (no colon, whitespace before it, or a leading fold)")
    for name, value in headers.items():
        if _CONTROL.search(value):
            raise FramingRefused(400, f"header {name!r} is folded (obs-fold) or holds a control character")
    lengths = headers.get_all("Content-Length") or []
    codings = headers.get_all("Transfer-Encoding") or []
    if lengths and codings:
        raise FramingRefused(400, "both Content-Length and Transfer-Encoding")
    if codings:
        if request_version == "HTTP/1.0":
            raise FramingRefused(400, "Transfer-Encoding in an HTTP/1.0 request")
        if len(codings) != 1 or codings[0].strip(" \t").lower() != "chunked":
            raise FramingRefused(501, f"Transfer-Encoding {codings!r}: only chunked is supported")
        return BodyFraming(chunked=True)
    if not lengths:
        return BodyFraming()
    if len(lengths) > 1 or not _DECIMAL.fullmatch(lengths[0].strip(" \t")):
        raise FramingRefused(400, f"Content-Length {lengths!r} is not one decimal number")
    return BodyFraming(length=int(lengths[0]))


class FramedRequestHandler(BaseHTTPRequestHandler):
    """A request handler that delimits each body strictly and never parses bytes it did not read as a body as the
    next request. A refusal (`send_refusal`) says `Connection: close`; the connection is then half-closed and what the
    client still sends is read and discarded (bounded) before the socket closes, since closing over unread bytes
    resets the connection and a reset can destroy the answer before the client reads it."""

    framing = BodyFraming()
    _framing_checked = False
    _body_read = False
    _refused = False

    def admit(self, framing: BodyFraming) -> None:
        """Raises FramingRefused for a body this server will not read at all (before any of it is read)."""

    def send_refusal(self, status: int) -> None:
        """Answers a refused request; the answer must carry `Connection: close`."""
        self.send_error(status)

    def handle_one_request(self) -> None:
        super().handle_one_request()
        if self.framing.has_body and not self._body_read:
            self.close_connection = True  # a body the method's handler did not read is never parsed as a request

    def parse_request(self) -> bool:
        self.framing, self._framing_checked, self._body_read = BodyFraming(), False, False
        if not super().parse_request():
            return False
        return self._framing_checked or self._check_framing()

    def handle_expect_100(self) -> bool:
        # No `100 Continue` for a body that will be refused.
        return self._check_framing() and super().handle_expect_100()

    def _check_framing(self) -> bool:
        self._framing_checked = True
        try:
            self.framing = body_framing(self.headers, self.request_version)
            self.admit(self.framing)
        except FramingRefused as refused:
            self.refuse(refused)
            return False
        return True

    def refuse(self, refused: FramingRefused) -> None:
        log.info("%s %s refused with %d: %s", self.command, self.path, refused.status, refused.reason)
        self._refused = True
        self.send_refusal(refused.status)
        self.close_connection = True

    def read_body(self, limit: int) -> bytes:
        """The whole body as framed; raises FramingRefused (413 over `limit`, 400 malformed or cut short)."""
        self._body_read = True
        if self.framing.chunked:
            return self._read_chunked(limit)
        length = self.framing.length
        if length > limit:
            raise FramingRefused(413, f"Content-Length {length} is over {limit}")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise FramingRefused(400, f"the body ended after {len(body)} of its {length} bytes")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        body = bytearray()
        while True:
            size_line = _CHUNK_SIZE.fullmatch(self.rfile.readline(MAX_FRAMING_LINE + 1))
            if size_line is None:
                raise FramingRefused(400, "a chunk-size line is malformed")
            size = int(size_line.group(1), 16)
            if size == 0:
                break
            if len(body) + size > limit:
                raise FramingRefused(413, f"the chunked body is over {limit} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.read(2) != b"\r\n":
                raise FramingRefused(400, "a chunk does not end where its size says")
            body += chunk
        for _ in range(MAX_TRAILER_LINES):
            line = self.rfile.readline(MAX_FRAMING_LINE + 1)
            if line == b"\r\n":
                return bytes(body)
            if not _TRAILER.fullmatch(line):
                raise FramingRefused(400, "a trailer line is malformed")
        raise FramingRefused(400, f"more than {MAX_TRAILER_LINES} trailer lines")

    def finish(self) -> None:
        super().finish()
        if self._refused:
            self._discard_the_rest()

    def _discard_the_rest(self) -> None:
        deadline, discarded = time.monotonic() + LINGER_SECONDS, 0
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while discarded < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                data = self.connection.recv(65536)
                if not data:
                    return
                discarded += len(data)
        except OSError:  # a timeout, or the client reset the connection: either way it is closed next
            return


class HttpApiGateway:
    """A threaded HTTP server on 127.0.0.1 that dispatches to the routes' functions."""

    def __init__(
        self, deployment: Deployment, runtimes: Runtimes, authorizers: dict[str, JwtAuthorizer], port: int
    ) -> None:
        self.routes = build_routes(deployment, authorizers)
        self.prefix = stage_prefix(deployment)
        apis = deployment.of_type(ResourceType.HTTP_API)
        self.api_id = apis[0].id if apis else "local"
        self.cors = (apis[0].inputs.get("corsConfiguration") if apis else None) or None
        self.account_id = deployment.account_id
        self.runtimes = runtimes
        self.requests = 0
        gateway = self

        class Handler(_RequestHandler):
            api = gateway

        self._server = _ApiServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def find_route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None


class _RequestHandler(FramedRequestHandler):
    api: HttpApiGateway
    protocol_version = "HTTP/1.1"

    def admit(self, framing: BodyFraming) -> None:
        if framing.length > MAX_BODY_BYTES:
            raise FramingRefused(413, f"Content-Length {framing.length} is over {MAX_BODY_BYTES}")

    def send_refusal(self, status: int) -> None:
        self.api.requests += 1
        message = json.dumps({"message": REFUSALS.get(status, "Bad Request")}).encode()
        self._send(status, message, {"connection": "close"})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        if self.api.cors and self.headers.get("Access-Control-Request-Method"):
            if self._body() is not None:
                self._preflight()
        else:
            self._handle()

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, cookies: list[str] = ()) -> None:
        self.send_response(status)
        headers = {"content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}}
        if self.command != "OPTIONS":
            headers |= cors_headers(self.api.cors, self.headers.get("Origin"), preflight=False)
        headers["content-length"] = str(len(body))
        headers["apigw-requestid"] = uuid.uuid4().hex[:16]
        for name, value in headers.items():
            self.send_header(name, value)
        for cookie in cookies:
            self.send_header("set-cookie", cookie)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _message(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"message": message}).encode())

    def _preflight(self) -> None:
        self._send(204, b"", cors_headers(self.api.cors, self.headers.get("Origin"), preflight=True))

    def _body(self) -> bytes | None:
        """The request's body; None when it was refused (answered, and the connection closing)."""
        try:
            return self.read_body(MAX_BODY_BYTES)
        except FramingRefused as refused:
            self.refuse(refused)
            return None

    def _handle(self) -> None:
        body = self._body()
        if body is None:
            return
        self.api.requests += 1
        url = urlsplit(self.path)
        path = url.path
        if self.api.prefix:
            if not (path == self.api.prefix or path.startswith(self.api.prefix + "/")):
                self._message(404, "Not Found")
                return
            path = path[len(self.api.prefix) :] or "/"
        found = self.api.find_route(self.command, path)
        if found is None:
            self._message(404, "Not Found")
            return
        route, path_parameters = found
        headers = self._lowercase_headers()
        authorizer_context: dict[str, Any] | None = None
        if route.authorizer is not None:
            try:
                authorizer_context = route.authorizer.authorize(headers, list(route.scopes))
            except Unauthorized as err:
                log.info("401 %s %s: %s", self.command, path, err)
                self._message(401, "Unauthorized")
                return
            except PermissionError:
                self._message(403, "Forbidden")
                return
        event = self._event(
            route,
            path=path,
            query=url.query,
            headers=headers,
            path_parameters=path_parameters,
            body=body,
            authorizer=authorizer_context,
        )
        if route.refusal:
            # API Gateway cannot invoke the integration: the client gets a bare 500, the access log says why.
            enforcement.refuse(API_GATEWAY, route.route_key, route.function, route.refusal)
            self._message(500, "Internal Server Error")
            return
        try:
            result = self.api.runtimes.get(route.function).invoke(event)
        except FunctionTimeout:
            self._message(503, "Service Unavailable")
            return
        except FunctionError as err:
            log.warning("%s %s: %s", self.command, path, err)
            self._message(500, "Internal Server Error")
            return
        self._respond(result)

    def _lowercase_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        return headers

    def _event(
        self,
        route: Route,
        *,
        path: str,
        query: str,
        headers: dict[str, str],
        path_parameters: dict[str, str],
        body: bytes,
        authorizer: dict[str, Any] | None,
    ) -> dict[str, Any]:
        now = time.time()
        query_parameters: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            query_parameters[key] = f"{query_parameters[key]},{value}" if key in query_parameters else value
        request_context: dict[str, Any] = {
            "accountId": self.api.account_id,
            "apiId": self.api.api_id,
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": headers.get("host", "127").split(".")[0],
            "http": {
                "method": self.command,
                "path": self.path.split("?", 1)[0],
                "protocol": self.request_version,
                "sourceIp": self.client_address[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex[:16],
            "routeKey": route.route_key,
            "stage": self.api.prefix.strip("/") or "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        }
        if authorizer is not None:
            request_context["authorizer"] = authorizer
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": self.path.split("?", 1)[0],
            "rawQueryString": query,
            "headers": headers,
            "requestContext": request_context,
            "isBase64Encoded": False,
        }
        if "cookie" in headers:
            event["cookies"] = [c.strip() for c in headers["cookie"].split(";") if c.strip()]
        if query_parameters:
            event["queryStringParameters"] = query_parameters
        if path_parameters:
            event["pathParameters"] = path_parameters
        if body:
            if is_text(headers.get("content-type", "")):
                event["body"] = body.decode("utf-8", errors="replace")
            else:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        return event

    def _respond(self, result: Any) -> None:
        """Payload 2.0 responses: a dict with statusCode is used as is; anything else is 200 JSON."""
        if not (isinstance(result, dict) and "statusCode" in result):
            self._send(200, json.dumps(result).encode())
            return
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ",".join(str(v) for v in values)
        self._send(int(result["statusCode"]), raw, headers, result.get("cookies") or [])
