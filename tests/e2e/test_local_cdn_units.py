"""The local CloudFront's pure parts, without a server: signed URLs and cookies checked as CloudFront checks them
(signed with botocore's CloudFrontSigner, as the api signs them), path patterns, byte ranges, response headers
policies, CloudFront Functions run in V8, and the config the local cloud supplies for itself."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from local.cdn.distribution import bucket_of_origin, path_pattern_matches
from local.cdn.functions import (
    CloudFrontFunction,
    FunctionCodeError,
    FunctionExecutionError,
    FunctionValidationError,
    check_function_code,
    request_object,
    response_object,
    response_parts,
    viewer_event,
)
from local.cdn.local_sign_in import TOKEN_SECONDS, token_answer
from local.cdn.origin import ByteRange, RangeNotSatisfiable, parse_range
from local.cdn.response_headers import HeadersPolicy
from local.cdn.signed_requests import (
    SignatureRefused,
    cloudfront_b64decode,
    cloudfront_b64encode,
    load_or_create_private_key,
    verify_signed_request,
)
from local.cdn.viewer import ViewerRequest
from local.cloud import SUPPLIED_SECRETS, supplied_config
from local.engine.stack_config import ConfigError, load_stack_config

BASE = "http://127.0.0.1:8443"
KEY_ID = "K2JCJMDLS82JXX"
NOW = 1_900_000_000.0


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signer(private_key: rsa.RSAPrivateKey) -> CloudFrontSigner:
    return CloudFrontSigner(KEY_ID, lambda message: private_key.sign(message, padding.PKCS1v15(), hashes.SHA1()))


@pytest.fixture(scope="module")
def trusted(private_key: rsa.RSAPrivateKey) -> dict[str, rsa.RSAPublicKey]:
    return {KEY_ID: private_key.public_key()}


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def viewer(url: str, cookies: dict[str, str] | None = None, ip: str = "127.0.0.1") -> ViewerRequest:
    parts = urlsplit(url)
    headers = (("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items())),) if cookies else ()
    return ViewerRequest("GET", parts.scheme, parts.netloc, parts.path, parts.query, headers, ip)


def job_url(signer: CloudFrontSigner, job: str, file: str, **conditions: object) -> str:
    """What the api hands out: a custom policy over the job's prefix, signed onto one of its files."""
    policy = signer.build_policy(f"{BASE}/outputs/{job}/*", at(NOW + 3600), **conditions)  # type: ignore[arg-type]
    return signer.generate_presigned_url(f"{BASE}/outputs/{job}/{file}", policy=policy)


def refusal(request: ViewerRequest, trusted: dict[str, rsa.RSAPublicKey], now: float = NOW) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as refused:
        verify_signed_request(request, trusted, now)
    return refused.value


# --- signed URLs ----------------------------------------------------------------------------------------------------


def test_a_custom_policy_url_for_the_jobs_prefix_is_accepted_for_any_file_under_it(signer, trusted) -> None:
    url = job_url(signer, "01JOBA", "hls/master.m3u8")

    assert verify_signed_request(viewer(url), trusted, NOW) == KEY_ID
    other_file = url.replace("hls/master.m3u8", "hls/360p/seg_00001.m4s")
    assert verify_signed_request(viewer(other_file), trusted, NOW) == KEY_ID


def test_a_canned_policy_url_is_accepted_for_exactly_its_url_and_query(signer, trusted) -> None:
    url = signer.generate_presigned_url(f"{BASE}/outputs/01JOBA/poster.jpg?size=large", date_less_than=at(NOW + 60))

    assert "Expires=" in url and "Policy=" not in url
    assert verify_signed_request(viewer(url), trusted, NOW) == KEY_ID
    assert refusal(viewer(url.replace("size=large", "size=small")), trusted).code == "AccessDenied"


def test_another_jobs_prefix_is_refused(signer, trusted) -> None:
    url = job_url(signer, "01JOBA", "hls/master.m3u8").replace("/outputs/01JOBA/", "/outputs/01JOBB/")

    refused = refusal(viewer(url), trusted)

    assert (refused.code, refused.message) == ("AccessDenied", "Access denied")
    assert "does not cover" in refused.reason and "01JOBB" in refused.reason


