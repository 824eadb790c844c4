"""Signed URLs and signed cookies, verified as CloudFront verifies them; and the key the local cloud signs with.

A cache behaviour with trusted key groups serves a request only when it carries a valid signature: in the query
(`Policy` or `Expires`, `Signature`, `Key-Pair-Id`) or, when the query has none of those, in the cookies
`CloudFront-Policy`/`CloudFront-Expires`, `CloudFront-Signature`, `CloudFront-Key-Pair-Id`. The Key-Pair-Id must be a
public key in one of the behaviour's key groups; the policy must be one CloudFront can read (else `MalformedPolicy`,
whatever the signature); the signature is RSA-SHA1 (PKCS#1 v1.5) over the policy JSON, sent in CloudFront's URL-safe
base64 (`-` for `+`, `_` for `=`, `~` for `/`). A custom policy is sent as is; a canned one is rebuilt from the URL
and `Expires`, byte for byte as CloudFront builds it. The policy's Resource (`*` and `?`
wildcards) must match the URL the viewer asked for, `scheme://host/path` plus its query without the signing
parameters; `DateLessThan` must be in the future, `DateGreaterThan` (if any) in the past, and `IpAddress` (if any)
must contain the viewer. Refusals carry CloudFront's own error codes and messages (`MissingKey`, `InvalidKey`,
`MalformedPolicy`, `MalformedSignature`, `AccessDenied`); the reason in detail is for the local cloud's log.

The key: `.local/cdn-key.pem`, an RSA 2048 key generated once per state directory (mode 0600), which the local cloud
hands the program as its `cdnPrivateKey` config, as a deployed stack's secret config holds the real one.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from local.cdn.distribution import wildcard_matches
from local.cdn.viewer import ViewerRequest

KEY_FILE = "cdn-key.pem"
SIGNING_PARAMETERS = ("Policy", "Expires", "Signature", "Key-Pair-Id")
COOKIE_PREFIX = "CloudFront-"


class SignatureRefused(Exception):
    """CloudFront's 403 for a request whose signature is missing or does not hold."""

    def __init__(self, code: str, message: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.message = message
        self.reason = reason


def _access_denied(reason: str) -> SignatureRefused:
    return SignatureRefused("AccessDenied", "Access denied", reason)


def cloudfront_b64decode(value: str) -> bytes:
    """CloudFront's URL-safe base64: `-` for `+`, `_` for `=`, `~` for `/`."""
    standard = value.replace("-", "+").replace("_", "=").replace("~", "/")
    return base64.b64decode(standard, validate=True)


def cloudfront_b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode().replace("+", "-").replace("=", "_").replace("/", "~")


def canned_policy(resource: str, expires: int) -> str:
    """The policy a canned-policy signature covers, exactly as CloudFront (and every SDK) builds it."""
    condition = '{"DateLessThan":{"AWS:EpochTime":' + str(int(expires)) + "}}"
    return '{"Statement":[{"Resource":"' + resource + '","Condition":' + condition + "}]}"


def signed_url_resource(request: ViewerRequest) -> str:
    """The URL a policy's Resource must match: as the viewer sent it, less the signing parameters."""
    kept = [
        segment
        for segment in (request.query.split("&") if request.query else [])
        if unquote(segment.partition("=")[0]) not in SIGNING_PARAMETERS
    ]
    return f"{request.scheme}://{request.host}{request.path}" + (f"?{'&'.join(kept)}" if kept else "")


def signing_values(request: ViewerRequest) -> tuple[dict[str, str], str]:
    """The signing values and where they came from: the query if it has any of them, else the cookies."""
    from_query = {name: unquote(value) for name, value in request.query_pairs if name in SIGNING_PARAMETERS}
    if from_query:
        return from_query, "query"
    cookies = request.cookies
    return {
        name: unquote(cookies[COOKIE_PREFIX + name]) for name in SIGNING_PARAMETERS if COOKIE_PREFIX + name in cookies
    }, "cookies"


def _condition_value(condition: Mapping[str, Any], operator: str, key: str) -> Any:
    block = condition.get(operator)
    return block.get(key) if isinstance(block, dict) else None


def _epoch(condition: Mapping[str, Any], operator: str) -> int | None:
    value = _condition_value(condition, operator, "AWS:EpochTime")
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise SignatureRefused("MalformedPolicy", "Malformed Policy", f"{operator} is not an epoch time") from err


def _statement(policy_text: str) -> Mapping[str, Any]:
    try:
        document = json.loads(policy_text)
        statements = document["Statement"]
    except (ValueError, KeyError, TypeError) as err:
        raise SignatureRefused("MalformedPolicy", "Malformed Policy", "the policy is not a policy document") from err
    if not isinstance(statements, list) or len(statements) != 1 or not isinstance(statements[0], dict):
        raise SignatureRefused("MalformedPolicy", "Malformed Policy", "a policy holds exactly one statement")
    return statements[0]


def parse_policy(policy_text: str) -> Mapping[str, Any]:
    """The policy's one statement, if it is a policy CloudFront can read (else MalformedPolicy, whatever the
    signature)."""
    statement = _statement(policy_text)
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        raise SignatureRefused("MalformedPolicy", "Malformed Policy", "the statement has no Condition")
    if _epoch(condition, "DateLessThan") is None:
        raise SignatureRefused("MalformedPolicy", "Malformed Policy", "the statement has no DateLessThan")
    _epoch(condition, "DateGreaterThan")
    address = _condition_value(condition, "IpAddress", "AWS:SourceIp")
    if address is not None:
        try:
            ipaddress.ip_network(str(address), strict=False)
        except ValueError as err:
            raise SignatureRefused("MalformedPolicy", "Malformed Policy", f"bad AWS:SourceIp {address}") from err
    return statement


def check_policy(statement: Mapping[str, Any], resource: str, viewer_ip: str, now: float) -> None:
    """A (signed) policy statement's Resource, dates and address against this request; raises SignatureRefused."""
    condition = statement["Condition"]
    pattern = statement.get("Resource")
    if pattern is not None and not wildcard_matches(str(pattern), resource):
        raise _access_denied(f"the policy's Resource {pattern} does not cover {resource}")
    expires = _epoch(condition, "DateLessThan")
    if expires is not None and now >= expires:
        raise _access_denied(f"expired: the policy allowed requests until {expires}, it is {int(now)}")
    starts = _epoch(condition, "DateGreaterThan")
    if starts is not None and now <= starts:
        raise _access_denied(f"not yet valid: the policy allows requests from {starts}, it is {int(now)}")
    address = _condition_value(condition, "IpAddress", "AWS:SourceIp")
    if address is not None and ipaddress.ip_address(viewer_ip) not in ipaddress.ip_network(str(address), strict=False):
        raise _access_denied(f"the viewer {viewer_ip} is not in the policy's AWS:SourceIp {address}")


def verify_signed_request(request: ViewerRequest, trusted_keys: Mapping[str, Any], now: float) -> str:
    """The Key-Pair-Id of a request whose signed URL or signed cookies hold for it; raises SignatureRefused."""
    values, source = signing_values(request)
    key_pair_id = values.get("Key-Pair-Id", "")
    if not key_pair_id:
        raise SignatureRefused(
            "MissingKey", "Missing Key-Pair-Id query parameter or cookie value", f"no Key-Pair-Id in the {source}"
        )
    public_key = trusted_keys.get(key_pair_id)
    if public_key is None:
        raise SignatureRefused("InvalidKey", "Unknown Key", f"{key_pair_id} is not in the behaviour's key groups")
    resource = signed_url_resource(request)
    if "Policy" in values:
        try:
            policy = cloudfront_b64decode(values["Policy"]).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError) as err:
            raise SignatureRefused("MalformedPolicy", "Malformed Policy", "the Policy is not base64") from err
    elif "Expires" in values:
        if not values["Expires"].isdigit():
            raise SignatureRefused("MalformedPolicy", "Malformed Policy", "Expires is not an epoch time")
        policy = canned_policy(resource, int(values["Expires"]))
    else:
        raise _access_denied(f"the {source} has neither a Policy nor Expires")
    statement = parse_policy(policy)
    try:
        signature = cloudfront_b64decode(values.get("Signature", ""))
    except (binascii.Error, ValueError) as err:
        raise SignatureRefused("MalformedSignature", "Could not unencode Signature", "bad Signature") from err
    if not signature:
        raise _access_denied(f"no Signature in the {source}")
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise _access_denied(f"{key_pair_id} is not an RSA key")
    try:
        public_key.verify(signature, policy.encode(), padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature as err:
        raise _access_denied(f"the Signature does not match the policy ({source}, key {key_pair_id})") from err
    check_policy(statement, resource, request.ip, now)
    return key_pair_id


def load_or_create_private_key(state_dir: Path) -> str:
    """The local cloud's CDN signing key (PKCS#8 PEM), generated on first use and kept for the state directory."""
    path = state_dir / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
        return path.read_text()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return pem.decode()
