"""Playback links: CloudFront signed URLs, verified here exactly as CloudFront verifies them."""

from __future__ import annotations

import base64
import fnmatch
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto import mock_aws

from functions.common.playback_links import PlaybackKeyUnavailable, PlaybackLinks, parse_base_url
from functions.common.settings import SettingsError

BASE_URL = "https://d111111abcdef8.cloudfront.net"
KEY_PAIR_ID = "K2JCJMDEHXQW5F"
JOB = "01JABCDEFGHJKMNPQRSTVWXYZ0"
NOW_MS = 1_750_000_000_123
TTL_SECONDS = 3600
KEYS = {
    "hls": f"outputs/{JOB}/hls/master.m3u8",
    "poster": f"outputs/{JOB}/poster.jpg",
    "thumbnails": f"outputs/{JOB}/thumbnails/thumbnails.vtt",
}


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def private_pem(private_key: rsa.RSAPrivateKey) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


@pytest.fixture(autouse=True)
def no_cached_secrets() -> Iterator[None]:
    """Powertools caches secrets per process; each test starts without."""
    parameters.clear_caches()
    yield
    parameters.clear_caches()


def _links(pem: str, ttl_seconds: int = TTL_SECONDS) -> PlaybackLinks:
    return PlaybackLinks(BASE_URL, KEY_PAIR_ID, lambda: pem, ttl_seconds, clock_ms=lambda: NOW_MS)


def _cloudfront_b64decode(value: str) -> bytes:
    """CloudFront's URL-safe base64: '-' for '+', '_' for '=', '~' for '/'."""
    return base64.b64decode(value.replace("-", "+").replace("_", "=").replace("~", "/"), validate=True)