def test_a_tampered_signature_is_refused(signer, trusted) -> None:
    url = job_url(signer, "01JOBA", "hls/master.m3u8")
    signature = url.split("Signature=", 1)[1].split("&", 1)[0]
    flipped = ("B" if signature[10] != "B" else "C").join((signature[:10], signature[11:]))

    refused = refusal(viewer(url.replace(signature, flipped)), trusted)

    assert refused.code == "AccessDenied" and "does not match" in refused.reason


def test_a_tampered_policy_is_refused_even_when_it_is_valid_json(signer, trusted) -> None:
    url = job_url(signer, "01JOBA", "hls/master.m3u8")
    encoded = url.split("Policy=", 1)[1].split("&", 1)[0]
    widened = cloudfront_b64decode(encoded).decode().replace("/outputs/01JOBA/*", "/outputs/*")

    refused = refusal(viewer(url.replace(encoded, cloudfront_b64encode(widened.encode()))), trusted)

    assert refused.code == "AccessDenied" and "does not match" in refused.reason


def test_an_expired_url_is_refused(signer, trusted) -> None:
    url = job_url(signer, "01JOBA", "hls/master.m3u8")

    refused = refusal(viewer(url), trusted, now=NOW + 3600)  # DateLessThan is exclusive

    assert refused.code == "AccessDenied" and refused.reason.startswith("expired")
    assert verify_signed_request(viewer(url), trusted, NOW + 3599) == KEY_ID


def test_a_url_not_yet_valid_is_refused(signer, trusted) -> None:
    url = job_url(signer, "01JOBA", "poster.jpg", date_greater_than=at(NOW + 600))

    assert refusal(viewer(url), trusted).reason.startswith("not yet valid")
    assert verify_signed_request(viewer(url), trusted, NOW + 601) == KEY_ID


def test_an_ip_address_condition_admits_only_its_network(signer, trusted) -> None:
    url = job_url(signer, "01JOBA", "poster.jpg", ip_address="10.1.0.0/16")

    assert verify_signed_request(viewer(url, ip="10.1.2.3"), trusted, NOW) == KEY_ID
    assert "AWS:SourceIp" in refusal(viewer(url, ip="127.0.0.1"), trusted).reason


def test_a_key_outside_the_behaviours_key_groups_is_unknown(signer, private_key) -> None:
    url = job_url(signer, "01JOBA", "poster.jpg")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()

    refused = refusal(viewer(url), {"KOTHERKEY00000": other})

    assert (refused.code, refused.message) == ("InvalidKey", "Unknown Key")
    # the same id bound to another key: the signature does not hold
    assert refusal(viewer(url), {KEY_ID: other}).code == "AccessDenied"


@pytest.mark.parametrize(
    ("drop", "code"),
    [
        ("Key-Pair-Id", "MissingKey"),
        ("Signature", "AccessDenied"),
        ("Policy", "AccessDenied"),
    ],
)
def test_missing_signing_parameters_are_refused(signer, trusted, drop: str, code: str) -> None:
    url = job_url(signer, "01JOBA", "poster.jpg")
    base, query = url.split("?", 1)
    kept = "&".join(p for p in query.split("&") if not p.startswith(f"{drop}="))

    refused = refusal(viewer(f"{base}?{kept}"), trusted)

    assert refused.code == code
    if code == "MissingKey":
        assert refused.message == "Missing Key-Pair-Id query parameter or cookie value"


def test_an_unsigned_request_is_refused_as_cloudfront_refuses_it(trusted) -> None:
    refused = refusal(viewer(f"{BASE}/outputs/01JOBA/poster.jpg"), trusted)

    assert (refused.code, refused.message) == ("MissingKey", "Missing Key-Pair-Id query parameter or cookie value")


def test_malformed_policy_and_signature_get_cloudfronts_own_codes(signer, trusted) -> None:
    url = job_url(signer, "01JOBA", "poster.jpg")
    encoded = url.split("Policy=", 1)[1].split("&", 1)[0]
    signature = url.split("Signature=", 1)[1].split("&", 1)[0]

    not_json = url.replace(encoded, cloudfront_b64encode(b"not a policy"))
    assert refusal(viewer(not_json), trusted).code == "MalformedPolicy"
    assert refusal(viewer(url.replace(signature, "!!!")), trusted).code == "MalformedSignature"


