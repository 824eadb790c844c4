"""Playback links through the CDN: CloudFront signed URLs whose one custom policy covers a job's whole folder.

One signature serves the master playlist and everything under `outputs/{jobId}/`: the policy's resource is
`{base_url}/outputs/{jobId}/*`, every link of a job carries the same Policy, Signature and Key-Pair-Id, and the
distribution's playlist behaviour turns them into signed cookies for the requests a player makes from relative URIs
(components/cdn_signed_cookies.js). The private key lives in Secrets Manager, read once per execution environment.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import GetParameterError
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from functions.common.clock import now_ms
from functions.common.settings import EnvironmentReader
from functions.contracts.playback import job_prefix

MAX_TTL_SECONDS = 7 * 24 * 3600  # the longest a download link lives (DOWNLOAD_URL_TTL_SECONDS), so a playback link too
SECRET_CACHE_SECONDS = 3600  # Powertools' cache of the secret; the loaded key is kept for the environment's life
LOOPBACK_HOSTS = frozenset({"localhost"})


class PlaybackKeyUnavailable(RuntimeError):
    """The signing key could not be read from Secrets Manager, or is not an RSA private key."""


@dataclass(frozen=True)
class SignedPlayback:
    """Signed links to some of a job's outputs, all valid until the same moment."""

    urls: dict[str, str]
    """The caller's names -> `{base_url}/{key}?Policy=...&Signature=...&Key-Pair-Id=...`."""
    expires_at_ms: int
    """When CloudFront stops honouring them (epoch milliseconds, a whole second)."""


def parse_base_url(value: str) -> str:
    """`scheme://host[:port]` without a trailing slash: https, or http to a loopback host (a local cloud)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"must be an https://host[:port] origin without a path, got {value!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"must be an https://host[:port] origin without a path, got {value!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"must be https (plain http only to a loopback host, for a local cloud), got {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PlaybackLinks:
    """Signs links to a job's outputs with the CDN's key (RSA-SHA1, as CloudFront requires), one policy per job."""

    def __init__(
        self,
        base_url: str,
        key_pair_id: str,
        private_key: Callable[[], str],
        ttl_seconds: int,
        clock_ms: Callable[[], int],
    ) -> None:
        if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be 1 to {MAX_TTL_SECONDS}, got {ttl_seconds}")
        self._base_url = parse_base_url(base_url)
        self._signer = CloudFrontSigner(key_pair_id, self._rsa_sign)
        self._private_key = private_key
        self._ttl_seconds = ttl_seconds
        self._clock_ms = clock_ms
        self._key: rsa.RSAPrivateKey | None = None
        self._key_lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, clock_ms: Callable[[], int] = now_ms) -> PlaybackLinks:
        """From CDN_BASE_URL, CDN_KEY_PAIR_ID, CDN_PRIVATE_KEY_SECRET_ARN and DOWNLOAD_URL_TTL_SECONDS; the secret is
        fetched on the first signature, not here."""
        read = EnvironmentReader(environ)
        base_url = read.required("CDN_BASE_URL") and read.parsed("CDN_BASE_URL", parse_base_url, "")
        key_pair_id = read.required("CDN_KEY_PAIR_ID")
        secret_arn = read.arn("CDN_PRIVATE_KEY_SECRET_ARN")
        ttl_seconds = read.integer("DOWNLOAD_URL_TTL_SECONDS", 1, MAX_TTL_SECONDS)
        read.done("playback links")
        return cls(base_url, key_pair_id, lambda: _read_secret(secret_arn), ttl_seconds, clock_ms)

    def signed(self, job_id: str, keys: Mapping[str, str]) -> SignedPlayback:
        """Links to `keys` (name -> outputs-bucket key, each under `outputs/{job_id}/`), all under one signature."""
        folder = _job_folder(job_id)
        for name, key in keys.items():
            relative = key.removeprefix(folder)
            if relative == key or not relative or any(part in ("", ".", "..") for part in relative.split("/")):
                raise ValueError(f"{name}: {key!r} is not a file under {folder}")
        expires_s = self._clock_ms() // 1000 + self._ttl_seconds
        policy = self._signer.build_policy(
            f"{self._base_url}/{quote(folder)}*", date_less_than=datetime.fromtimestamp(expires_s, UTC)
        )
        urls = {
            name: self._signer.generate_presigned_url(f"{self._base_url}/{quote(key)}", policy=policy)
            for name, key in keys.items()
        }
        return SignedPlayback(urls=urls, expires_at_ms=expires_s * 1000)

    def _rsa_sign(self, message: bytes) -> bytes:
        # CloudFront verifies RSA-SHA1 with PKCS#1 v1.5 padding, and nothing else.
        return self._loaded_key().sign(message, padding.PKCS1v15(), hashes.SHA1())

    def _loaded_key(self) -> rsa.RSAPrivateKey:
        with self._key_lock:
            if self._key is None:
                self._key = _load_rsa_key(self._private_key())
            return self._key


def _job_folder(job_id: str) -> str:
    if not job_id or any(c in job_id for c in "/*?") or job_id in (".", ".."):
        raise ValueError(f"{job_id!r} is not a job ID")
    return job_prefix(job_id)


def _load_rsa_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise PlaybackKeyUnavailable("the CDN signing key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PlaybackKeyUnavailable("the CDN signing key is not an RSA key")
    return key


def _read_secret(secret_arn: str) -> str:
    try:
        value: Any = parameters.get_secret(secret_arn, max_age=SECRET_CACHE_SECONDS)
    except GetParameterError as err:
        raise PlaybackKeyUnavailable(f"cannot read the CDN signing key {secret_arn}: {err}") from err
    if not isinstance(value, str):
        raise PlaybackKeyUnavailable(f"{secret_arn} holds no SecretString")
    return value
