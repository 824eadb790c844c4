"""Local JWT issuer and the HTTP API's JWT authorizer check (issuer, audience, expiry, RS256 signature).

One RSA key is generated per state directory (`.local/jwt-key.pem`); tokens from `python -m local token`
are signed with it, and the local API accepts exactly those, like an API Gateway JWT authorizer pointed at
an identity provider's JWKS.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_FILE = "jwt-key.pem"
AUTH_FILE = "auth.json"


class Unauthorized(Exception):
    """The request carries no token, or one the authorizer rejects."""


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def load_or_create(cls, state_dir: Path) -> SigningKey:
        path = state_dir / KEY_FILE
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{path} is not an RSA private key")
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
        public_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(private_key=key, kid=hashlib.sha256(public_der).hexdigest()[:16])


@dataclass(frozen=True)
class AuthorizerSettings:
    """What a JWT authorizer resource declares: the issuer and the accepted audiences."""

    issuer: str
    audiences: tuple[str, ...]

    def save(self, state_dir: Path) -> None:
        (state_dir / AUTH_FILE).write_text(json.dumps({"issuer": self.issuer, "audiences": list(self.audiences)}))

    @classmethod
    def load(cls, state_dir: Path) -> AuthorizerSettings:
        path = state_dir / AUTH_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: start the local cloud once (python -m local up)")
        data = json.loads(path.read_text())
        return cls(issuer=data["issuer"], audiences=tuple(data["audiences"]))


def issue_token(
    key: SigningKey, settings: AuthorizerSettings, subject: str, ttl_seconds: int = 3600, **claims: Any
) -> str:
    now = int(time.time())
    payload = {
        "iss": settings.issuer,
        "aud": settings.audiences[0] if settings.audiences else "",
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        **claims,
    }
    return jwt.encode(payload, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def _claim_text(value: Any) -> str:
    """API Gateway hands claims to the function as strings; lists read `[a b]`."""
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class JwtAuthorizer:
    """Verifies a bearer token the way an API Gateway HTTP API JWT authorizer does."""

    def __init__(self, key: SigningKey, settings: AuthorizerSettings, identity_source: str) -> None:
        self._public_key = key.private_key.public_key()
        self._kid = key.kid
        self.settings = settings
        self._header = identity_source.removeprefix("$request.header.").lower()

    def authorize(self, headers: dict[str, str], required_scopes: list[str] | None = None) -> dict[str, Any]:
        """The `requestContext.authorizer` block for an accepted request; raises Unauthorized otherwise."""
        raw = headers.get(self._header, "").strip()
        token = raw[7:].strip() if raw[:7].lower() == "bearer " else raw
        if not token:
            raise Unauthorized("missing token")
        try:
            if jwt.get_unverified_header(token).get("kid") not in (None, self._kid):
                raise Unauthorized("unknown signing key")
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                issuer=self.settings.issuer,
                audience=list(self.settings.audiences),
                options={"require": ["exp", "iss"]},
            )
        except jwt.PyJWTError as err:
            raise Unauthorized(str(err)) from err
        scopes = str(claims.get("scope", "")).split() or None
        if required_scopes and not set(required_scopes) & set(scopes or []):
            raise PermissionError("token lacks the route's scopes")
        return {"jwt": {"claims": {k: _claim_text(v) for k, v in claims.items()}, "scopes": scopes}}
