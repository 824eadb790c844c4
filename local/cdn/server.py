"""The local CloudFront: the program's distribution served on 127.0.0.1 (GET, HEAD and OPTIONS).

A request takes the first ordered cache behaviour whose path pattern matches, else the default one, and goes through
what that behaviour declares, in CloudFront's order:

1. a method the behaviour does not allow: 403;
2. trusted key groups: a valid signed URL or signed cookies (`signed_requests.py`), checked on the viewer's request
   as it arrived, before any function sees it, else CloudFront's 403 (`MissingKey`, `InvalidKey`, `AccessDenied`...);
3. the viewer-request function, which may change the request or answer it;
4. a CORS preflight the response headers policy answers; anything else reads the object from the origin bucket as the
   origin access control makes CloudFront (`origin.py`), ranges included;
5. the response headers policy, then the viewer-response function (not for an origin status of 400 or more, as
   CloudFront documents).

CloudFront's own refusals carry no CORS headers (as CloudFront's do not); S3's errors are relayed with them. The CDN
listens on plain HTTP on loopback and stands for the distribution's HTTPS endpoint (the viewer protocol policy is not
applied); there is no cache, so every request reaches the origin and caching headers are the object's own.

The CDN reads no request body: a request that carries one is refused with 403, as CloudFront refuses a GET with a
body, and the connection is closed, so the unread body is never parsed as another request; framing that is
ambiguous (CL.TE, TE.CL, obs-fold, a malformed length) is refused with 400 the same way, as the gateway refuses it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from local.cdn import local_sign_in
from local.cdn.distribution import CacheBehaviour, Distribution
from local.cdn.functions import (
    FunctionExecutionError,
    FunctionValidationError,
    check_request,
    is_response,
    request_object,
    response_object,
    response_parts,
    viewer_event,
)
from local.cdn.origin import OriginResponse, S3OriginReader, s3_error
from local.cdn.response_headers import Headers, header_value, put, without
from local.cdn.signed_requests import SignatureRefused, verify_signed_request
from local.cdn.viewer import ViewerRequest
from local.engine.emulator import Emulator
from local.runtime.gateway import BodyFraming, FramedRequestHandler, FramingRefused

log = logging.getLogger("local.cdn")

POP = "LOCAL1-C1"
# Headers a viewer-response function cannot change: CloudFront keeps its own.
READ_ONLY = ("content-length", "transfer-encoding", "via", "connection")
# What a refused request's page says (the reason in detail goes to the log).
REFUSED_FRAMING = {
    400: "Bad request: the request's length is malformed or ambiguous.",
    403: "A request with a body is not accepted.",
    501: "The request's Transfer-Encoding is not supported.",
}


@dataclass
class Answer:
    status: int
    headers: Headers
    body: Iterable[bytes] = ()


def cloudfront_error(code: str, message: str, reason: str = "") -> Answer:
    """CloudFront's own XML refusal (a signature problem); the local reason goes in a header, never a key."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>'
    ).encode()
    headers = [("Content-Type", "text/xml"), ("Content-Length", str(len(body))), ("X-Cache", "Error from cloudfront")]
    if reason:
        headers.append(("X-Local-Cloud-Reason", reason.replace("\r", " ").replace("\n", " ")))
    return Answer(403, headers, [body])


def cloudfront_page(status: int, title: str, detail: str) -> Answer:
    """CloudFront's HTML error page (a method it does not allow, a function that failed)."""
    body = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN"><HTML><HEAD><TITLE>ERROR: The request could '
        f'not be satisfied</TITLE></HEAD><BODY><H1>{status} ERROR</H1><H2>{escape(title)}</H2><HR noshade size="1px">'
        f"{escape(detail)}</BODY></HTML>"
    ).encode()
    headers = [
        ("Content-Type", "text/html"),
        ("Content-Length", str(len(body))),
        ("X-Cache", "Error from cloudfront"),
    ]
    return Answer(status, headers, [body])


