"""Keep-alive for the emulator's HTTP server: one connection carries many requests, as it does to AWS.

Werkzeug's development server (which moto's server is) answers every request with `Connection: close`, because
Python's http.server cannot tell where an unread request body ends. So every call a function or the local cloud
makes to the emulator paid a new TCP connection and a new server thread: about 250 connections for four concurrent
jobs, against 25 now, and 6% of the local cloud's own CPU (2.67 CPU s against 2.50), taken from the encoders beside it
(bench/pipeline_overhead.py). This handler keeps the connection open when it knows where the request ends: the
application (and werkzeug's own discard of unread input after the response) reads the request body through a reader
that ends at its Content-Length, and what it left is read before the next request. A body of no stated length
(chunked) closes the connection, as before.
"""

from __future__ import annotations

import io
from typing import IO, Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

DRAIN_CHUNK_BYTES = 64 * 1024


class BodyReader(io.RawIOBase):
    """The request body: at most `length` bytes of the connection, then end of file."""

    def __init__(self, stream: IO[bytes], length: int) -> None:
        super().__init__()
        self._stream = stream
        self.remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[: self.remaining]
        count = self._stream.readinto(view) or 0  # type: ignore[attr-defined]
        self.remaining -= count
        return count

    def read(self, size: int | None = -1) -> bytes:
        wanted = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self._stream.read(wanted) if wanted else b""
        self.remaining -= len(data)
        return data

    def discard_rest(self) -> bool:
        """Read what the application left of the body; False when the client closed before sending it all."""
        while self.remaining > 0:
            if not self.read(DRAIN_CHUNK_BYTES):
                return False
        return True


def body_length(headers: Any) -> int | None:
    """The request body's length when the connection can carry another request after it: a Content-Length (none: no
    body) and no Transfer-Encoding; None otherwise."""
    if headers.get("Transfer-Encoding"):
        return None
    value = (headers.get("Content-Length") or "0").strip()
    return int(value) if value.isdigit() else None


class KeepAliveMotoHandler(MotoRequestHandler):
    """moto's request handler, keeping HTTP/1.1 connections open between requests."""

    _keep_alive = False
    # werkzeug writes a response's headers and its body in two sends: on a connection kept open, Nagle's algorithm
    # holds the body until the client acknowledges the headers, which it delays by 40 ms (every call took 44 ms).
    disable_nagle_algorithm = True

    def send_header(self, keyword: str, value: str) -> None:
        # Werkzeug sends `Connection: close` on every response.
        if self._keep_alive and keyword.lower() == "connection" and value.lower() == "close":
            return
        super().send_header(keyword, value)

    def run_wsgi(self) -> None:
        length = body_length(self.headers)
        if length is None:
            super().run_wsgi()
            return
        connection, body = self.rfile, BodyReader(self.rfile, length)
        # Werkzeug hands `self.rfile` to the application as wsgi.input, and after the response reads whatever the
        # socket still holds: here that is the body's rest, never the next request.
        self.rfile, self._keep_alive = body, True  # type: ignore[assignment]
        try:
            super().run_wsgi()
        finally:
            # Outside a request (a malformed one refused by http.server) `Connection: close` closes, as before.
            self.rfile, self._keep_alive = connection, False
        if not body.discard_rest():
            self.close_connection = True


class KeepAliveMotoServer(ThreadedMotoServer):
    """moto's threaded server with `KeepAliveMotoHandler`: moto builds its server in `_server_entry`, with its own
    handler and no way to pass another, so this builds the same server with this handler."""

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=KeepAliveMotoHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
