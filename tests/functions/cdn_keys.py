"""The CDN a function signs playback links for, in a test: a throwaway key pair in moto's Secrets Manager and the
variables the program sets (CDN_BASE_URL, CDN_KEY_PAIR_ID, CDN_PRIVATE_KEY_SECRET_ARN)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from functions.common.playback_links import SignedPlayback

CDN_BASE_URL = "https://cdn.example.test"
CDN_KEY_PAIR_ID = "K2JCJMDEHXQW5F"


@cache
def cdn_private_key() -> str:
    """A throwaway RSA key in PEM, standing for the CloudFront key pair's private half (made once per session)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def configure_cdn(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CDN's origin, key pair and the key in Secrets Manager (moto must be running)."""
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name="cdn-private-key", SecretString=cdn_private_key())["ARN"]
    parameters.clear_caches()
    monkeypatch.setenv("CDN_BASE_URL", CDN_BASE_URL)
    monkeypatch.setenv("CDN_KEY_PAIR_ID", CDN_KEY_PAIR_ID)
    monkeypatch.setenv("CDN_PRIVATE_KEY_SECRET_ARN", arn)


def unsigned_playback(job_id: str, keys: Mapping[str, str]) -> SignedPlayback:
    """A `sign_playback` for views whose links do not matter: each link is its key (as `str` is for downloads)."""
    return SignedPlayback(urls=dict(keys), expires_at_ms=0)