def test_signed_cookies_carry_the_same_policy_when_the_query_has_none(signer, trusted) -> None:
    url = job_url(signer, "01JOBA", "hls/master.m3u8")
    query = dict(pair.split("=", 1) for pair in url.split("?", 1)[1].split("&"))
    cookies = {f"CloudFront-{name}": value for name, value in query.items()}
    variant = f"{BASE}/outputs/01JOBA/hls/360p/index.m3u8"

    assert verify_signed_request(viewer(variant, cookies), trusted, NOW) == KEY_ID
    elsewhere = f"{BASE}/outputs/01JOBB/hls/360p/index.m3u8"
    assert refusal(viewer(elsewhere, cookies), trusted).code == "AccessDenied"
    assert refusal(viewer(variant, cookies), trusted, now=NOW + 7200).reason.startswith("expired")
    # a signing parameter in the query means the query is what counts, cookies or not
    assert refusal(viewer(f"{variant}?Key-Pair-Id={KEY_ID}", cookies), trusted).code == "AccessDenied"


def test_canned_policy_cookies_cover_the_requested_url(signer, trusted) -> None:
    url = signer.generate_presigned_url(f"{BASE}/outputs/01JOBA/poster.jpg", date_less_than=at(NOW + 60))
    query = dict(pair.split("=", 1) for pair in url.split("?", 1)[1].split("&"))
    cookies = {f"CloudFront-{name}": value for name, value in query.items()}

    assert verify_signed_request(viewer(f"{BASE}/outputs/01JOBA/poster.jpg", cookies), trusted, NOW) == KEY_ID
    assert refusal(viewer(f"{BASE}/outputs/01JOBA/other.jpg", cookies), trusted).code == "AccessDenied"


def test_cloudfronts_base64_alphabet_round_trips() -> None:
    data = bytes(range(256))
    encoded = cloudfront_b64encode(data)

    assert not set(encoded) & set("+/=")
    assert cloudfront_b64decode(encoded) == data


# --- path patterns, origins, ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("outputs/*.m3u8", "/outputs/01J/hls/master.m3u8", True),
        ("/outputs/*.m3u8", "/outputs/01J/hls/360p/index.m3u8", True),
        ("outputs/*.m3u8", "/outputs/01J/hls/360p/seg_00001.m4s", False),
        ("outputs/*.m3u8", "/uploads/x.m3u8", False),
        ("outputs/?/poster.jpg", "/outputs/A/poster.jpg", True),
        ("outputs/?/poster.jpg", "/outputs/AB/poster.jpg", False),
        ("Outputs/*", "/outputs/A/poster.jpg", False),  # case-sensitive
        ("*", "/anything/at/all", True),
    ],
)
def test_path_patterns_are_cloudfronts_globs(pattern: str, path: str, matches: bool) -> None:
    assert path_pattern_matches(pattern, path) is matches


