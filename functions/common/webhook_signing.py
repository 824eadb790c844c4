"""Standard Webhooks v1 signatures: secrets `whsec_<base64>`, `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

Plain functions. The delivery function signs with `signature_header` (one signature per live secret, so a receiver
part-way through a secret rotation verifies with either); `verify` is the receiver's side of the same scheme.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300  # how far a receiver lets webhook-timestamp stray from its clock (replay window)


class SignatureError(ValueError):
    """A webhook that does not verify: missing header, stale or future timestamp, or no matching signature."""


def new_secret(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A fresh endpoint secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret encodes."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as err:
        raise ValueError("a webhook secret is base64 after whsec_") from err
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<signature>` of one message; `msg_id` may not contain '.', which delimits the signed content."""
    if not msg_id or "." in msg_id:
        raise ValueError("a webhook id is non-empty and has no '.'")
    if timestamp < 0:
        raise ValueError("a webhook timestamp is seconds since the epoch")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(signing_secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-delimited, current secret first."""
    if not signing_secrets:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in signing_secrets)


def webhook_headers(signing_secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(signing_secrets, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Raises SignatureError unless `headers` carry a timestamp within tolerance and a v1 signature of `body`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    raw_timestamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (msg_id and raw_timestamp and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit():
        raise SignatureError("webhook-timestamp is not seconds since the epoch")
    timestamp = int(raw_timestamp)
    if timestamp < now - tolerance_seconds:
        raise SignatureError("webhook-timestamp is too old")
    if timestamp > now + tolerance_seconds:
        raise SignatureError("webhook-timestamp is in the future")
    try:
        expected = sign(secret, msg_id, timestamp, body).encode()
    except ValueError as err:
        raise SignatureError(str(err)) from err
    for candidate in signatures.split(" "):
        if candidate.startswith(f"{SIGNATURE_VERSION},") and hmac.compare_digest(candidate.encode(), expected):
            return
    raise SignatureError("no signature matches")
