"""The local CloudFront over HTTP, in process: the engine's creators build a distribution like the program's
(`components/cdn.py`: an OAC'd outputs bucket, one key group trusted by every behaviour, the playlist behaviour's
viewer-response function from `components/cdn_signed_cookies.js`) in a moto server, and the CDN serves it on
127.0.0.1. URLs are signed as the api signs them (botocore's CloudFrontSigner, a custom policy over the job's folder);
ffprobe plays the HLS ladder through it with the cookies the function sets. Refusals are asserted by CloudFront's
error code and the local reason, so each test fails if the wrong check refused (or none did)."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from local.cdn.distribution import CacheBehaviour, Distribution, load_distribution
from local.cdn.functions import CloudFrontFunction
from local.cdn.server import LocalCdn
from local.cdn.viewer import ViewerRequest
from local.cloud import free_port
from local.engine.cloudfront import CloudFrontResources
from local.engine.deployment import DeclaredResource, Deployment, ResourceType
from local.engine.emulator import ACCOUNT_ID, Emulator
from local.engine.resources import ResourceFactory
from local.permissions import enforcement, roles

REGION = "us-east-1"
REPO = Path(__file__).resolve().parents[2]
SIGNED_COOKIES_JS = REPO / "components" / "cdn_signed_cookies.js"
MASTER = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180\n360p/index.m3u8\n"
APP_ORIGIN = "http://localhost:3000"


@dataclass
class Stack:
    emulator: Emulator
    deployment: Deployment
    cdn: LocalCdn
    bucket: str
    key_pair_id: str
    private_key: rsa.RSAPrivateKey
    distribution_arn: str

    @property
    def base(self) -> str:
        return self.cdn.url

    def sign(self, job: str, file: str, expires_in: float = 3600) -> str:
        signer = CloudFrontSigner(
            self.key_pair_id, lambda m: self.private_key.sign(m, padding.PKCS1v15(), hashes.SHA1())
        )
        expiry = datetime.now(UTC) + timedelta(seconds=expires_in)
        policy = signer.build_policy(f"{self.base}/outputs/{job}/*", expiry)
        return signer.generate_presigned_url(f"{self.base}/outputs/{job}/{file}", policy=policy)

    def bucket_policy(self, *statements: dict[str, Any]) -> None:
        document = {"Version": "2012-10-17", "Statement": list(statements)}
        self.emulator.client("s3").put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(document))


def declare(factory: ResourceFactory, deployment: Deployment, token: str, name: str, inputs: dict[str, Any]) -> Any:
    """What the engine does for each resource the program registers."""
    created = factory.create(token, name, inputs)
    state = {**inputs, **created.outputs, "id": created.id}
    deployment.resources.append(DeclaredResource(token, name, created.id, inputs, state, created.behaviour))
    return state


def tls_only(bucket: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def cloudfront_reads(bucket: str, distribution_arn: str, action: str = "s3:GetObject") -> dict[str, Any]:
    resource = f"arn:aws:s3:::{bucket}" if action == "s3:ListBucket" else f"arn:aws:s3:::{bucket}/outputs/*"
    return {
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": action,
        "Resource": resource,
        "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
    }


def make_ladder(directory: Path) -> Path:
    """A one-variant CMAF HLS ladder (master, variant playlist, init and media segments), as the packager lays it."""
    variant = directory / "hls" / "360p"
    variant.mkdir(parents=True)
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=10:duration=3"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "10"]
    args += ["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4"]
    args += ["-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", str(variant / "seg_%05d.m4s")]
    subprocess.run([*args, str(variant / "index.m3u8")], check=True, env=tool_env(), cwd=variant)
    (directory / "hls" / "master.m3u8").write_text(MASTER)
    return directory


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    emulator = Emulator(region=REGION)
    emulator.start()
    deployment = Deployment(project="media-pipeline", stack="test", region=REGION, account_id=ACCOUNT_ID)
    port = free_port()
    factory = ResourceFactory(emulator, deployment, "", REPO, f"http://127.0.0.1:{port}")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    bucket = declare(factory, deployment, ResourceType.S3_BUCKET, "outputs-bucket", {})
    access = declare(
        factory,
        deployment,
        ResourceType.CLOUDFRONT_ORIGIN_ACCESS_CONTROL,
        "cdn-origin-access",
        {"originAccessControlOriginType": "s3", "signingBehavior": "always", "signingProtocol": "sigv4"},
    )
    key = declare(
        factory, deployment, ResourceType.CLOUDFRONT_PUBLIC_KEY, "cdn-public-key", {"encodedKey": public_pem.decode()}
    )
    group = declare(factory, deployment, ResourceType.CLOUDFRONT_KEY_GROUP, "cdn-key-group", {"items": [key["id"]]})
    ttls = {"minTtl": 0, "defaultTtl": 60, "maxTtl": 60}
    cache = declare(factory, deployment, ResourceType.CLOUDFRONT_CACHE_POLICY, "cdn-playlists", ttls)
    cors = declare(
        factory,
        deployment,
        ResourceType.CLOUDFRONT_RESPONSE_HEADERS_POLICY,
        "cdn-cors",
        {
            "corsConfig": {
                "accessControlAllowCredentials": True,
                "accessControlAllowHeaders": {"items": ["Range"]},
                "accessControlAllowMethods": {"items": ["GET", "HEAD"]},
                "accessControlAllowOrigins": {"items": [APP_ORIGIN]},
                "originOverride": True,
            }
        },
    )
    code = SIGNED_COOKIES_JS.read_text()  # the program's own function: the test fails if it is gone
    function = declare(
        factory,
        deployment,
        ResourceType.CLOUDFRONT_FUNCTION,
        "cdn-signed-cookies",
        {"runtime": "cloudfront-js-2.0", "code": code, "publish": True},
    )
    behaviour = {
        "allowedMethods": ["GET", "HEAD"],
        "cachedMethods": ["GET", "HEAD"],
        "targetOriginId": "outputs",
        "viewerProtocolPolicy": "redirect-to-https",
        "cachePolicyId": cache["id"],
        "responseHeadersPolicyId": cors["id"],
        "trustedKeyGroups": [group["id"]],
    }
    distribution = declare(
        factory,
        deployment,
        ResourceType.CLOUDFRONT_DISTRIBUTION,
        "cdn-distribution",
        {
            "enabled": True,
            "origins": [
                {
                    "originId": "outputs",
                    "domainName": bucket["bucketRegionalDomainName"],
                    "originAccessControlId": access["id"],
                }
            ],
            "defaultCacheBehavior": behaviour,
            "orderedCacheBehaviors": [
                {
                    **behaviour,
                    "pathPattern": "outputs/*.m3u8",
                    "functionAssociations": [{"eventType": "viewer-response", "functionArn": function["arn"]}],
                }
            ],
        },
    )
    ladder = make_ladder(tmp_path_factory.mktemp("ladder"))
    s3 = emulator.client("s3")
    content_types = {".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/iso.segment", ".mp4": "video/mp4"}
    for job in ("01JOBA", "01JOBB"):
        for path in ladder.rglob("*.*"):
            key_name = f"outputs/{job}/{path.relative_to(ladder).as_posix()}"
            s3.put_object(
                Bucket=bucket["bucket"], Key=key_name, Body=path.read_bytes(), ContentType=content_types[path.suffix]
            )
    loaded = load_distribution(deployment)
    assert loaded is not None
    cdn = LocalCdn(loaded, emulator, ACCOUNT_ID, REGION, port)
    cdn.start()
    built = Stack(emulator, deployment, cdn, bucket["bucket"], key["id"], private_key, distribution["arn"])
    built.bucket_policy(tls_only(built.bucket), cloudfront_reads(built.bucket, built.distribution_arn))
    try:
        yield built
    finally:
        cdn.stop()
        emulator.stop()


def fetch(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes, list[str]]:
    """Status, headers (lower-case names), body and Set-Cookie lines; errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        response: HTTPResponse = urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        response = error  # type: ignore[assignment]
    with response:
        cookies = response.headers.get_all("Set-Cookie") or []
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read(), cookies