@pytest.mark.parametrize(
    ("domain", "bucket"),
    [
        ("outputs-1a2b.s3.us-east-1.amazonaws.com", "outputs-1a2b"),
        ("outputs-1a2b.s3.amazonaws.com", "outputs-1a2b"),
        ("my.dotted.bucket.s3.eu-west-1.amazonaws.com", "my.dotted.bucket"),
        ("outputs.s3-website-us-east-1.amazonaws.com", None),
        ("api.example.com", None),
    ],
)
def test_only_s3_rest_endpoints_are_s3_origins(domain: str, bucket: str | None) -> None:
    assert bucket_of_origin(domain) == bucket


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=100-", ByteRange(100, 999)),
        ("bytes=-100", ByteRange(900, 999)),
        ("bytes=900-5000", ByteRange(900, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("bytes=0-1,5-6", None),  # several ranges: S3 sends the whole object
        ("bytes=9-3", None),  # not a range: ignored
        ("items=0-1", None),
        ("bytes=abc", None),
    ],
)
def test_byte_ranges_are_read_as_s3_reads_them(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=1000-", 1000), ("bytes=5000-6000", 1000), ("bytes=-0", 1000)])
def test_a_range_past_the_end_is_not_satisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


# --- response headers policies ------------------------------------------------------------------------------------


CORS_POLICY = {
    "corsConfig": {
        "accessControlAllowCredentials": True,
        "accessControlAllowHeaders": {"items": ["Range"]},
        "accessControlAllowMethods": {"items": ["GET", "HEAD", "OPTIONS"]},
        "accessControlAllowOrigins": {"items": ["http://localhost:3000", "https://*.example.com"]},
        "accessControlExposeHeaders": {"items": ["Content-Range", "Content-Length"]},
        "accessControlMaxAgeSec": 600,
        "originOverride": True,
    },
    "customHeadersConfig": {"items": [{"header": "X-Served-By", "value": "cdn", "override": False}]},
    "securityHeadersConfig": {"contentTypeOptions": {"override": True}},
}


def test_cors_headers_go_only_to_allowed_origins() -> None:
    policy = HeadersPolicy.from_inputs(CORS_POLICY)
    origin_headers = [("Content-Type", "video/iso.segment"), ("X-Served-By", "s3")]

    allowed = dict(policy.apply(origin_headers, viewer_with_origin("http://localhost:3000")))
    assert allowed["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert allowed["Access-Control-Allow-Credentials"] == "true"
    assert allowed["Access-Control-Expose-Headers"] == "Content-Range, Content-Length"
    assert allowed["X-Content-Type-Options"] == "nosniff"
    assert allowed["X-Served-By"] == "s3"  # a custom header that does not override keeps the origin's value
    assert dict(policy.apply([], viewer_with_origin("https://app.example.com")))["Access-Control-Allow-Origin"]
    assert "Access-Control-Allow-Origin" not in dict(policy.apply([], viewer_with_origin("https://evil.test")))
    assert "Access-Control-Allow-Origin" not in dict(policy.apply([], viewer_with_origin(None)))


def test_a_preflight_is_answered_with_the_policys_methods_headers_and_max_age() -> None:
    policy = HeadersPolicy.from_inputs(CORS_POLICY)
    request = ViewerRequest(
        "OPTIONS",
        "http",
        "127.0.0.1:8443",
        "/outputs/A/hls/master.m3u8",
        headers=(("Origin", "http://localhost:3000"), ("Access-Control-Request-Method", "GET")),
    )

    assert policy.is_preflight(request)
    headers = dict(policy.apply([], request, preflight=True))
    assert headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == "Range"
    assert headers["Access-Control-Max-Age"] == "600"


def viewer_with_origin(origin: str | None) -> ViewerRequest:
    headers = (("Origin", origin),) if origin else ()
    return ViewerRequest("GET", "http", "127.0.0.1:8443", "/outputs/A/poster.jpg", headers=headers)


# --- CloudFront Functions ---------------------------------------------------------------------------------------------

COOKIES_FROM_QUERY = """
function handler(event) {
  var response = event.response;
  var query = event.request.querystring;
  if (query.Policy && query.Signature && query['Key-Pair-Id']) {
    var folder = event.request.uri.split('/').slice(0, 3).join('/') + '/';
    var attributes = 'Path=' + folder + '; Secure; HttpOnly';
    response.cookies['CloudFront-Policy'] = {value: query.Policy.value, attributes: attributes};
    response.cookies['CloudFront-Signature'] = {value: query.Signature.value, attributes: attributes};
    response.cookies['CloudFront-Key-Pair-Id'] = {value: query['Key-Pair-Id'].value, attributes: attributes};
  }
  response.headers['x-function'] = {value: event.context.eventType + ' ' + event.context.distributionId};
  return response;
}
"""


def test_a_viewer_response_function_runs_in_v8_and_its_cookies_become_set_cookie_lines() -> None:
    function = CloudFrontFunction("signed-cookies", COOKIES_FROM_QUERY)
    request = ViewerRequest(
        "GET", "http", "127.0.0.1:8443", "/outputs/01JOBA/hls/master.m3u8", "Policy=P_&Signature=S~-&Key-Pair-Id=K1"
    )
    response = response_object(200, [("Content-Type", "application/vnd.apple.mpegurl"), ("Content-Length", "42")])
    event = viewer_event(
        "viewer-response",
        distribution_id="E2QWRUHAPOMQZL",
        domain_name="127.0.0.1:8443",
        viewer_ip="127.0.0.1",
        request=request_object(request),
        response=response,
    )

    status, headers, body = response_parts(function.run(event))

    assert status == 200 and body is None
    assert ("x-function", "viewer-response E2QWRUHAPOMQZL") in headers
    assert ("content-type", "application/vnd.apple.mpegurl") in headers
    cookies = [value for name, value in headers if name == "Set-Cookie"]
    assert cookies == [
        "CloudFront-Policy=P_; Path=/outputs/01JOBA/; Secure; HttpOnly",
        "CloudFront-Signature=S~-; Path=/outputs/01JOBA/; Secure; HttpOnly",
        "CloudFront-Key-Pair-Id=K1; Path=/outputs/01JOBA/; Secure; HttpOnly",
    ]


def test_the_event_carries_cloudfronts_shapes_for_repeated_values() -> None:
    request = ViewerRequest(
        "GET",
        "http",
        "127.0.0.1:8443",
        "/a",
        "x=1&x=2&y=",
        (("Accept", "a"), ("Accept", "b"), ("Cookie", "c=1; d=2")),
    )

    shaped = request_object(request)

    assert shaped["querystring"] == {
        "x": {"value": "1", "multiValue": [{"value": "1"}, {"value": "2"}]},
        "y": {"value": ""},
    }
    assert shaped["headers"]["accept"]["multiValue"] == [{"value": "a"}, {"value": "b"}]
    assert "cookie" not in shaped["headers"]
    assert shaped["cookies"] == {"c": {"value": "1"}, "d": {"value": "2"}}


def test_an_async_handler_and_a_generated_response_are_supported() -> None:
    function = CloudFrontFunction(
        "deny",
        "async function handler(event) { return {statusCode: 401, statusDescription: 'Unauthorized', "
        "body: {encoding: 'text', data: 'no ' + event.request.uri}}; }",
    )

    status, _, body = response_parts(function.run({"request": {"uri": "/x"}}))

    assert (status, body) == (401, b"no /x")


def test_functions_that_throw_or_run_away_fail_as_cloudfront_fails_them() -> None:
    throws = CloudFrontFunction("throws", "function handler(event) { throw new Error('boom'); }")
    with pytest.raises(FunctionExecutionError, match="boom"):
        throws.run({})
    spins = CloudFrontFunction("spins", "function handler(event) { while (true) {} }")
    with pytest.raises(FunctionExecutionError, match="ran out of time"):
        spins.run({})
    with pytest.raises(FunctionValidationError):
        response_parts(CloudFrontFunction("nothing", "function handler(event) { }").run({}))


@pytest.mark.parametrize(
    ("code", "runtime", "problem"),
    [
        ("function handler(event) { return event.request; }", "nodejs18.x", "runtime"),
        ("function handler(event) { return event.request; ", "cloudfront-js-2.0", "does not compile"),
        ("function other(event) { return event; }", "cloudfront-js-2.0", "no `handler`"),
        ("function handler(e) { return e; }" + " " * 10240, "cloudfront-js-2.0", "FunctionSizeLimitExceeded"),
    ],
)
def test_code_cloudfront_would_not_accept_is_refused(code: str, runtime: str, problem: str) -> None:
    with pytest.raises(FunctionCodeError, match=problem):
        check_function_code("f", code, runtime)


# --- the config the local cloud supplies -----------------------------------------------------------------------------


def test_the_cdn_key_is_generated_once_per_state_dir_and_kept_private(tmp_path: Path) -> None:
    first = supplied_config(tmp_path, "http://127.0.0.1:8443", "http://127.0.0.1:5000")
    again = supplied_config(tmp_path, "http://127.0.0.1:9443", "http://127.0.0.1:5001")

    assert first["cdnPrivateKey"] == again["cdnPrivateKey"] == load_or_create_private_key(tmp_path)
    assert first["cdnBaseUrl"] == "http://127.0.0.1:8443"
    assert first["consoleExtraOrigins"] == ["http://127.0.0.1:5000"]  # where presigned links point the console
    key = serialization.load_pem_private_key(first["cdnPrivateKey"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert stat.S_IMODE((tmp_path / "cdn-key.pem").stat().st_mode) == 0o600


def test_supplied_config_replaces_the_stacks_secret_and_an_override_still_wins(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: media-pipeline\nconfig:\n  media-pipeline:cdnBaseUrl:\n    default: ''\n"
    )
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  media-pipeline:cdnPrivateKey:\n    secure: AAABAKz\n  media-pipeline:logLevel: INFO\n"
    )
    supplied = {"cdnPrivateKey": "PEM", "cdnBaseUrl": "http://127.0.0.1:8443"}

    config = load_stack_config(tmp_path, "dev", [], {}, supplied=supplied)
    assert config.values == {
        "media-pipeline:cdnBaseUrl": "http://127.0.0.1:8443",
        "media-pipeline:cdnPrivateKey": "PEM",
        "media-pipeline:logLevel": "INFO",
    }
    assert config.secret_keys == {"media-pipeline:cdnPrivateKey"}  # the stack file holds it as a secret
    overrides = {"cdnBaseUrl": "https://tunnel.example", "cdnPrivateKey": "MINE"}
    overridden = load_stack_config(tmp_path, "dev", [], overrides, supplied=supplied)
    assert (overridden.get("cdnBaseUrl"), overridden.get("cdnPrivateKey")) == ("https://tunnel.example", "MINE")
    assert overridden.secret_keys == {"media-pipeline:cdnPrivateKey"}  # still the stack's secret, whoever gives it
    with pytest.raises(ConfigError, match="encrypted secret"):
        load_stack_config(tmp_path, "dev", [], {})


def test_a_supplied_secret_is_a_secret_to_the_program_where_the_stack_has_none(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: media-pipeline\n")
    supplied = supplied_config(tmp_path, "http://127.0.0.1:8443", "http://127.0.0.1:5000")

    config = load_stack_config(tmp_path, "dev", supplied=supplied, supplied_secrets=SUPPLIED_SECRETS)

    assert config.secret_keys == {"media-pipeline:cdnPrivateKey"}
    assert config.get("cdnPrivateKey") == supplied["cdnPrivateKey"]
    assert config.get("cdnBaseUrl") == "http://127.0.0.1:8443"
    assert load_stack_config(tmp_path, "dev", supplied=supplied).secret_keys == frozenset()


# --- the console's local sign-in ---------------------------------------------------------------------------------


def _mint(subject: str, seconds: int) -> str:
    return f"token-for-{subject}-{seconds}"


@pytest.mark.parametrize(
    ("method", "content_type", "body", "status", "says"),
    [
        ("POST", "text/plain", b'{"sub": "me"}', 415, "application/json"),
        ("POST", "application/json", b"{not json", 400, "JSON object"),
        ("POST", "application/json", b'["me"]', 400, "JSON object"),
        ("POST", "application/json", b'{"sub": ""}', 400, "sub must be"),
        ("POST", "application/json", b'{"sub": "a b"}', 400, "sub must be"),
        ("POST", "application/json", b'{"sub": 7}', 400, "sub must be"),
        ("DELETE", "", b"", 405, "GET or POST"),
    ],
)
def test_the_local_sign_in_refuses_what_it_cannot_use(
    method: str, content_type: str, body: bytes, status: int, says: str
) -> None:
    answered, answer = token_answer(method, content_type, body, _mint)

    assert answered == status and says in str(answer["message"])


def test_the_local_sign_in_answers_get_and_mints_for_a_name() -> None:
    assert token_answer("GET", "", b"", _mint)[0] == 200
    status, answer = token_answer("POST", "application/json; charset=utf-8", b'{"sub": "ada@example.com"}', _mint)
    assert (status, answer) == (
        200,
        {"token": "token-for-ada@example.com-3600", "subject": "ada@example.com", "expiresIn": TOKEN_SECONDS},
    )
