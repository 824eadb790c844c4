"""Delivery: CloudFront over the outputs bucket, signed requests only, the bucket's one reader, its key a secret."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

from components.cdn import SIGNED_COOKIES_FUNCTION
from components.secure_bucket import bucket_policy
from tests.infra.harness import ProgramRun, run_program, signing_key_pem

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
CACHE_POLICY = "aws:cloudfront/cachePolicy:CachePolicy"
FUNCTION = "aws:lambda/function:Function"
SECRET = "aws:secretsmanager/secret:Secret"
BUCKET = "aws:s3/bucket:Bucket"
KEY_COMMAND = r"`openssl genrsa 2048 \| pulumi config set --secret media-pipeline:cdnPrivateKey --`"
SIGNERS = {"api-function", "webhooks-function"}


def _behaviours(run: ProgramRun) -> list[dict[str, Any]]:
    distribution = run.only(DISTRIBUTION).inputs
    return [distribution["defaultCacheBehavior"], *distribution["orderedCacheBehaviors"]]


def _cache_policy(run: ProgramRun, policy_id: str) -> dict[str, Any]:
    (policy,) = [p for p in run.of_type(CACHE_POLICY) if p.id == policy_id]
    return policy.inputs


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_the_distribution_reads_the_outputs_bucket_through_origin_access_control_only(dev: ProgramRun) -> None:
    distribution = dev.only(DISTRIBUTION).inputs
    outputs = dev.named(BUCKET, "outputs-bucket").outputs
    access_control = dev.only("aws:cloudfront/originAccessControl:OriginAccessControl")
    (origin,) = distribution["origins"]
    assert origin == {
        "originId": "outputs",
        "domainName": outputs["bucketRegionalDomainName"],
        "originAccessControlId": access_control.id,
    }
    assert access_control.inputs == {
        "originAccessControlOriginType": "s3",
        "signingBehavior": "always",
        "signingProtocol": "sigv4",
    }
    assert (distribution["enabled"], distribution["isIpv6Enabled"]) == (True, True)
    assert (distribution["httpVersion"], distribution["priceClass"]) == ("http2and3", "PriceClass_100")
    assert distribution["viewerCertificate"] == {"cloudfrontDefaultCertificate": True}
    assert distribution["restrictions"] == {"geoRestriction": {"restrictionType": "none"}}


def test_every_cache_behaviour_needs_a_signature_https_and_only_reads(dev: ProgramRun) -> None:
    key_group = dev.only("aws:cloudfront/keyGroup:KeyGroup")
    assert key_group.inputs["items"] == [dev.only("aws:cloudfront/publicKey:PublicKey").id]
    cors = dev.only("aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy").id
    behaviours = _behaviours(dev)
    assert len(behaviours) == 2
    for behaviour in behaviours:
        assert behaviour["trustedKeyGroups"] == [key_group.id]
        assert behaviour["viewerProtocolPolicy"] == "redirect-to-https"
        assert behaviour["allowedMethods"] == behaviour["cachedMethods"] == ["GET", "HEAD"]
        assert (behaviour["targetOriginId"], behaviour["responseHeadersPolicyId"]) == ("outputs", cors)
        assert behaviour["compress"] is False  # segments and images are compressed already
        assert "forwardedValues" not in behaviour and "trustedSigners" not in behaviour


def test_playlists_are_cached_briefly_and_set_the_signed_cookies_everything_else_long(dev: ProgramRun) -> None:
    default, playlists = _behaviours(dev)
    assert playlists["pathPattern"] == "outputs/*.m3u8"
    function = dev.only("aws:cloudfront/function:Function")
    assert playlists["functionAssociations"] == [
        {"eventType": "viewer-response", "functionArn": function.outputs["arn"]}
    ]
    assert (function.inputs["runtime"], function.inputs["publish"]) == ("cloudfront-js-2.0", True)
    assert function.inputs["code"] == SIGNED_COOKIES_FUNCTION.read_text()
    assert "functionAssociations" not in default
    short, long = _cache_policy(dev, playlists["cachePolicyId"]), _cache_policy(dev, default["cachePolicyId"])
    assert (short["minTtl"], short["defaultTtl"], short["maxTtl"]) == (0, 60, 60)
    assert (long["minTtl"], long["defaultTtl"], long["maxTtl"]) == (0, 86_400, 86_400)
    tuned = run_program({"playlistCacheSeconds": 2, "segmentCacheSeconds": 3600, "cdnPriceClass": "PriceClass_All"})
    default, playlists = _behaviours(tuned)
    assert _cache_policy(tuned, playlists["cachePolicyId"])["maxTtl"] == 2
    assert _cache_policy(tuned, default["cachePolicyId"])["maxTtl"] == 3600
    assert tuned.only(DISTRIBUTION).inputs["priceClass"] == "PriceClass_All"


def test_signatures_never_split_the_cache(dev: ProgramRun) -> None:
    policies = dev.of_type(CACHE_POLICY)
    assert len(policies) == 2
    for policy in policies:
        assert policy.inputs["parametersInCacheKeyAndForwardedToOrigin"] == {
            "queryStringsConfig": {"queryStringBehavior": "none"},
            "cookiesConfig": {"cookieBehavior": "none"},
            "headersConfig": {"headerBehavior": "none"},
        }, policy.name


def test_browser_players_on_the_stacks_origins_may_fetch_with_their_cookies(dev: ProgramRun) -> None:
    cors = dev.only("aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy").inputs["corsConfig"]
    assert cors["accessControlAllowOrigins"] == {"items": ["http://localhost:3000", "http://127.0.0.1:3000"]}
    assert cors["accessControlAllowMethods"] == {"items": ["GET", "HEAD"]}
    assert (cors["accessControlAllowCredentials"], cors["originOverride"]) == (True, True)


def test_the_outputs_bucket_admits_this_distribution_alone_and_only_to_read_outputs(dev: ProgramRun) -> None:
    distribution = dev.only(DISTRIBUTION).outputs["arn"]
    readers: dict[str, list[dict[str, Any]]] = {}
    for name in ("uploads-bucket", "outputs-bucket"):
        bucket = dev.named(BUCKET, name)
        (policy,) = [p for p in dev.of_type("aws:s3/bucketPolicy:BucketPolicy") if p.inputs["bucket"] == bucket.id]
        statements = json.loads(policy.inputs["policy"])["Statement"]
        assert [s["Sid"] for s in statements if s["Effect"] == "Deny"] == ["DenyInsecureTransport"]
        readers[name] = [s for s in statements if s["Effect"] != "Deny"]
    outputs_arn = dev.named(BUCKET, "outputs-bucket").outputs["arn"]
    assert readers == {
        "uploads-bucket": [],
        "outputs-bucket": [
            {
                "Sid": "CloudFrontReadsOutputs",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": f"{outputs_arn}/outputs/*",
                "Condition": {"StringEquals": {"AWS:SourceArn": distribution}},
            }
        ],
    }


def test_cloudfront_verifies_with_the_public_half_of_the_config_secret(dev: ProgramRun) -> None:
    encoded = dev.only("aws:cloudfront/publicKey:PublicKey").inputs["encodedKey"]
    public_key = serialization.load_pem_public_key(encoded.encode())
    private_key = serialization.load_pem_private_key(signing_key_pem().encode(), password=None)
    assert isinstance(public_key, rsa.RSAPublicKey) and isinstance(private_key, rsa.RSAPrivateKey)
    assert public_key.public_numbers() == private_key.public_key().public_numbers()
    assert encoded.startswith("-----BEGIN PUBLIC KEY-----\n")  # SubjectPublicKeyInfo, what CloudFront takes


def test_the_private_key_is_a_secret_only_the_signing_functions_may_read(dev: ProgramRun) -> None:
    secret = dev.only(SECRET)
    version = dev.only("aws:secretsmanager/secretVersion:SecretVersion").inputs
    assert version["secretId"] == secret.id
    assert version["secretString"] == {_special_sig_key: _special_secret_sig, "value": signing_key_pem()}
    # Nowhere else, in any form: no environment variable, no policy, no other resource holds it.
    body = signing_key_pem().splitlines()[1]
    holders = [r.name for r in dev.resources if body in json.dumps(r.inputs, default=str)]
    assert holders == ["cdn-signing-key-version"]
    readers = set()
    for function in dev.of_type(FUNCTION):
        for statement in dev.function_policy(function)["Statement"]:
            if "secretsmanager:GetSecretValue" in statement["Action"]:
                assert statement["Action"] == ["secretsmanager:GetSecretValue"]
                assert statement["Resource"] == [secret.outputs["arn"]]
                readers.add(function.name)
    assert readers == SIGNERS


def test_the_signing_functions_know_the_base_url_key_pair_and_secret(dev: ProgramRun) -> None:
    domain = dev.only(DISTRIBUTION).outputs["domainName"]
    expected = {
        "CDN_BASE_URL": f"https://{domain}",
        "CDN_KEY_PAIR_ID": dev.only("aws:cloudfront/publicKey:PublicKey").id,
        "CDN_PRIVATE_KEY_SECRET_ARN": dev.only(SECRET).outputs["arn"],
    }
    for function in dev.of_type(FUNCTION):
        env = function.inputs["environment"]["variables"]
        if function.name in SIGNERS:
            assert {k: env[k] for k in expected} == expected, function.name
        else:
            assert not set(expected) & set(env), function.name
    assert dev.outputs["cdnDomainName"] == domain
    assert dev.outputs["cdnBaseUrl"] == f"https://{domain}"
    assert dev.outputs["cdnDistributionId"] == dev.only(DISTRIBUTION).id


CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-111122223333"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [("https://media.example.com/", "https://media.example.com"), ("http://127.0.0.1:8080", "http://127.0.0.1:8080")],
)
def test_a_base_url_of_your_own_replaces_the_distributions_domain(base_url: str, expected: str) -> None:
    run = run_program({"cdnBaseUrl": base_url, "cdnCertificateArn": CERTIFICATE})
    assert run.named(FUNCTION, "api-function").inputs["environment"]["variables"]["CDN_BASE_URL"] == expected
    assert run.outputs["cdnBaseUrl"] == expected


def test_a_host_of_your_own_is_the_distributions_alternate_domain_name_with_its_certificate() -> None:
    distribution = run_program({"cdnBaseUrl": "https://media.example.com", "cdnCertificateArn": CERTIFICATE}).only(
        DISTRIBUTION
    )
    assert distribution.inputs["aliases"] == ["media.example.com"]
    assert distribution.inputs["viewerCertificate"] == {
        "acmCertificateArn": CERTIFICATE,
        "sslSupportMethod": "sni-only",
        "minimumProtocolVersion": "TLSv1.2_2021",
    }
    # the local cloud's loopback base is served as it is: no alias, CloudFront's own certificate
    local = run_program({"cdnBaseUrl": "http://127.0.0.1:8080"}).only(DISTRIBUTION)
    assert "aliases" not in local.inputs or not local.inputs["aliases"]
    assert local.inputs["viewerCertificate"] == {"cloudfrontDefaultCertificate": True}


@pytest.mark.parametrize(
    ("overrides", "secret_keys", "message"),
    [
        ({"cdnPrivateKey": ""}, (), rf"cdnPrivateKey must be set, as a secret.*{KEY_COMMAND}"),
        ({}, (), rf"cdnPrivateKey must be set, as a secret.*{KEY_COMMAND}"),  # a valid key, in plain text
        ({"cdnPrivateKey": "not a key"}, None, rf"cdnPrivateKey is not an unencrypted PEM private key.*{KEY_COMMAND}"),
        (
            {"cdnPrivateKey": _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))},
            None,
            rf"cdnPrivateKey must be a 2048-bit RSA key.*{KEY_COMMAND}",
        ),
        (
            {"cdnPrivateKey": _pem(ec.generate_private_key(ec.SECP256R1()))},
            None,
            rf"cdnPrivateKey must be a 2048-bit RSA key.*{KEY_COMMAND}",
        ),
        ({"cdnPriceClass": "PriceClass_1"}, None, "cdnPriceClass must be one of"),
        ({"cdnBaseUrl": "http://media.example.com"}, None, "plain http only to a loopback host"),
        ({"cdnBaseUrl": "https://media.example.com/cdn"}, None, "without a path"),
        ({"cdnBaseUrl": "https://media.example.com"}, None, "needs media-pipeline:cdnCertificateArn"),
        (
            {
                "cdnBaseUrl": "https://media.example.com",
                "cdnCertificateArn": CERTIFICATE.replace("us-east-1", "eu-west-1"),
            },
            None,
            "an ACM certificate in us-east-1",
        ),
        ({"segmentCacheSeconds": 0}, None, "segmentCacheSeconds must be 1 to jobRetentionDays"),
        ({"segmentCacheSeconds": 8 * 86_400}, None, r"segmentCacheSeconds must be 1 to jobRetentionDays \(7\)"),
        ({"playlistCacheSeconds": 90_000}, None, r"playlistCacheSeconds must be 0 to segmentCacheSeconds \(86400\)"),
        ({"corsAllowedOrigins": ["*"]}, None, "CORS origins must be named"),
    ],
)
def test_an_unusable_cdn_setting_stops_the_program_with_what_to_do(
    overrides: dict[str, Any], secret_keys: tuple[str, ...] | None, message: str
) -> None:
    kwargs = {} if secret_keys is None else {"secret_keys": secret_keys}
    with pytest.raises(ValueError, match=message) as refused:
        run_program(overrides, **kwargs)
    assert "PRIVATE KEY" not in str(refused.value) and "not a key" not in str(refused.value)


NODE = shutil.which("node")


def _viewer_response(uri: str, query: dict[str, str]) -> dict[str, Any]:
    """Runs the CloudFront Function's handler under node on a viewer-response event, as CloudFront shapes it."""
    assert NODE
    event = {
        "version": "1.0",
        "context": {"eventType": "viewer-response"},
        "viewer": {"ip": "192.0.2.1"},
        "request": {
            "method": "GET",
            "uri": uri,
            "querystring": {name: {"value": value} for name, value in query.items()},
            "headers": {},
            "cookies": {},
        },
        "response": {"statusCode": 200, "statusDescription": "OK", "headers": {}, "cookies": {}},
    }
    script = f"{SIGNED_COOKIES_FUNCTION.read_text()}\nconsole.log(JSON.stringify(handler({json.dumps(event)})));"
    result = subprocess.run([NODE, "-e", script], capture_output=True, text=True, check=True, timeout=30)
    return json.loads(result.stdout)