def refused(url: str, headers: dict[str, str] | None = None) -> tuple[str, str]:
    status, answer_headers, body, _ = fetch(url, headers)
    assert status == 403, body
    assert answer_headers["x-cache"] == "Error from cloudfront"
    assert "access-control-allow-origin" not in answer_headers  # CloudFront's own errors carry no CORS headers
    return body.decode().split("<Code>")[1].split("<")[0], answer_headers.get("x-local-cloud-reason", "")


def cookie_header(set_cookies: list[str]) -> str:
    return "; ".join(line.split(";", 1)[0] for line in set_cookies)


# --- the feature: signed URLs accepted, tampered / other job / expired refused ---------------------------------------


def test_a_signed_playlist_url_is_served_with_the_objects_headers_and_sets_the_jobs_cookies(stack: Stack) -> None:
    status, headers, body, cookies = fetch(stack.sign("01JOBA", "hls/master.m3u8"), {"Origin": APP_ORIGIN})

    assert status == 200 and body.decode() == MASTER
    assert headers["content-type"] == "application/vnd.apple.mpegurl"
    assert headers["content-length"] == str(len(MASTER)) and headers["etag"] and headers["last-modified"]
    assert headers["access-control-allow-origin"] == APP_ORIGIN
    assert headers["access-control-allow-credentials"] == "true"
    assert sorted(line.split("=", 1)[0] for line in cookies) == [
        "CloudFront-Key-Pair-Id",
        "CloudFront-Policy",
        "CloudFront-Signature",
    ]
    assert all("Path=/outputs/01JOBA/" in line for line in cookies)