def _verified_policy(url: str, public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    """What CloudFront does with a custom-policy signed URL: decode, check the SHA1 RSA signature, read the policy."""
    query = parse_qs(urlsplit(url).query, strict_parsing=True)
    assert set(query) == {"Policy", "Signature", "Key-Pair-Id"}
    assert query["Key-Pair-Id"] == [KEY_PAIR_ID]
    policy = _cloudfront_b64decode(query["Policy"][0])
    public_key.verify(_cloudfront_b64decode(query["Signature"][0]), policy, padding.PKCS1v15(), hashes.SHA1())
    assert b" " not in policy and b"\n" not in policy  # CloudFront wants the policy without whitespace
    return json.loads(policy)


def test_links_verify_with_the_public_key_as_cloudfront_does(private_key: rsa.RSAPrivateKey, private_pem: str) -> None:
    signed = _links(private_pem).signed(JOB, KEYS)
    expires_s = NOW_MS // 1000 + TTL_SECONDS
    assert signed.expires_at_ms == expires_s * 1000
    assert set(signed.urls) == set(KEYS)
    for name, url in signed.urls.items():
        assert url.split("?")[0] == f"{BASE_URL}/{KEYS[name]}"
        assert _verified_policy(url, private_key.public_key()) == {
            "Statement": [
                {
                    "Resource": f"{BASE_URL}/outputs/{JOB}/*",
                    "Condition": {"DateLessThan": {"AWS:EpochTime": expires_s}},
                }
            ]
        }


def test_one_signature_serves_the_whole_job_and_nothing_else(private_pem: str) -> None:
    signed = _links(private_pem).signed(JOB, KEYS)
    queries = {urlsplit(url).query for url in signed.urls.values()}
    assert len(queries) == 1  # the same Policy, Signature and Key-Pair-Id on every link
    resource = json.loads(_cloudfront_b64decode(parse_qs(queries.pop())["Policy"][0]))["Statement"][0]["Resource"]
    # The URLs a player derives from the playlists fall under the policy; another job's never do.
    for path in ("hls/720p/index.m3u8", "hls/720p/init.mp4", "hls/1080p/seg_00042.m4s", "thumbnails/sprite.jpg"):
        assert fnmatch.fnmatchcase(f"{BASE_URL}/outputs/{JOB}/{path}", resource), path
    assert not fnmatch.fnmatchcase(f"{BASE_URL}/outputs/01OTHERJOB/hls/master.m3u8", resource)
    assert not fnmatch.fnmatchcase(f"{BASE_URL}/uploads/{JOB}/source", resource)


def test_a_wrong_key_does_not_verify(private_pem: str) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    url = _links(private_pem).signed(JOB, {"hls": KEYS["hls"]}).urls["hls"]
    with pytest.raises(InvalidSignature):
        _verified_policy(url, other)


@pytest.mark.parametrize(
    "key",
    [
        "outputs/01OTHERJOB/poster.jpg",
        f"outputs/{JOB}X/poster.jpg",
        f"outputs/{JOB}/",
        f"outputs/{JOB}",
        f"uploads/{JOB}/source",
        f"outputs/{JOB}/../01OTHERJOB/poster.jpg",
        f"outputs/{JOB}//poster.jpg",
        "logos/brand.png",
    ],
)
def test_a_key_outside_the_jobs_folder_is_refused(private_pem: str, key: str) -> None:
    with pytest.raises(ValueError, match=r"poster: .* is not a file under outputs/"):
        _links(private_pem).signed(JOB, {"hls": KEYS["hls"], "poster": key})


@pytest.mark.parametrize("job_id", ["", "a/b", "*", "..", "01J?"])
def test_a_job_id_that_is_not_one_is_refused(private_pem: str, job_id: str) -> None:
    with pytest.raises(ValueError, match="is not a job ID"):
        _links(private_pem).signed(job_id, {})


def test_the_key_is_read_once_and_only_when_a_link_is_signed(private_pem: str) -> None:
    reads: list[int] = []

    def read_key() -> str:
        reads.append(1)
        return private_pem

    links = PlaybackLinks(BASE_URL, KEY_PAIR_ID, read_key, TTL_SECONDS, clock_ms=lambda: NOW_MS)
    assert reads == []
    links.signed(JOB, KEYS)
    links.signed("01OTHERJOB", {"hls": "outputs/01OTHERJOB/hls/master.m3u8"})
    assert reads == [1]


def test_a_key_that_is_not_rsa_is_a_named_error() -> None:
    with pytest.raises(PlaybackKeyUnavailable, match="not an unencrypted PEM private key"):
        _links("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n").signed(JOB, KEYS)


@mock_aws
def test_from_env_reads_the_key_from_secrets_manager_once(private_key: rsa.RSAPrivateKey, private_pem: str) -> None:
    # GIVEN the key in Secrets Manager, as the Cdn component stores it
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="cdn-signing-key", SecretString=private_pem)["ARN"]
    environ = {
        "CDN_BASE_URL": BASE_URL,
        "CDN_KEY_PAIR_ID": KEY_PAIR_ID,
        "CDN_PRIVATE_KEY_SECRET_ARN": arn,
        "DOWNLOAD_URL_TTL_SECONDS": "600",
    }
    # WHEN links are signed, then the secret disappears and more are signed
    links = PlaybackLinks.from_env(environ, clock_ms=lambda: NOW_MS)
    first = links.signed(JOB, KEYS)
    secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    parameters.clear_caches()
    again = links.signed(JOB, KEYS)
    # THEN every link verifies, expires after the configured TTL, and the key was fetched once
    assert first == again
    assert first.expires_at_ms == (NOW_MS // 1000 + 600) * 1000
    for url in first.urls.values():
        _verified_policy(url, private_key.public_key())


@mock_aws
def test_an_unreadable_secret_is_a_named_error() -> None:
    environ = {
        "CDN_BASE_URL": BASE_URL,
        "CDN_KEY_PAIR_ID": KEY_PAIR_ID,
        "CDN_PRIVATE_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf",
        "DOWNLOAD_URL_TTL_SECONDS": "600",
    }
    with pytest.raises(PlaybackKeyUnavailable, match="cannot read the CDN signing key"):
        PlaybackLinks.from_env(environ).signed(JOB, KEYS)


def test_from_env_names_every_problem_at_once() -> None:
    environ = {"CDN_BASE_URL": "http://cdn.example.com", "CDN_PRIVATE_KEY_SECRET_ARN": "cdn-key"}
    with pytest.raises(SettingsError) as refused:
        PlaybackLinks.from_env(environ)
    message = str(refused.value)
    assert message.startswith("playback links misconfigured: ")
    for problem in (
        "CDN_BASE_URL: must be https",  # set, but not an origin
        "CDN_KEY_PAIR_ID is not set",
        "CDN_PRIVATE_KEY_SECRET_ARN must be an ARN",
        "DOWNLOAD_URL_TTL_SECONDS must be an integer from 1 to 604800",
    ):
        assert problem in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://d111111abcdef8.cloudfront.net", "https://d111111abcdef8.cloudfront.net"),
        ("https://media.example.com/", "https://media.example.com"),
        ("https://media.example.com:8443", "https://media.example.com:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:9000/", "http://localhost:9000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_base_urls_are_origins(value: str, expected: str) -> None:
    assert parse_base_url(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "d111111abcdef8.cloudfront.net",
        "http://media.example.com",
        "https://media.example.com/cdn",
        "https://media.example.com/?a=1",
        "https://user:pass@media.example.com",
        "ftp://media.example.com",
    ],
)
def test_a_base_url_that_is_not_an_origin_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        parse_base_url(value)


def test_from_env_says_which_variables_are_missing() -> None:
    with pytest.raises(
        SettingsError, match="CDN_BASE_URL is not set; CDN_KEY_PAIR_ID is not set; CDN_PRIVATE_KEY_SECRET_ARN"
    ):
        PlaybackLinks.from_env({"DOWNLOAD_URL_TTL_SECONDS": "600"})