class _ViewerServer(ThreadingHTTPServer):
    """Players drop connections whenever they have what they wanted (ffmpeg closes a keep-alive connection mid-wait):
    a viewer going away is not the CDN's error, so it is not reported as one. A player opens several connections at
    once: socketserver's default backlog (5) would reset some of them."""

    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class LocalCdn:
    """A threaded HTTP server on 127.0.0.1 serving one distribution."""

    def __init__(
        self,
        distribution: Distribution,
        emulator: Emulator,
        account: str,
        region: str,
        port: int,
        *,
        mint_token: local_sign_in.Minter | None = None,
    ) -> None:
        self.distribution = distribution
        self.mint_token = mint_token
        """Serves the console's local sign-in (local_sign_in.py) when set."""
        self.origin = S3OriginReader(emulator, account, region, distribution.arn)
        self.requests = 0
        self.refused = 0
        cdn = self

        class Handler(_RequestHandler):
            server_cdn = cdn

        self._server = _ViewerServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="cdn", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        behaviours = [self.distribution.default_behaviour, *self.distribution.ordered_behaviours]
        for function in {id(f): f for b in behaviours for f in b.functions.values()}.values():
            function.close()

    # --- one request -----------------------------------------------------------------------------------------------

    def answer(self, request: ViewerRequest, now: float | None = None) -> Answer:
        """What CloudFront answers the viewer's request (the body's chunks are read as they are sent)."""
        self.requests += 1
        distribution = self.distribution
        if request.path == "/" and distribution.default_root_object:
            request = replace(request, path="/" + distribution.default_root_object)
        behaviour = distribution.behaviour_for(request.path)
        if request.method not in behaviour.allowed_methods:
            return cloudfront_page(
                403,
                "The request could not be satisfied.",
                "This distribution is not configured to allow the HTTP request method that was used for this request.",
            )
        if behaviour.requires_signature:
            try:
                verify_signed_request(request, behaviour.trusted_keys, time.time() if now is None else now)
            except SignatureRefused as refused:
                self.refused += 1
                log.warning("CDN refused %s %s: %s", request.method, request.path, refused.reason)
                return cloudfront_error(refused.code, refused.message, refused.reason)
        try:
            return self._through_functions(request, behaviour)
        except FunctionExecutionError as err:
            log.warning("CloudFront Function failed: %s", err)
            return cloudfront_page(503, "The CloudFront function associated with this request failed.", str(err))
        except FunctionValidationError as err:
            log.warning("CloudFront Function returned something CloudFront cannot use: %s", err)
            return cloudfront_page(502, "The CloudFront function returned an invalid value.", str(err))

    def _through_functions(self, request: ViewerRequest, behaviour: CacheBehaviour) -> Answer:
        distribution = self.distribution
        event_request: Any = request_object(request)
        viewer_request = behaviour.functions.get("viewer-request")
        if viewer_request is not None:
            event = viewer_event(
                "viewer-request",
                distribution_id=distribution.id,
                domain_name=distribution.domain_name,
                viewer_ip=request.ip,
                request=event_request,
            )
            result = viewer_request.run(event)
            if is_response(result):
                status, headers, body = response_parts(result)
                content = body or b""
                headers = put(headers, "Content-Length", str(len(content)))
                return Answer(status, self._cloudfront_headers(headers), [content])
            event_request = check_request(result)
        policy = behaviour.headers_policy
        if policy is not None and policy.is_preflight(request):
            headers = policy.apply([("Content-Length", "0")], request, preflight=True)
            return Answer(200, self._cloudfront_headers(headers))
        if request.method == "OPTIONS":
            # Not a preflight the policy answers: S3's CORS answer, which the local origin does not evaluate.
            fetched = s3_error(403, "AccessForbidden", "CORSResponse: This CORS request is not allowed.", "GET")
        else:
            fetched = self._fetch(behaviour, event_request, request)
        headers = fetched.headers if policy is None else policy.apply(fetched.headers, request)
        headers = self._cloudfront_headers(headers)
        viewer_response = behaviour.functions.get("viewer-response")
        if viewer_response is None or fetched.status >= 400:
            return Answer(fetched.status, headers, fetched.body)
        event = viewer_event(
            "viewer-response",
            distribution_id=distribution.id,
            domain_name=distribution.domain_name,
            viewer_ip=request.ip,
            request=event_request,
            response=response_object(fetched.status, headers),
        )
        status, returned, _ = response_parts(viewer_response.run(event))
        kept = [(name, value) for name, value in headers if name.lower() in READ_ONLY]
        return Answer(status, [*without(returned, *READ_ONLY), *kept], fetched.body)

    def _fetch(self, behaviour: CacheBehaviour, event_request: Any, viewer: ViewerRequest) -> OriginResponse:
        origin = self.distribution.origins.get(behaviour.target_origin_id)
        if origin is None or origin.bucket is None:
            target = origin.domain_name if origin else behaviour.target_origin_id
            log.warning("CDN: origin %s is not an S3 bucket; custom origins are not emulated", target)
            page = cloudfront_page(502, "The request could not be satisfied.", f"origin {target} is not emulated")
            return OriginResponse(page.status, page.headers, page.body)
        uri = str(event_request["uri"])
        key = unquote(uri.lstrip("/"))
        if origin.origin_path:
            key = f"{origin.origin_path}/{key}"
        header = event_request.get("headers") or {}
        return self.origin.fetch(
            origin,
            key,
            viewer.method,
            range_header=(header.get("range") or {}).get("value"),
            if_none_match=(header.get("if-none-match") or {}).get("value"),
            viewer_signed="authorization" in header,
        )

    @staticmethod
    def _cloudfront_headers(headers: Headers) -> Headers:
        request_id = uuid.uuid4().hex
        extra = [
            ("X-Cache", "Miss from cloudfront"),
            ("Via", f"1.1 {request_id[:32]}.cloudfront.net (CloudFront)"),
            ("X-Amz-Cf-Pop", POP),
            ("X-Amz-Cf-Id", request_id),
        ]
        return [*headers, *[(n, v) for n, v in extra if header_value(headers, n) is None]]