def test_a_tampered_signature_is_refused(stack: Stack) -> None:
    url = stack.sign("01JOBA", "hls/master.m3u8")
    signature = url.split("Signature=", 1)[1].split("&", 1)[0]
    tampered = url.replace(signature, signature[:20] + ("A" if signature[20] != "A" else "B") + signature[21:])

    code, reason = refused(tampered)

    assert code == "AccessDenied" and "does not match" in reason


def test_another_jobs_prefix_is_refused(stack: Stack) -> None:
    url = stack.sign("01JOBA", "hls/master.m3u8").replace("/outputs/01JOBA/", "/outputs/01JOBB/")

    code, reason = refused(url)

    assert code == "AccessDenied" and "does not cover" in reason


def test_an_expired_url_is_refused(stack: Stack) -> None:
    code, reason = refused(stack.sign("01JOBA", "hls/master.m3u8", expires_in=-5))

    assert code == "AccessDenied" and reason.startswith("expired")


def test_an_unsigned_request_and_an_unknown_key_are_refused(stack: Stack) -> None:
    assert refused(f"{stack.base}/outputs/01JOBA/hls/master.m3u8")[0] == "MissingKey"
    url = stack.sign("01JOBA", "hls/master.m3u8").replace(
        f"Key-Pair-Id={stack.key_pair_id}", "Key-Pair-Id=KNOTAKEY000000"
    )
    assert refused(url)[0] == "InvalidKey"


def test_the_cookies_the_playlist_sets_open_its_jobs_folder_and_nothing_else(stack: Stack) -> None:
    _, _, _, cookies = fetch(stack.sign("01JOBA", "hls/master.m3u8"))
    jar = {"Cookie": cookie_header(cookies)}

    status, headers, body, again = fetch(f"{stack.base}/outputs/01JOBA/hls/360p/index.m3u8", jar)
    assert status == 200 and body.startswith(b"#EXTM3U") and again == []  # no query: the function sets nothing
    status, headers, _, _ = fetch(f"{stack.base}/outputs/01JOBA/hls/360p/init.mp4", jar)
    assert status == 200 and headers["content-type"] == "video/mp4"
    code, reason = refused(f"{stack.base}/outputs/01JOBB/hls/360p/index.m3u8", jar)
    assert code == "AccessDenied" and "does not cover" in reason