@pytest.mark.skipif(NODE is None, reason="node runs the CloudFront Function")
def test_a_signed_playlist_url_sets_the_same_signature_as_cookies_for_the_jobs_folder() -> None:
    signed = {"Policy": "eyJTdGF0ZW1lbnQiOl-_~", "Signature": "c2lnbmF0dXJl~", "Key-Pair-Id": "K2JCJMDEHXQW5F"}
    response = _viewer_response("/outputs/01JOB/hls/master.m3u8", signed)
    attributes = "Path=/outputs/01JOB/; Secure; HttpOnly; SameSite=None"
    assert response["cookies"] == {
        "CloudFront-Policy": {"value": signed["Policy"], "attributes": attributes},
        "CloudFront-Signature": {"value": signed["Signature"], "attributes": attributes},
        "CloudFront-Key-Pair-Id": {"value": signed["Key-Pair-Id"], "attributes": attributes},
    }
    assert response["statusCode"] == 200
    # A request that came with the cookies (no query), half a signature, or a path outside a job's folder: untouched.
    assert _viewer_response("/outputs/01JOB/hls/720p/index.m3u8", {})["cookies"] == {}
    assert _viewer_response("/outputs/01JOB/hls/master.m3u8", {"Policy": "x", "Signature": "y"})["cookies"] == {}
    assert _viewer_response("/logos/master.m3u8", signed)["cookies"] == {}


def test_a_bucket_policy_admits_only_allow_statements_naming_a_principal() -> None:
    reader = {"Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject"}
    document = bucket_policy("arn:aws:s3:::b", [reader])
    assert [s.get("Sid") for s in document["Statement"]] == ["DenyInsecureTransport", None]
    for statement in ({**reader, "Effect": "Deny"}, {**reader, "Principal": "*"}):
        with pytest.raises(ValueError, match="must allow a named principal"):
            bucket_policy("arn:aws:s3:::b", [statement])
