"""The web console: its files in the outputs bucket under console/, served unsigned by the CDN behind a strict
Content-Security-Policy, and the only origin beyond corsAllowedOrigins that the API and the uploads bucket admit."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components.console import HEADER_POLICY, SITE, site_files
from tests.infra.harness import ProgramRun, run_program

OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
CONSOLE_ORIGIN = "http://127.0.0.1:8080"
EXTRA_ORIGIN = "http://127.0.0.1:5000"


@pytest.fixture(scope="module")
def with_console() -> ProgramRun:
    return run_program({"consoleEnabled": True, "cdnBaseUrl": CONSOLE_ORIGIN, "consoleExtraOrigins": [EXTRA_ORIGIN]})


def _objects(run: ProgramRun) -> dict[str, dict[str, Any]]:
    return {o.inputs["key"]: o.inputs for o in run.of_type(OBJECT)}


def _meta_policy(html: str) -> dict[str, list[str]]:
    (policy,) = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


def test_no_console_unless_asked(dev: ProgramRun) -> None:
    assert not dev.of_type(OBJECT)
    assert "consoleUrl" not in dev.outputs
    assert all(
        not b["pathPattern"].startswith("console/") for b in dev.only(DISTRIBUTION).inputs["orderedCacheBehaviors"]
    )


def test_every_site_file_is_an_object_under_console_in_the_outputs_bucket(with_console: ProgramRun) -> None:
    outputs_bucket = with_console.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["bucket"]
    objects = _objects(with_console)
    expected = {f"console/{p.as_posix()}" for p in site_files()} | {"console/index.html", "console/config.json"}
    assert set(objects) == expected
    assert {o["bucket"] for o in objects.values()} == {outputs_bucket}
    assert all(o["cacheControl"] == "no-cache" for o in objects.values())
    assert objects["console/app.js"]["contentType"] == "text/javascript; charset=utf-8"
    assert objects["console/style.css"]["contentType"] == "text/css; charset=utf-8"
    assert objects["console/index.html"]["contentType"] == "text/html; charset=utf-8"
    assert with_console.outputs["consoleUrl"] == f"{CONSOLE_ORIGIN}/console/index.html"


def test_the_page_names_the_api_and_buckets_it_may_reach_and_nothing_else(with_console: ProgramRun) -> None:
    objects = _objects(with_console)
    api_url = with_console.outputs["apiUrl"]
    config = json.loads(objects["console/config.json"]["content"])
    assert config == {"apiUrl": api_url, "auth": {}}
    policy = _meta_policy(objects["console/index.html"]["content"])
    uploads = with_console.named("aws:s3/bucket:Bucket", "uploads-bucket").outputs["bucket"]
    outputs = with_console.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["bucket"]
    api_origin = api_url.rstrip("/")
    assert policy["default-src"] == ["'self'"]
    assert set(policy["connect-src"]) == {
        "'self'",
        api_origin,
        f"https://{uploads}.s3.amazonaws.com",
        f"https://{uploads}.s3.us-east-1.amazonaws.com",
        EXTRA_ORIGIN,
    }
    assert set(policy["media-src"]) == {
        "'self'",
        "blob:",
        f"https://{outputs}.s3.amazonaws.com",
        f"https://{outputs}.s3.us-east-1.amazonaws.com",
        EXTRA_ORIGIN,
    }
    assert policy["worker-src"] == ["'none'"]
    assert "'unsafe-inline'" not in objects["console/index.html"]["content"]
    # the page loads nothing from elsewhere and runs no inline script
    html = (SITE / "index.html").read_text()
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all(re.search(r'\bsrc="(?!\w+:|//)[^"]+"', tag) for tag in scripts)
    assert not re.findall(r'\b(?:src|href)="(?!data:)(?:\w+:|//)', html)  # the favicon is data:, empty


def test_only_the_console_is_served_unsigned_with_its_security_headers(with_console: ProgramRun) -> None:
    distribution = with_console.only(DISTRIBUTION).inputs
    behaviours = [distribution["defaultCacheBehavior"], *distribution["orderedCacheBehaviors"]]
    (console,) = [b for b in behaviours if b.get("pathPattern") == "console/*"]
    assert not console.get("trustedKeyGroups")
    assert console["viewerProtocolPolicy"] == "redirect-to-https"
    assert console["allowedMethods"] == ["GET", "HEAD"]
    others = [b for b in behaviours if b is not console]
    assert others and all(b["trustedKeyGroups"] for b in others)
    (policy,) = [p for p in with_console.of_type(HEADERS_POLICY) if p.id == console["responseHeadersPolicyId"]]
    security = policy.inputs["securityHeadersConfig"]
    assert security["contentSecurityPolicy"] == {"contentSecurityPolicy": HEADER_POLICY, "override": True}
    assert {"script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} <= set(HEADER_POLICY.split("; "))
    assert security["frameOptions"]["frameOption"] == "DENY"
    assert security["contentTypeOptions"]["override"] is True


def test_the_bucket_lets_the_distribution_read_the_console_and_outputs_only(with_console: ProgramRun) -> None:
    (bucket_policy,) = [
        p
        for p in with_console.of_type("aws:s3/bucketPolicy:BucketPolicy")
        if "CloudFrontReadsOutputs" in p.inputs["policy"]
    ]
    (statement,) = [
        s for s in json.loads(bucket_policy.inputs["policy"])["Statement"] if s["Sid"] == "CloudFrontReadsOutputs"
    ]
    arn = with_console.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["arn"]
    assert sorted(statement["Resource"]) == [f"{arn}/console/*", f"{arn}/outputs/*"]
    assert statement["Condition"] == {"StringEquals": {"AWS:SourceArn": with_console.only(DISTRIBUTION).outputs["arn"]}}


def test_the_api_and_the_uploads_bucket_admit_the_consoles_origin(with_console: ProgramRun, dev: ProgramRun) -> None:
    api = with_console.only("aws:apigatewayv2/api:Api").inputs["corsConfiguration"]
    assert CONSOLE_ORIGIN in api["allowOrigins"] and "retry-after" in api["exposeHeaders"]
    (cors,) = with_console.of_type("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration")
    assert all(CONSOLE_ORIGIN in rule["allowedOrigins"] for rule in cors.inputs["corsRules"])
    assert CONSOLE_ORIGIN not in dev.only("aws:apigatewayv2/api:Api").inputs["corsConfiguration"]["allowOrigins"]


def test_a_console_needs_a_base_url_of_its_own() -> None:
    with pytest.raises(ValueError, match="consoleEnabled needs media-pipeline:cdnBaseUrl"):
        run_program({"consoleEnabled": True, "cdnBaseUrl": ""})


def test_with_oidc_the_page_may_reach_the_token_endpoint_and_knows_its_client() -> None:
    oidc = {
        "clientId": "console",
        "authorizeUrl": "https://login.example.com/oauth2/authorize",
        "tokenUrl": "https://login.example.com/oauth2/token",
        "scopes": ["openid"],
    }
    run = run_program({"consoleEnabled": True, "cdnBaseUrl": CONSOLE_ORIGIN, "consoleOidc": oidc})
    objects = _objects(run)
    config = json.loads(objects["console/config.json"]["content"])
    assert config["auth"] == {"issuer": run.config["media-pipeline:jwtIssuer"], **oidc}
    assert "https://login.example.com" in _meta_policy(objects["console/index.html"]["content"])["connect-src"]


@pytest.mark.parametrize(
    ("oidc", "message"),
    [
        ({"clientId": "c", "authorizeUrl": "https://a.example/authorize"}, "needs tokenUrl"),
        (
            {"clientId": "c", "authorizeUrl": "http://a.example/a", "tokenUrl": "https://a.example/t"},
            "authorizeUrl must",
        ),
        ({"clientId": "c", "authorizeUrl": "https://a.example/a", "tokenUrl": "/token"}, "tokenUrl must be an https"),
        (
            {"clientId": "c", "authorizeUrl": "https://a.example/a", "tokenUrl": "https://a.example/t", "scopes": "x"},
            "scopes must be a list",
        ),
    ],
)
def test_an_unusable_oidc_setting_stops_the_program_with_what_to_set(oidc: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_program({"consoleEnabled": True, "cdnBaseUrl": CONSOLE_ORIGIN, "consoleOidc": oidc})