@pytest.mark.media
def test_ffprobe_plays_the_hls_ladder_from_the_signed_playlist_url(stack: Stack) -> None:
    requests, refusals = stack.cdn.requests, stack.cdn.refused

    probe = [ffprobe_path(), "-v", "error", "-print_format", "json", "-show_streams", "-count_packets"]
    result = subprocess.run(
        [*probe, "-select_streams", "v:0", stack.sign("01JOBA", "hls/master.m3u8")],
        check=False,
        capture_output=True,
        text=True,
        env=tool_env(),
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    streams = json.loads(result.stdout)["streams"]
    assert streams[0]["codec_name"] == "h264" and (streams[0]["width"], streams[0]["height"]) == (320, 180)
    assert int(streams[0]["nb_read_packets"]) == 30  # every segment came through
    # master, variant, init and three segments, the last five on the cookies alone, none refused
    assert stack.cdn.requests - requests >= 6 and stack.cdn.refused == refusals


# --- the origin: S3 as CloudFront reads it through the OAC, ranges ---------------------------------------------------


def test_ranges_are_served_as_s3_serves_them(stack: Stack) -> None:
    url = stack.sign("01JOBA", "hls/360p/seg_00001.m4s")
    status, headers, whole, _ = fetch(url)
    assert status == 200 and headers["accept-ranges"] == "bytes"

    status, headers, part, _ = fetch(url, {"Range": "bytes=10-19"})
    assert (status, part) == (206, whole[10:20])
    assert headers["content-range"] == f"bytes 10-19/{len(whole)}" and headers["content-length"] == "10"
    status, headers, tail, _ = fetch(url, {"Range": "bytes=-7"})
    assert (status, tail) == (206, whole[-7:])
    status, headers, body, _ = fetch(url, {"Range": f"bytes={len(whole)}-"})
    assert status == 416 and b"InvalidRange" in body and headers["content-range"] == f"bytes */{len(whole)}"


def test_head_answers_the_headers_without_a_body(stack: Stack) -> None:
    status, headers, body, _ = fetch(stack.sign("01JOBA", "hls/360p/init.mp4"), method="HEAD")

    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_a_method_the_behaviour_does_not_allow_is_refused(stack: Stack) -> None:
    status, headers, _, _ = fetch(stack.sign("01JOBA", "hls/master.m3u8"), {"Origin": APP_ORIGIN}, method="OPTIONS")

    assert status == 403 and headers["x-cache"] == "Error from cloudfront"


def test_s3_serves_cloudfront_only_what_the_bucket_policy_grants_this_distribution(stack: Stack) -> None:
    url = stack.sign("01JOBA", "hls/master.m3u8")
    missing = stack.sign("01JOBA", "hls/missing.m3u8")
    try:
        # another distribution's grant: S3 refuses, CloudFront relays S3's AccessDenied
        other = stack.distribution_arn.rsplit("/", 1)[0] + "/EOTHERDISTRIB0"
        stack.bucket_policy(tls_only(stack.bucket), cloudfront_reads(stack.bucket, other))
        status, headers, body, _ = fetch(url)
        assert status == 403 and b"<Code>AccessDenied</Code>" in body and headers["x-cache"] != "Error from cloudfront"
        # the grant back: a missing key is 403 without s3:ListBucket, 404 with it
        stack.bucket_policy(tls_only(stack.bucket), cloudfront_reads(stack.bucket, stack.distribution_arn))
        assert fetch(url)[0] == 200
        assert fetch(missing)[0] == 403
        stack.bucket_policy(
            tls_only(stack.bucket),
            cloudfront_reads(stack.bucket, stack.distribution_arn),
            cloudfront_reads(stack.bucket, stack.distribution_arn, "s3:ListBucket"),
        )
        status, _, body, _ = fetch(missing)
        assert status == 404 and b"NoSuchKey" in body
    finally:
        stack.bucket_policy(tls_only(stack.bucket), cloudfront_reads(stack.bucket, stack.distribution_arn))


# --- the engine refuses what CloudFront refuses at creation ---------------------------------------------------------


def test_cloudfront_resources_naming_what_does_not_exist_are_refused_at_creation() -> None:
    deployment = Deployment(project="p", stack="s", region=REGION, account_id=ACCOUNT_ID)
    creators = CloudFrontResources(deployment, "127.0.0.1:1").creators()

    with pytest.raises(ValueError, match="NoSuchPublicKey"):
        creators[ResourceType.CLOUDFRONT_KEY_GROUP]("g", {"items": ["KNOSUCHKEY0000"]})
    with pytest.raises(ValueError, match="RSA 2048"):
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        pem = small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        creators[ResourceType.CLOUDFRONT_PUBLIC_KEY]("k", {"encodedKey": pem})
    function_id, outputs = creators[ResourceType.CLOUDFRONT_FUNCTION](
        "f", {"runtime": "cloudfront-js-2.0", "code": "function handler(e) { return e.request; }", "publish": False}
    )
    state = {"runtime": "cloudfront-js-2.0", **outputs, "id": function_id}
    deployment.resources.append(
        DeclaredResource(ResourceType.CLOUDFRONT_FUNCTION, "f", function_id, {}, state, "runtime")  # type: ignore[arg-type]
    )
    behaviour = {
        "targetOriginId": "o",
        "cachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
        "functionAssociations": [{"eventType": "viewer-request", "functionArn": outputs["arn"]}],
    }
    origins = [{"originId": "o", "domainName": "b.s3.us-east-1.amazonaws.com"}]
    with pytest.raises(ValueError, match="not published"):
        creators[ResourceType.CLOUDFRONT_DISTRIBUTION]("d", {"origins": origins, "defaultCacheBehavior": behaviour})
    with pytest.raises(ValueError, match="NoSuchCachePolicy"):
        unknown = {**behaviour, "cachePolicyId": "not-a-policy", "functionAssociations": []}
        creators[ResourceType.CLOUDFRONT_DISTRIBUTION]("d", {"origins": origins, "defaultCacheBehavior": unknown})


# --- Secrets Manager: a function's role reads only the secret its policy names ---------------------------------------


def test_get_secret_value_is_decided_by_the_roles_policy_on_the_secrets_arn(stack: Stack) -> None:
    deployment = Deployment(project="p", stack="s", region=REGION, account_id=ACCOUNT_ID)
    factory = ResourceFactory(stack.emulator, deployment, "", REPO)
    signing = declare(factory, deployment, ResourceType.SECRETSMANAGER_SECRET, "signing-key", {})
    declare(
        factory,
        deployment,
        ResourceType.SECRETSMANAGER_SECRET_VERSION,
        "v",
        {"secretId": signing["id"], "secretString": "PEM"},
    )
    other = declare(factory, deployment, ResourceType.SECRETSMANAGER_SECRET, "other-key", {})
    declare(
        factory,
        deployment,
        ResourceType.SECRETSMANAGER_SECRET_VERSION,
        "w",
        {"secretId": other["id"], "secretString": "X"},
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = declare(factory, deployment, ResourceType.IAM_ROLE, "api-role", {"assumeRolePolicy": json.dumps(trust)})
    grant = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": signing["arn"]}],
    }
    declare(
        factory,
        deployment,
        ResourceType.IAM_ROLE_POLICY,
        "api-read-key",
        {"role": role["name"], "policy": json.dumps(grant)},
    )
    credentials = roles.assume_role_for(
        stack.emulator.client("sts"), ACCOUNT_ID, role["arn"], "lambda.amazonaws.com", "api"
    )
    secrets = stack.emulator.client("secretsmanager", credentials)

    enforcement.enable()
    try:
        assert secrets.get_secret_value(SecretId=signing["arn"])["SecretString"] == "PEM"
        with pytest.raises(ClientError) as denied:
            secrets.get_secret_value(SecretId=other["arn"])
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
        with pytest.raises(ClientError) as not_granted:
            secrets.describe_secret(SecretId=signing["arn"])
        assert not_granted.value.response["Error"]["Code"] == "AccessDeniedException"
    finally:
        enforcement.disable()


# --- viewer-request functions, and the order CloudFront runs things in ---------------------------------------------


GATEKEEPER = """
function handler(event) {
  var request = event.request;
  if (request.uri === '/private') {
    return {statusCode: 401, statusDescription: 'Unauthorized', headers: {'www-authenticate': {value: 'Basic'}},
            body: {encoding: 'text', data: 'no'}};
  }
  if (request.uri === '/broken') { return {uri: 'no leading slash'}; }
  request.uri = '/rewritten' + request.uri;
  return request;
}
"""


def answer_directly(requires_signature: bool, path: str) -> tuple[int, dict[str, str], bytes]:
    """One request through a distribution whose only behaviour has a viewer-request function (no origin is reached
    for the answers asserted here)."""
    behaviour = CacheBehaviour(
        path_pattern="*",
        target_origin_id="none",
        allowed_methods=frozenset({"GET", "HEAD"}),
        trusted_keys={"KSOMEKEY000000": rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()},
        requires_signature=requires_signature,
        functions={"viewer-request": CloudFrontFunction("gatekeeper", GATEKEEPER)},
    )
    distribution = Distribution("E1", "arn:aws:cloudfront::1:distribution/E1", "127.0.0.1:1", {}, behaviour)
    cdn = LocalCdn(distribution, Emulator.attach("http://127.0.0.1:9", REGION), ACCOUNT_ID, REGION, 0)
    try:
        answer = cdn.answer(ViewerRequest("GET", "http", "127.0.0.1:1", path))
    finally:
        cdn.stop()
    return answer.status, dict(answer.headers), b"".join(answer.body)


def test_a_viewer_request_function_can_answer_the_viewer_itself() -> None:
    status, headers, body = answer_directly(requires_signature=False, path="/private")

    assert (status, body) == (401, b"no")
    assert headers["www-authenticate"] == "Basic" and headers["Content-Length"] == "2"


def test_a_viewer_request_function_that_returns_nonsense_answers_502() -> None:
    assert answer_directly(requires_signature=False, path="/broken")[0] == 502


def test_the_signature_is_checked_before_any_function_runs() -> None:
    status, _, body = answer_directly(requires_signature=True, path="/private")

    assert status == 403 and b"<Code>MissingKey</Code>" in body  # not the function's 401
