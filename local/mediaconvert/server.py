"""The local MediaConvert's HTTP endpoint on 127.0.0.1: rest-json, routed and parsed by botocore's own service model.

Each operation's `requestUri` and method become a route; its URI, query-string and body members are read back into
botocore parameters (member names) and checked against the model, so a handler sees exactly what the boto3 caller
passed. Answers are the operation's output shape in wire names with its `responseCode`; errors carry the HTTP status,
`x-amzn-ErrorType` and `{"message"}`, which botocore turns into a ClientError with that code. Requests are not
authenticated (as with the moto server beside it). Operations the stand-in does not serve answer 501 NotImplemented.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from botocore.model import OperationModel

from local.mediaconvert.model import (
    MODEL,
    ServiceError,
    ShapeMismatch,
    bad_request,
    from_wire,
    request_errors,
    to_wire,
)
from local.runtime.gateway import FramedRequestHandler, FramingRefused

log = logging.getLogger("local.mediaconvert.service")

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Route:
    operation: OperationModel
    method: str
    pattern: re.Pattern[str]


def compile_routes() -> list[Route]:
    """One route per operation of the model: `/2017-08-29/jobs/{id}` matches `/2017-08-29/jobs/<id>`."""
    routes = []
    for name in MODEL.operation_names:
        operation = MODEL.operation_model(name)
        path = operation.http["requestUri"].split("?", 1)[0]
        regex = re.sub(r"\\\{(\w+)(?:\\\+)?\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(path))
        routes.append(Route(operation, operation.http["method"], re.compile(regex)))
    return routes


def _scalar(value: str, kind: str) -> Any:
    if kind in ("integer", "long"):
        try:
            return int(value)
        except ValueError as err:
            raise bad_request(f"{value!r} is not an integer") from err
    if kind == "boolean":
        return value.lower() == "true"
    return value


def request_params(operation: OperationModel, path_values: dict[str, str], query: str, body: bytes) -> dict[str, Any]:
    """The botocore parameters of a request, from its URI, query string and JSON body, along the model."""
    shape = operation.input_shape
    if shape is None:
        return {}
    queries = dict(parse_qsl(query, keep_blank_values=True))
    body_members: dict[str, Any] = {}
    if body:
        try:
            body_members = json.loads(body)
        except json.JSONDecodeError as err:
            raise bad_request("the request body is not JSON") from err
        if not isinstance(body_members, dict):
            raise bad_request("the request body is not a JSON object")
    params: dict[str, Any] = {}
    wire_body: dict[str, Any] = {}
    by_wire = {member.serialization.get("name", name): (name, member) for name, member in shape.members.items()}
    for wire_name, (name, member) in by_wire.items():
        location = member.serialization.get("location")
        if location == "uri" and wire_name in path_values:
            params[name] = _scalar(unquote(path_values[wire_name]), member.type_name)
        elif location == "querystring" and wire_name in queries:
            params[name] = _scalar(queries[wire_name], member.type_name)
        elif location is None and wire_name in body_members:
            wire_body[wire_name] = body_members[wire_name]
    unknown = sorted(set(body_members) - set(wire_body))
    if unknown:
        raise bad_request(f"{operation.name}: unknown member {unknown[0]!r}")
    try:
        params |= from_wire(wire_body, shape)
    except ShapeMismatch as err:
        raise bad_request(f"{operation.name}: {err}") from err
    errors = request_errors(operation.name, params)
    if errors:
        raise bad_request(f"{operation.name}: " + "; ".join(errors))
    return params


class MediaConvertServer:
    """ThreadingHTTPServer on 127.0.0.1 serving `handlers` (operation name → params → output params)."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        port: int = 0,
        authorize: Callable[[str, Mapping[str, str], dict[str, Any]], None] | None = None,
    ) -> None:
        self._handlers = handlers
        self._authorize = authorize
        self._routes = compile_routes()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._request_handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.requests = 0

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="mediaconvert-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def answer(
        self, method: str, target: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) for one request; raises ServiceError for an error answer."""
        self.requests += 1
        url = urlsplit(target)
        for route in self._routes:
            found = route.pattern.fullmatch(url.path)
            if found is None or route.method != method:
                continue
            operation = route.operation
            handler = self._handlers.get(operation.name)
            if handler is None:
                raise ServiceError(501, "NotImplemented", f"{operation.name} is not emulated by the local MediaConvert")
            params = request_params(operation, found.groupdict(), url.query, body)
            if self._authorize is not None:
                self._authorize(operation.name, headers or {}, params)
            result = handler(params)
            output = operation.output_shape
            return int(operation.http.get("responseCode", 200)), to_wire(result, output) if output else {}
        raise ServiceError(404, "NotFoundException", f"no MediaConvert operation is {method} {url.path}")

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        # Bodies framed strictly, as the gateway's are: one it does not read is refused and never parsed as a request.
        class RequestHandler(FramedRequestHandler):
            protocol_version = "HTTP/1.1"

            def send_refusal(self, status: int) -> None:
                message = "request body too large" if status == 413 else "the request's framing is malformed"
                self._send(
                    status, {"message": message}, {"x-amzn-ErrorType": "BadRequestException", "Connection": "close"}
                )

            def _serve(self) -> None:
                try:
                    request_body = self.read_body(MAX_BODY_BYTES)
                except FramingRefused as refused:
                    self.refuse(refused)
                    return
                extra: dict[str, str] = {}
                try:
                    status, body = server.answer(self.command, self.path, request_body, dict(self.headers))
                except ServiceError as err:
                    status, body = err.status, {"message": err.message}
                    extra["x-amzn-ErrorType"] = err.error_type
                self._send(status, body, extra)

            def _send(self, status: int, body: dict[str, Any], extra: Mapping[str, str]) -> None:
                encoded = json.dumps(body).encode()
                self.send_response(status)
                headers = {"Content-Type": "application/json", "x-amzn-RequestId": secrets.token_hex(16), **extra}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("mediaconvert %s", format % args)

        return RequestHandler