class _RequestHandler(FramedRequestHandler):
    server_cdn: LocalCdn
    protocol_version = "HTTP/1.1"

    def admit(self, framing: BodyFraming) -> None:
        if self._is_sign_in():
            return
        if self.command == "POST":  # as a method the CDN does not serve: 501, its body unread
            raise FramingRefused(501, "POST")
        # A method the CDN does not serve is answered 501 without its body, and the connection closed, as before.
        if framing.has_body and hasattr(self, f"do_{self.command}"):
            raise FramingRefused(403, f"a {self.command} request with a body")

    def _is_sign_in(self) -> bool:
        return self.server_cdn.mint_token is not None and self.path.partition("?")[0] == local_sign_in.TOKEN_PATH

    def send_refusal(self, status: int) -> None:
        self.server_cdn.requests += 1
        page = cloudfront_page(status, "The request could not be satisfied.", REFUSED_FRAMING.get(status, ""))
        self.send_response(page.status)
        for name, value in [*page.headers, ("Connection", "close")]:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"".join(page.body))

    def version_string(self) -> str:
        return "CloudFront"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._sign_in()  # admit() refused every other POST

    def _sign_in(self) -> None:
        """The console's local sign-in (local_sign_in.py), the one route that reads a body."""
        body = b""
        if self.command == "POST":
            try:
                body = self.read_body(local_sign_in.MAX_BODY_BYTES)
            except FramingRefused as refused:
                self.refuse(refused)
                return
        assert self.server_cdn.mint_token is not None
        status, answer = local_sign_in.token_answer(
            self.command, self.headers.get("Content-Type") or "", body, self.server_cdn.mint_token
        )
        content = json.dumps(answer).encode()
        self.send_response(status)
        for name, value in [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(content))),
            ("Cache-Control", "no-store"),
        ]:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def _handle(self) -> None:
        if self._is_sign_in():
            self._sign_in()
            return
        path, _, query = self.path.partition("?")
        request = ViewerRequest(
            method=self.command,
            scheme="http",
            host=self.headers.get("Host") or f"127.0.0.1:{self.server_cdn.port}",
            path=path,
            query=query,
            headers=tuple(self.headers.items()),
            ip=self.client_address[0],
        )
        answer = self.server_cdn.answer(request)
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        try:
            for chunk in answer.body:
                if self.command != "HEAD":
                    self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("the viewer went away during %s %s", self.command, path)
            self.close_connection = True
