"""A minimal OpenID Connect provider on 127.0.0.1 for the console's browser test: the authorization code flow with
PKCE (S256), as the console uses against a stack's issuer in AWS.

`/authorize` checks the client, the redirect URI and the challenge method, and redirects back with a one-time code;
`/token` redeems it only with the verifier whose SHA-256 is the challenge, for the same client and redirect URI, and
answers with a token `mint(subject)` signs (the local cloud's key, so its API accepts it). What it saw is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class Grant:
    challenge: str
    redirect_uri: str


@dataclass
class IdentityProvider:
    client_id: str
    redirect_uri: str
    subject: str
    mint: Callable[[str], str]
    allowed_origin: str
    grants: dict[str, Grant] = field(default_factory=dict)
    redeemed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if query.get("client_id") != self.client_id or query.get("redirect_uri") != self.redirect_uri:
            return self._refuse("unknown client or redirect URI")
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return self._refuse("only the code flow with an S256 challenge")
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(query.get("code_challenge", ""), self.redirect_uri)
        back = f"{self.redirect_uri}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        return 302, {"Location": back}, b""

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return self._json(400, {"error": "invalid_grant"}, "unknown or used code")
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.challenge:
            return self._json(400, {"error": "invalid_grant"}, "the verifier does not match the challenge")
        if form.get("client_id") != self.client_id or form.get("redirect_uri") != grant.redirect_uri:
            return self._json(400, {"error": "invalid_client"}, "client or redirect URI differ from the grant's")
        self.redeemed.append(form["code"])
        token = self.mint(self.subject)
        return self._json(200, {"access_token": token, "id_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _refuse(self, reason: str) -> tuple[int, dict[str, str], bytes]:
        self.refused.append(reason)
        return 400, {"Content-Type": "text/plain"}, reason.encode()

    def _json(self, status: int, body: dict[str, Any], reason: str = "") -> tuple[int, dict[str, str], bytes]:
        if reason:
            self.refused.append(reason)
        # The page's own origin calls the token endpoint: it must allow it, as a real provider's CORS does.
        headers = {"Content-Type": "application/json", "Access-Control-Allow-Origin": self.allowed_origin}
        return status, headers, json.dumps(body).encode()


def serve(provider: IdentityProvider, port: int) -> ThreadingHTTPServer:
    """Serves `provider` on 127.0.0.1:port in a daemon thread; shut it down with `.shutdown()`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/authorize":
                self._answer(404, {}, b"")
                return
            self._answer(*provider.authorize({k: v[0] for k, v in parse_qs(url.query).items()}))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path != "/token":
                self._answer(404, {}, b"")
                return
            self._answer(*provider.token(form))

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="oidc-provider", daemon=True).start()
    return server
