"""The api function end to end against moto: HTTP API v2.0 events in, whole responses and DynamoDB state out."""

from __future__ import annotations

import base64
import io
import json
import time
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from ulid import ULID

from functions.api import handler as api
from functions.common import job_state
from functions.common.jobs_table import JobsTable, encode_cursor
from functions.common.settings import SettingsError
from functions.contracts.job_view import iso_utc
from tests.functions.api.conftest import (
    ALICE,
    BOB,
    IMAGE_METADATA,
    JSON_HEADERS,
    audio_job_completed,
    call,
    error,
    http_event,
    image_job_completed,
    processing_job_with_one_rendition_done,
    seed_job,
)
from tests.functions.cdn_keys import CDN_BASE_URL, CDN_KEY_PAIR_ID, cdn_private_key, configure_cdn
from tests.functions.conftest import FIXTURES
from tests.functions.declared_tables import USAGE_TABLE, create_declared_table
from tests.functions.playback_samples import package_for

MAX_UPLOAD_BYTES = 50_000_000
MAX_IMAGE_UPLOAD_BYTES = 5_000_000
MAX_AUDIO_UPLOAD_BYTES = 20_000_000
API_ENV = {
    "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    "MAX_IMAGE_UPLOAD_BYTES": str(MAX_IMAGE_UPLOAD_BYTES),
    "MAX_AUDIO_UPLOAD_BYTES": str(MAX_AUDIO_UPLOAD_BYTES),
    "ALLOWED_CONTENT_TYPES": "video/mp4, video/quicktime,video/webm,image/jpeg,IMAGE/PNG,audio/mpeg,audio/wav",
    "UPLOAD_URL_TTL_SECONDS": "900",
    "DOWNLOAD_URL_TTL_SECONDS": "300",
    "JOB_RETENTION_DAYS": "30",
    "USAGE_TABLE_NAME": "usage",
    "MAX_OPEN_UPLOADS_PER_USER": "20",
    "MAX_JOBS_PER_USER_PER_HOUR": "100",
    "MAX_STORED_BYTES_PER_USER": str(50 * 1024**3),
}
ALLOWED = "audio/mpeg, audio/wav, image/jpeg, image/png, video/mp4, video/quicktime, video/webm"
"""The allowed types as a 415 lists them: lower case, sorted."""
# GET requests emit no application metric; Powertools warns about the empty flush, which is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
UNSET = object()


def upload_body(**overrides: Any) -> str:
    body: dict[str, Any] = {"filename": "clip.mp4", "contentType": "video/mp4", "size": 12345}
    for name, value in overrides.items():
        if value is UNSET:
            body.pop(name)
        else:
            body[name] = value
    return json.dumps(body)


@pytest.fixture
def frozen_now() -> int:
    """The API's clock for one test; real time, so botocore's signing clock agrees within seconds."""
    return (int(time.time()) - 1) * 1000 + 250


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, frozen_now: int) -> None:
    for name, value in API_ENV.items():
        monkeypatch.setenv(name, value)
    configure_cdn(monkeypatch)
    monkeypatch.setattr(api, "now_ms", lambda: frozen_now)


@pytest.fixture
def usage_table(aws: None) -> Any:
    """The per-user usage table as components/api.py declares it."""
    return create_declared_table(USAGE_TABLE, "usage")


@pytest.fixture
def app(jobs_table: Any, usage_table: Any, buckets: dict[str, str], api_env: None) -> Any:
    """The api function wired to moto's tables and buckets; yields the raw jobs table for state assertions."""
    return jobs_table


def decoded_policy(fields: dict[str, str]) -> dict[str, Any]:
    return json.loads(base64.b64decode(fields["policy"]))


# --- POST /uploads ---------------------------------------------------------------------------------------------


def test_create_upload_writes_an_awaiting_job_and_answers_with_a_form_bound_to_its_key(
    app: Any, lambda_context: Any, frozen_now: int
) -> None:
    # GIVEN alice asks to upload a 12345-byte MP4
    event = json.loads((FIXTURES / "api_create_upload_event.json").read_text())

    # WHEN the api function handles the request
    response = call(event, lambda_context)

    # THEN it answers 201 with the job and a form for exactly uploads/{jobId}/source
    job_id = response["body"]["jobId"]
    assert str(ULID.from_str(job_id)) == job_id
    fields = response["body"]["upload"]["fields"]
    expires_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(frozen_now // 1000 + 900))
    assert response == {
        "statusCode": 201,
        "headers": {**JSON_HEADERS, "Location": f"/jobs/{job_id}"},
        "body": {
            "jobId": job_id,
            "status": "AWAITING_UPLOAD",
            "upload": {"url": "https://test-uploads.s3.amazonaws.com/", "fields": fields, "expiresAt": expires_at},
        },
    }
    assert fields["key"] == f"uploads/{job_id}/source"
    assert fields["Content-Type"] == "video/mp4"
    assert set(fields) == {
        "key",
        "Content-Type",
        "policy",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-signature",
    }
    # AND the signed policy admits only that key, that type, 1..12345 bytes, until about 15 minutes from now
    policy = decoded_policy(fields)
    assert {"bucket": "test-uploads"} in policy["conditions"]
    assert {"key": f"uploads/{job_id}/source"} in policy["conditions"]
    assert {"Content-Type": "video/mp4"} in policy["conditions"]
    assert ["content-length-range", 1, 12345] in policy["conditions"]
    assert not [c for c in policy["conditions"] if isinstance(c, list) and c[0] == "starts-with"]
    policy_expiry = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 0 <= policy_expiry - (frozen_now // 1000 + 900) <= 10
    # AND the job is stored waiting for its upload, with the upload deadline past the form's expiry plus grace
    item = app.get_item(Key={"jobId": job_id})["Item"]
    assert item == {
        "jobId": job_id,
        "ownerId": ALICE,
        "status": "AWAITING_UPLOAD",
        "version": Decimal(0),
        "attempt": Decimal(1),
        "createdAt": Decimal(frozen_now),
        "updatedAt": Decimal(frozen_now),
        "mediaType": None,
        "engine": None,
        "progress": Decimal(0),
        "source": {
            "filename": "clip.mp4",
            "contentType": "video/mp4",
            "size": Decimal(12345),
            "bucket": "test-uploads",
            "key": f"uploads/{job_id}/source",
            "etag": None,
        },
        "probe": None,
        "renditions": {},
        "error": None,
        "openJob": "OPEN",
        "deadlineAt": Decimal(frozen_now + (900 + 900) * 1000),
        "expiresAt": Decimal(frozen_now // 1000 + 30 * 86_400),
    }


def test_create_upload_accepts_a_base64_body_and_normalises_the_content_type(app: Any, lambda_context: Any) -> None:
    # GIVEN a body API Gateway passed on base64-encoded, declaring the type in capitals
    body = upload_body(contentType="Video/QuickTime", filename="holiday clip é 🎬.mov")
    event = http_event("POST", "/uploads", body=body, base64_body=True)

    # WHEN the api function handles it
    response = call(event, lambda_context)

    # THEN the job is created with the lower-case type, which the form pins
    assert response["statusCode"] == 201
    job_id = response["body"]["jobId"]
    assert response["body"]["upload"]["fields"]["Content-Type"] == "video/quicktime"
    assert {"Content-Type": "video/quicktime"} in decoded_policy(response["body"]["upload"]["fields"])["conditions"]
    assert app.get_item(Key={"jobId": job_id})["Item"]["source"]["contentType"] == "video/quicktime"
    assert app.get_item(Key={"jobId": job_id})["Item"]["source"]["filename"] == "holiday clip é 🎬.mov"


def test_create_upload_logs_the_job_id_and_emits_a_metric(
    app: Any, lambda_context: Any, log_stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a valid upload request
    event = http_event("POST", "/uploads", body=upload_body())

    # WHEN the api function handles it
    response = call(event, lambda_context)

    # THEN its log line carries the job ID and the request's correlation ID, and an EMF metric counts the upload
    job_id = response["body"]["jobId"]
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [(line["message"], line["jobId"], line["correlation_id"]) for line in lines] == [
        ("upload created", job_id, "c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    ]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    uploads = [blob for blob in emf if "UploadsCreated" in blob]
    assert len(uploads) == 1
    assert uploads[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MediaPipelineTest"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(None, error(400, "INVALID_JSON", "the request body must be a JSON object"), id="no-body"),
        pytest.param("{not json", error(400, "INVALID_JSON", "the request body is not valid JSON"), id="not-json"),
        pytest.param(
            "[" * 100_000, error(400, "INVALID_JSON", "the request body is not valid JSON"), id="deep-nesting"
        ),
        pytest.param("1" * 5000, error(400, "INVALID_JSON", "the request body is not valid JSON"), id="huge-integer"),
        pytest.param("[1, 2]", error(400, "INVALID_REQUEST", "the request body must be a JSON object"), id="array"),
        pytest.param(
            upload_body(title="x"),
            error(400, "UNKNOWN_FIELD", "unknown fields ['title']; allowed: filename, contentType, size"),
            id="unknown-field",
        ),
        pytest.param(
            upload_body(filename=UNSET),
            error(400, "INVALID_FILENAME", "filename must be a non-empty string"),
            id="filename-missing",
        ),
        pytest.param(
            upload_body(filename="   "),
            error(400, "INVALID_FILENAME", "filename must be a non-empty string"),
            id="filename-blank",
        ),
        pytest.param(
            upload_body(filename=7),
            error(400, "INVALID_FILENAME", "filename must be a non-empty string"),
            id="filename-number",
        ),
        pytest.param(
            upload_body(filename="a" * 252 + ".mp4"),
            error(400, "INVALID_FILENAME", "filename must be at most 255 characters"),
            id="filename-too-long",
        ),
        pytest.param(
            upload_body(filename="../../etc/passwd"),
            error(400, "INVALID_FILENAME", "filename must be a plain name without path separators"),
            id="filename-path",
        ),
        pytest.param(
            upload_body(filename="C:\\clips\\a.mp4"),
            error(400, "INVALID_FILENAME", "filename must be a plain name without path separators"),
            id="filename-backslash",
        ),
        pytest.param(
            upload_body(filename="clip\u0000.mp4"),
            error(400, "INVALID_FILENAME", "filename must not contain control or formatting characters"),
            id="filename-nul",
        ),
        pytest.param(
            upload_body(filename="clip\nname.mp4"),
            error(400, "INVALID_FILENAME", "filename must not contain control or formatting characters"),
            id="filename-newline",
        ),
        pytest.param(
            upload_body(filename="evil\u202egpj.exe"),
            error(400, "INVALID_FILENAME", "filename must not contain control or formatting characters"),
            id="filename-bidi-override",
        ),
        pytest.param(
            '{"filename": "clip\\ud800.mp4", "contentType": "video/mp4", "size": 1}',
            error(400, "INVALID_FILENAME", "filename must not contain control or formatting characters"),
            id="filename-lone-surrogate",
        ),
        pytest.param(
            upload_body(contentType=UNSET),
            error(400, "INVALID_CONTENT_TYPE", "contentType must be a non-empty string"),
            id="content-type-missing",
        ),
        pytest.param(
            upload_body(contentType=["video/mp4"]),
            error(400, "INVALID_CONTENT_TYPE", "contentType must be a non-empty string"),
            id="content-type-list",
        ),
        pytest.param(
            upload_body(contentType="application/x-msdownload"),
            error(415, "UNSUPPORTED_CONTENT_TYPE", f"contentType must be one of: {ALLOWED}"),
            id="content-type-not-allowed",
        ),
        pytest.param(
            upload_body(contentType="video/mp4; codecs=avc1"),
            error(415, "UNSUPPORTED_CONTENT_TYPE", f"contentType must be one of: {ALLOWED}"),
            id="content-type-with-parameters",
        ),
        pytest.param(
            upload_body(size=UNSET),
            error(400, "INVALID_SIZE", "size must be a whole number of bytes, at least 1"),
            id="size-missing",
        ),
        pytest.param(
            upload_body(size=0),
            error(400, "INVALID_SIZE", "size must be a whole number of bytes, at least 1"),
            id="size-0",
        ),
        pytest.param(
            upload_body(size=-5),
            error(400, "INVALID_SIZE", "size must be a whole number of bytes, at least 1"),
            id="size-negative",
        ),
        pytest.param(
            upload_body(size="12345"),
            error(400, "INVALID_SIZE", "size must be a whole number of bytes, at least 1"),
            id="size-string",
        ),
        pytest.param(
            upload_body(size=12.5),
            error(400, "INVALID_SIZE", "size must be a whole number of bytes, at least 1"),
            id="size-float",
        ),
        pytest.param(
            upload_body(size=True),
            error(400, "INVALID_SIZE", "size must be a whole number of bytes, at least 1"),
            id="size-bool",
        ),
        pytest.param(
            '{"filename": "a.mp4", "contentType": "video/mp4", "size": NaN}',
            error(400, "INVALID_SIZE", "size must be a whole number of bytes, at least 1"),
            id="size-nan",
        ),
        pytest.param(
            upload_body(size=MAX_UPLOAD_BYTES + 1),
            error(413, "UPLOAD_TOO_LARGE", f"size must be at most {MAX_UPLOAD_BYTES} bytes for video uploads"),
            id="size-over-limit",
        ),
        pytest.param(
            upload_body(size=10**30),
            error(413, "UPLOAD_TOO_LARGE", f"size must be at most {MAX_UPLOAD_BYTES} bytes for video uploads"),
            id="size-huge",
        ),
    ],
)
def test_create_upload_refuses_a_malformed_request_without_writing_a_job(
    app: Any, lambda_context: Any, body: str | None, expected: dict[str, Any]
) -> None:
    # GIVEN a request that breaks one rule
    event = http_event("POST", "/uploads", body=body)

    # WHEN the api function handles it
    response = call(event, lambda_context)

    # THEN it answers with the rule's status and code, and no job exists
    assert response == expected
    assert app.scan()["Items"] == []


def test_create_upload_reads_a_json_body_whatever_content_type_it_declares(app: Any, lambda_context: Any) -> None:
    # GIVEN a browser's fetch, which sends a string body as text/plain unless told otherwise
    event = http_event("POST", "/uploads", body=upload_body())
    event["headers"]["content-type"] = "text/plain;charset=UTF-8"

    # WHEN / THEN the body is read as the JSON it is
    assert call(event, lambda_context)["statusCode"] == 201


def test_create_upload_refuses_a_body_that_is_not_valid_base64(app: Any, lambda_context: Any) -> None:
    # GIVEN a body flagged base64 that is not
    event = http_event("POST", "/uploads", body="%%%not base64%%%")
    event["isBase64Encoded"] = True

    # WHEN / THEN it is invalid JSON, not a fault
    assert call(event, lambda_context) == error(400, "INVALID_JSON", "the request body is not valid JSON")


def test_create_upload_accepts_exactly_the_maximum_size(app: Any, lambda_context: Any) -> None:
    # GIVEN a request for an upload of exactly the cap
    event = http_event("POST", "/uploads", body=upload_body(size=MAX_UPLOAD_BYTES))

    # WHEN the api function handles it
    response = call(event, lambda_context)

    # THEN the form allows up to the cap
    assert response["statusCode"] == 201
    conditions = decoded_policy(response["body"]["upload"]["fields"])["conditions"]
    assert ["content-length-range", 1, MAX_UPLOAD_BYTES] in conditions


@pytest.mark.parametrize(
    ("declared", "content_type", "limit"),
    [
        ("image/jpeg", "image/jpeg", MAX_IMAGE_UPLOAD_BYTES),
        ("Image/PNG", "image/png", MAX_IMAGE_UPLOAD_BYTES),
        ("audio/mpeg", "audio/mpeg", MAX_AUDIO_UPLOAD_BYTES),
        ("audio/wav", "audio/wav", MAX_AUDIO_UPLOAD_BYTES),
        ("video/webm", "video/webm", MAX_UPLOAD_BYTES),
    ],
)
def test_each_kind_of_upload_is_bounded_by_its_own_limit(
    app: Any, lambda_context: Any, declared: str, content_type: str, limit: int
) -> None:
    # GIVEN requests to upload a file of the declared type at its kind's limit, and one byte over it
    at_limit = http_event("POST", "/uploads", body=upload_body(filename="file", contentType=declared, size=limit))
    over = http_event("POST", "/uploads", body=upload_body(filename="file", contentType=declared, size=limit + 1))

    # WHEN the api function handles them
    accepted = call(at_limit, lambda_context)
    refused = call(over, lambda_context)

    # THEN the first gets a form pinned to the type and admitting at most the kind's limit (images 5 MB, audio 20 MB
    # and video 50 MB here: no kind borrows another's), and its job waits with the declared type
    assert accepted["statusCode"] == 201
    fields = accepted["body"]["upload"]["fields"]
    assert fields["Content-Type"] == content_type
    conditions = decoded_policy(fields)["conditions"]
    assert {"Content-Type": content_type} in conditions
    assert ["content-length-range", 1, limit] in conditions
    job = app.get_item(Key={"jobId": accepted["body"]["jobId"]})["Item"]
    assert (job["status"], job["source"]["contentType"], job["source"]["size"]) == (
        "AWAITING_UPLOAD",
        content_type,
        limit,
    )
    # AND the second is refused in the API's error shape, naming its kind's limit, without a job
    kind = content_type.partition("/")[0]
    assert refused == error(413, "UPLOAD_TOO_LARGE", f"size must be at most {limit} bytes for {kind} uploads")
    assert len(app.scan()["Items"]) == 1


def test_an_image_or_audio_type_the_deployment_does_not_allow_is_refused(app: Any, lambda_context: Any) -> None:
    for declared in ("image/gif", "audio/flac", "image/svg+xml"):
        event = http_event("POST", "/uploads", body=upload_body(filename="file", contentType=declared, size=10))

        assert call(event, lambda_context) == error(
            415, "UNSUPPORTED_CONTENT_TYPE", f"contentType must be one of: {ALLOWED}"
        )
    assert app.scan()["Items"] == []


# --- auth, health, routing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_kwargs",
    [
        pytest.param({"method": "POST", "path": "/uploads", "body": upload_body()}, id="create-upload"),
        pytest.param({"method": "GET", "path": "/jobs"}, id="list-jobs"),
        pytest.param({"method": "GET", "path": "/jobs", "query": {"limit": "5"}}, id="list-jobs-with-limit"),
        pytest.param({"method": "GET", "path": "/jobs/01JD5Z3K8Q4WJ2V7N6M9P0R1ST"}, id="get-job"),
    ],
)
def test_a_request_without_a_subject_claim_is_unauthorized(
    app: Any, lambda_context: Any, request_kwargs: dict[str, Any]
) -> None:
    # GIVEN a request whose verified token carries no `sub`
    event = http_event(sub=None, **request_kwargs)

    # WHEN the api function handles it
    response = call(event, lambda_context)

    # THEN it answers 401 and writes nothing
    assert response == error(401, "UNAUTHORIZED", "a bearer token with a subject is required")
    assert app.scan()["Items"] == []


@pytest.mark.parametrize("sub", ["", "   "])
def test_an_empty_subject_is_unauthorized(app: Any, lambda_context: Any, sub: str) -> None:
    response = call(http_event("GET", "/jobs", sub=sub), lambda_context)

    assert response == error(401, "UNAUTHORIZED", "a bearer token with a subject is required")


def test_a_request_with_no_authorizer_at_all_is_unauthorized(app: Any, lambda_context: Any) -> None:
    # GIVEN a route reached without the JWT authorizer (a misconfigured route)
    event = http_event("GET", "/jobs")
    del event["requestContext"]["authorizer"]

    # WHEN / THEN the function still refuses it
    assert call(event, lambda_context) == error(401, "UNAUTHORIZED", "a bearer token with a subject is required")


def test_health_answers_ok_without_a_token(app: Any, lambda_context: Any) -> None:
    # GIVEN a health check that passed no authorizer
    event = http_event("GET", "/health")
    del event["requestContext"]["authorizer"]

    # WHEN / THEN
    assert call(event, lambda_context) == {"statusCode": 200, "headers": JSON_HEADERS, "body": {"status": "ok"}}


def test_an_unknown_route_is_a_json_404(app: Any, lambda_context: Any) -> None:
    assert call(http_event("GET", "/admin"), lambda_context) == error(404, "NOT_FOUND", "no such route")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/uploads", "POST"),
        ("PUT", "/jobs/01JD5Z3K8Q4WJ2V7N6M9P0R1ST", "DELETE, GET"),
        ("GET", "/jobs/01JD5Z3K8Q4WJ2V7N6M9P0R1ST/retry", "POST"),
        ("POST", "/jobs", "GET"),
        ("PUT", "/health", "GET"),
    ],
)
def test_a_known_route_with_the_wrong_method_is_a_405_naming_the_allowed_one(
    app: Any, lambda_context: Any, method: str, path: str, allowed: str
) -> None:
    response = call(http_event(method, path), lambda_context)

    assert response == error(405, "METHOD_NOT_ALLOWED", f"this route accepts {allowed}", headers={"Allow": allowed})


def test_a_misconfigured_environment_fails_naming_every_missing_variable(
    app: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployment that forgot two variables
    monkeypatch.delenv("MAX_UPLOAD_BYTES")
    monkeypatch.delenv("OUTPUTS_BUCKET")
    api.jobs_service.cache_clear()

    # WHEN a request arrives THEN the function fails loudly, naming both (a fault, not a client error)
    with pytest.raises(SettingsError, match="OUTPUTS_BUCKET is required; MAX_UPLOAD_BYTES is required"):
        api.handler(http_event("POST", "/uploads", body=upload_body()), lambda_context)


# --- GET /jobs/{jobId} -------------------------------------------------------------------------------------------


def test_get_job_reads_the_callers_new_job(app: Any, lambda_context: Any) -> None:
    # GIVEN alice created an upload
    created = call(http_event("POST", "/uploads", body=upload_body()), lambda_context)
    job_id = created["body"]["jobId"]

    # WHEN she reads the job
    response = call(http_event("GET", f"/jobs/{job_id}"), lambda_context)

    # THEN she sees it without its bookkeeping
    stored = app.get_item(Key={"jobId": job_id})["Item"]
    created_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(stored["createdAt"]) // 1000))
    created_at += f".{int(stored['createdAt']) % 1000:03d}Z"
    assert response == {
        "statusCode": 200,
        "headers": JSON_HEADERS,
        "body": {
            "jobId": job_id,
            "status": "AWAITING_UPLOAD",
            "attempt": 1,
            "mediaType": None,
            "engine": None,
            "createdAt": created_at,
            "updatedAt": created_at,
            "progress": 0,
            "source": {"filename": "clip.mp4", "contentType": "video/mp4", "size": 12345},
            "probe": None,
            "renditions": [],
            "image": None,
            "playback": None,
            "error": None,
            "webhookFailures": [],
            "deletionRequestedAt": None,
        },
    }


def test_get_job_lists_renditions_in_ladder_order_with_a_download_link_only_for_completed_ones(
    app: Any, lambda_context: Any
) -> None:
    # GIVEN alice's job is halfway through its ladder
    job = processing_job_with_one_rendition_done(ALICE)
    job_id = job.jobId

    # WHEN she reads it
    response = call(http_event("GET", f"/jobs/{job_id}"), lambda_context)

    # THEN the renditions come in ladder order, and the finished one links to its output for five minutes
    body = response["body"]
    url = body["renditions"][0]["url"]
    assert response == {
        "statusCode": 200,
        "headers": JSON_HEADERS,
        "body": {
            "jobId": job_id,
            "status": "PROCESSING",
            "attempt": 1,
            "mediaType": "video",
            "engine": "lambda",
            "createdAt": "2026-11-18T11:06:40.000Z",
            "updatedAt": "2026-11-18T11:06:43.000Z",
            "progress": 50,
            "source": {"filename": "talk.mov", "contentType": "video/quicktime", "size": 777},
            "probe": {
                "durationMs": 4000,
                "width": 1280,
                "height": 720,
                "videoCodec": "h264",
                "audioCodec": "aac",
                "rotation": 0,
            },
            "renditions": [
                {
                    "name": "480p",
                    "status": "COMPLETED",
                    "progress": 100,
                    "width": 854,
                    "height": 480,
                    "durationMs": 4000,
                    "bytes": 250_000,
                    "contentType": "video/mp4",
                    "url": url,
                    "error": None,
                    "reason": None,
                },
                {
                    "name": "720p",
                    "status": "PROCESSING",
                    "progress": 0,
                    "width": 1280,
                    "height": 720,
                    "durationMs": None,
                    "bytes": None,
                    "contentType": None,
                    "url": None,
                    "error": None,
                    "reason": None,
                },
                {
                    "name": "1080p",
                    "status": "SKIPPED",
                    "progress": 0,
                    "width": 1920,
                    "height": 1080,
                    "durationMs": None,
                    "bytes": None,
                    "contentType": None,
                    "url": None,
                    "error": None,
                    "reason": "source is 720p",
                },
            ],
            "image": None,
            "playback": None,
            "error": None,
            "webhookFailures": [],
            "deletionRequestedAt": None,
        },
    }
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "test-outputs.s3.amazonaws.com",
        f"/outputs/{job_id}/480p.mp4",
    )
    assert query["X-Amz-Expires"] == ["300"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert len(query["X-Amz-Signature"][0]) == 64


def signed_path(url: str) -> str:
    """The bucket host and object path a download link signs for, after checking it is a five-minute GET link."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, query["X-Amz-Expires"], query["X-Amz-Algorithm"]) == ("https", ["300"], ["AWS4-HMAC-SHA256"])
    return f"{parts.netloc}{parts.path}"


def test_get_job_shows_an_image_jobs_derivatives_as_renditions_and_its_metadata_as_image(
    app: Any, lambda_context: Any
) -> None:
    # GIVEN alice's image job completed: a thumbnail, a large derivative and the metadata unit
    job = image_job_completed(ALICE)
    job_id = job.jobId

    # WHEN she reads it
    response = call(http_event("GET", f"/jobs/{job_id}"), lambda_context)

    # THEN the derivatives are its renditions, with sizes, types and links; the metadata unit is not one of them
    # but its reading is `image`, which holds no location; the probe shows a still (no duration) and its mode
    renditions = response["body"]["renditions"]
    urls = [rendition["url"] for rendition in renditions]
    assert response == {
        "statusCode": 200,
        "headers": JSON_HEADERS,
        "body": {
            "jobId": job_id,
            "status": "COMPLETED",
            "attempt": 1,
            "mediaType": "image",
            "engine": "lambda",
            "createdAt": "2026-11-18T11:06:40.000Z",
            "updatedAt": "2026-11-18T11:06:45.000Z",
            "progress": 100,
            "source": {"filename": "photo.jpg", "contentType": "image/jpeg", "size": 777},
            "probe": {"durationMs": 0, "width": 1000, "height": 750, "frames": 1, "mode": "RGB", "sizeBytes": 777},
            "renditions": [
                {
                    "name": "thumb-webp",
                    "status": "COMPLETED",
                    "progress": 100,
                    "width": 320,
                    "height": 240,
                    "durationMs": None,
                    "bytes": 9_000,
                    "contentType": "image/webp",
                    "url": urls[0],
                    "error": None,
                    "reason": None,
                },
                {
                    "name": "large-jpeg",
                    "status": "COMPLETED",
                    "progress": 100,
                    "width": 1000,
                    "height": 750,
                    "durationMs": None,
                    "bytes": 120_000,
                    "contentType": "image/jpeg",
                    "url": urls[1],
                    "error": None,
                    "reason": None,
                },
            ],
            "image": IMAGE_METADATA,
            "playback": None,
            "error": None,
            "webhookFailures": [],
            "deletionRequestedAt": None,
        },
    }
    assert [signed_path(url) for url in urls] == [
        f"test-outputs.s3.amazonaws.com/outputs/{job_id}/thumb-webp.webp",
        f"test-outputs.s3.amazonaws.com/outputs/{job_id}/large-jpeg.jpg",
    ]


def test_get_job_shows_an_audio_jobs_rendition_waveform_and_probe(app: Any, lambda_context: Any) -> None:
    # GIVEN alice's audio job completed (its waveform finished first)
    job = audio_job_completed(ALICE)
    job_id = job.jobId

    # WHEN she reads it
    response = call(http_event("GET", f"/jobs/{job_id}"), lambda_context)

    # THEN the probe shows duration, codec, channels and sample rate; the AAC rendition and the waveform PNG come in
    # plan order with their links; there is no image metadata
    renditions = response["body"]["renditions"]
    urls = [rendition["url"] for rendition in renditions]
    assert response == {
        "statusCode": 200,
        "headers": JSON_HEADERS,
        "body": {
            "jobId": job_id,
            "status": "COMPLETED",
            "attempt": 1,
            "mediaType": "audio",
            "engine": "lambda",
            "createdAt": "2026-11-18T11:06:40.000Z",
            "updatedAt": "2026-11-18T11:06:44.000Z",
            "progress": 100,
            "source": {"filename": "song.mp3", "contentType": "audio/mpeg", "size": 777},
            "probe": {
                "durationMs": 5_000,
                "audioCodec": "mp3",
                "hasAudio": True,
                "channels": 2,
                "sampleRate": 44_100,
                "formatName": "mp3",
                "sizeBytes": 777,
            },
            "renditions": [
                {
                    "name": "audio",
                    "status": "COMPLETED",
                    "progress": 100,
                    "width": None,
                    "height": None,
                    "durationMs": 5_000,
                    "bytes": 80_000,
                    "contentType": "audio/mp4",
                    "url": urls[0],
                    "error": None,
                    "reason": None,
                },
                {
                    "name": "waveform",
                    "status": "COMPLETED",
                    "progress": 100,
                    "width": 1800,
                    "height": 280,
                    "durationMs": None,
                    "bytes": 6_000,
                    "contentType": "image/png",
                    "url": urls[1],
                    "error": None,
                    "reason": None,
                },
            ],
            "image": None,
            "playback": None,
            "error": None,
            "webhookFailures": [],
            "deletionRequestedAt": None,
        },
    }
    assert [signed_path(url) for url in urls] == [
        f"test-outputs.s3.amazonaws.com/outputs/{job_id}/audio.m4a",
        f"test-outputs.s3.amazonaws.com/outputs/{job_id}/waveform.png",
    ]


def test_a_download_link_opens_the_output_it_names(app: Any, lambda_context: Any) -> None:
    # GIVEN alice's finished 480p output is in the outputs bucket
    job = processing_job_with_one_rendition_done(ALICE)
    key = f"outputs/{job.jobId}/480p.mp4"
    boto3.client("s3").put_object(Bucket="test-outputs", Key=key, Body=b"rendition bytes")

    # WHEN she reads the job
    url = call(http_event("GET", f"/jobs/{job.jobId}"), lambda_context)["body"]["renditions"][0]["url"]

    # THEN the link's signature covers a GET of exactly that object in the outputs bucket
    parts = urlsplit(url)
    bucket = parts.netloc.split(".", 1)[0]
    assert boto3.client("s3").get_object(Bucket=bucket, Key=parts.path.lstrip("/"))["Body"].read() == b"rendition bytes"


def test_another_users_job_answers_exactly_like_a_missing_one(app: Any, lambda_context: Any) -> None:
    # GIVEN alice has a job, and an ID nobody has
    alices = processing_job_with_one_rendition_done(ALICE).jobId
    nobodys = str(ULID())

    # WHEN bob asks for both, and for something that is not a job ID at all
    for_alices = api.handler(http_event("GET", f"/jobs/{alices}", sub=BOB), lambda_context)
    for_nobodys = api.handler(http_event("GET", f"/jobs/{nobodys}", sub=BOB), lambda_context)
    for_garbage = api.handler(http_event("GET", "/jobs/..%2F..%2Fetc", sub=BOB), lambda_context)

    # THEN all three answers are byte-identical 404s
    assert for_alices == for_nobodys == for_garbage
    assert for_alices["statusCode"] == 404
    assert json.loads(for_alices["body"]) == {"error": {"code": "JOB_NOT_FOUND", "message": "job not found"}}


def test_refusals_for_a_job_carry_its_id_in_the_log(app: Any, lambda_context: Any, log_stream: io.StringIO) -> None:
    # GIVEN alice's job
    job_id = processing_job_with_one_rendition_done(ALICE).jobId

    # WHEN bob asks for it
    api.handler(http_event("GET", f"/jobs/{job_id}", sub=BOB), lambda_context)

    # THEN the refusal's log line names the job
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [(line["message"], line["jobId"], line["code"]) for line in lines] == [
        ("request refused", job_id, "JOB_NOT_FOUND")
    ]


# --- GET /jobs -------------------------------------------------------------------------------------------------


def list_page(lambda_context: Any, sub: str = ALICE, **query: str) -> dict[str, Any]:
    return call(http_event("GET", "/jobs", sub=sub, query=query or None), lambda_context)


def test_list_jobs_pages_through_the_callers_jobs_newest_first(app: Any, lambda_context: Any) -> None:
    # GIVEN alice has five jobs and bob two, interleaved in time
    base = 1_795_000_000_000
    alices = [seed_job(ALICE, base + minute * 60_000).jobId for minute in range(5)]
    for minute in (1, 3):
        seed_job(BOB, base + minute * 60_000 + 1)

    # WHEN she pages through with limit 2
    pages: list[list[str]] = []
    query: dict[str, str] = {"limit": "2"}
    while True:
        response = list_page(lambda_context, **query)
        assert response["statusCode"] == 200
        pages.append([job["jobId"] for job in response["body"]["jobs"]])
        if response["body"]["nextCursor"] is None:
            break
        query = {"limit": "2", "cursor": response["body"]["nextCursor"]}

    # THEN she sees only her jobs, newest first, two at a time
    assert pages == [[alices[4], alices[3]], [alices[2], alices[1]], [alices[0]]]


def test_list_jobs_items_read_like_a_single_job(app: Any, lambda_context: Any) -> None:
    # GIVEN alice's one job
    job = processing_job_with_one_rendition_done(ALICE)

    # WHEN she lists her jobs
    listed = list_page(lambda_context)
    single = call(http_event("GET", f"/jobs/{job.jobId}"), lambda_context)

    # THEN the item is the job's own view and there is no further page (download links are signed per call, so
    # two calls a second apart sign them differently: compared without their signatures)
    def unsigned(view: dict[str, Any]) -> dict[str, Any]:
        renditions = [{**r, "url": r["url"] and r["url"].split("?", 1)[0]} for r in view["renditions"]]
        return {**view, "renditions": renditions}

    assert (listed["statusCode"], listed["headers"], listed["body"]["nextCursor"]) == (200, JSON_HEADERS, None)
    assert [unsigned(view) for view in listed["body"]["jobs"]] == [unsigned(single["body"])]
    assert any(r["url"] for r in single["body"]["renditions"])


def test_list_jobs_shows_every_kind_of_job_as_it_reads_alone(app: Any, lambda_context: Any) -> None:
    # GIVEN alice has a video, an image and an audio job
    ids = {
        builder(ALICE).jobId
        for builder in (processing_job_with_one_rendition_done, image_job_completed, audio_job_completed)
    }

    # WHEN she lists her jobs and reads each one
    listed = {view["jobId"]: view for view in list_page(lambda_context)["body"]["jobs"]}
    single = {job_id: call(http_event("GET", f"/jobs/{job_id}"), lambda_context)["body"] for job_id in ids}

    # THEN each listed job is its own view, download links compared without their signatures
    def unsigned(view: dict[str, Any]) -> dict[str, Any]:
        return {
            **view,
            "renditions": [{**r, "url": r["url"] and r["url"].split("?", 1)[0]} for r in view["renditions"]],
        }

    assert set(listed) == ids
    assert {job_id: unsigned(view) for job_id, view in listed.items()} == {
        job_id: unsigned(view) for job_id, view in single.items()
    }
    assert {view["mediaType"] for view in listed.values()} == {"video", "image", "audio"}


def test_list_jobs_for_a_caller_with_no_jobs_is_empty(app: Any, lambda_context: Any) -> None:
    seed_job(BOB, 1_795_000_000_000)

    assert list_page(lambda_context) == {
        "statusCode": 200,
        "headers": JSON_HEADERS,
        "body": {"jobs": [], "nextCursor": None},
    }


def test_list_jobs_defaults_to_twenty(app: Any, lambda_context: Any) -> None:
    # GIVEN alice has 21 jobs
    ids = [seed_job(ALICE, 1_795_000_000_000 + minute * 60_000).jobId for minute in range(21)]

    # WHEN she lists without a limit, then follows the cursor
    first = list_page(lambda_context)["body"]
    second = list_page(lambda_context, cursor=first["nextCursor"])["body"]

    # THEN the first page holds the 20 newest and the second the oldest one
    assert [job["jobId"] for job in first["jobs"]] == ids[:0:-1]
    assert [job["jobId"] for job in second["jobs"]] == [ids[0]]
    assert second["nextCursor"] is None


@pytest.mark.parametrize("limit", ["1", "100"])
def test_list_jobs_accepts_the_limit_bounds(app: Any, lambda_context: Any, limit: str) -> None:
    for minute in range(3):
        seed_job(ALICE, 1_795_000_000_000 + minute * 60_000)

    response = list_page(lambda_context, limit=limit)

    assert response["statusCode"] == 200
    assert len(response["body"]["jobs"]) == min(int(limit), 3)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", "10,20", "٣", "0x10", "1000"])
def test_list_jobs_refuses_a_limit_outside_1_to_100(app: Any, lambda_context: Any, limit: str) -> None:
    assert list_page(lambda_context, limit=limit) == error(
        400, "INVALID_LIMIT", "limit must be a whole number from 1 to 100"
    )


def forged_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not-a-cursor", id="garbage"),
        pytest.param("!!!", id="not-base64"),
        pytest.param(forged_cursor(["jobId"]), id="not-an-object"),
        pytest.param(forged_cursor({"jobId": "x", "ownerId": ALICE}), id="missing-field"),
        pytest.param(forged_cursor({"jobId": "", "ownerId": ALICE, "createdAt": 1}), id="empty-job-id"),
        pytest.param(forged_cursor({"jobId": "x", "ownerId": ALICE, "createdAt": True}), id="boolean-time"),
        pytest.param(forged_cursor({"jobId": "x", "ownerId": ALICE, "createdAt": 10**40}), id="huge-time"),
    ],
)
def test_list_jobs_refuses_a_cursor_it_did_not_issue(app: Any, lambda_context: Any, cursor: str) -> None:
    seed_job(ALICE, 1_795_000_000_000)

    assert list_page(lambda_context, cursor=cursor) == error(
        400, "INVALID_CURSOR", "cursor is not one this API issued to you; start again without it"
    )


def test_list_jobs_refuses_a_tampered_cursor_and_another_owners_cursor(app: Any, lambda_context: Any) -> None:
    # GIVEN alice and bob each have three jobs, and bob holds a real cursor into his
    for minute in range(3):
        seed_job(ALICE, 1_795_000_000_000 + minute * 60_000)
        seed_job(BOB, 1_795_000_000_000 + minute * 60_000 + 7)
    bobs_cursor = list_page(lambda_context, sub=BOB, limit="1")["body"]["nextCursor"]
    assert bobs_cursor is not None
    bobs_key = json.loads(base64.urlsafe_b64decode(bobs_cursor))

    # WHEN alice replays bob's cursor, or rewrites its owner to herself
    replayed = list_page(lambda_context, cursor=bobs_cursor)
    rewritten = list_page(lambda_context, cursor=encode_cursor({**bobs_key, "ownerId": ALICE, "extra": 1}))

    # THEN both are refused
    expected = error(400, "INVALID_CURSOR", "cursor is not one this API issued to you; start again without it")
    assert replayed == expected
    assert rewritten == expected
    # AND bob's own cursor still works for him
    assert list_page(lambda_context, sub=BOB, cursor=bobs_cursor)["statusCode"] == 200


def test_an_empty_cursor_reads_the_first_page(app: Any, lambda_context: Any) -> None:
    job_id = seed_job(ALICE, 1_795_000_000_000).jobId

    body = list_page(lambda_context, cursor="")["body"]

    assert [job["jobId"] for job in body["jobs"]] == [job_id]


def test_a_completed_video_shows_its_playback_signed_once_for_its_folder(app: Any, lambda_context: Any) -> None:
    # GIVEN alice's video finished its last rendition and was packaged, through the jobs table as the tracker does
    job = processing_job_with_one_rendition_done(ALICE)
    table, now = JobsTable("jobs"), job.updatedAt + 1000
    output = {"width": 1280, "height": 720, "bucket": "test-outputs", "key": f"outputs/{job.jobId}/720p.mp4"}
    table.change(job.jobId, partial(job_state.complete_rendition, name="720p", output=output, now=now))
    table.change(job.jobId, lambda asking: job_state.complete_playback(asking, package=package_for(asking), now=now))

    # WHEN she reads it
    body = call(http_event("GET", f"/jobs/{job.jobId}"), lambda_context)["body"]

    # THEN `playback` links the master playlist, the poster and the thumbnails through the CDN
    playback = body["playback"]
    assert body["status"] == "COMPLETED"
    links = [playback["hls"], playback["poster"], playback["thumbnails"]["vtt"], playback["thumbnails"]["sprite"]]
    folder = f"{CDN_BASE_URL}/outputs/{job.jobId}/"
    assert [link.split("?")[0].removeprefix(folder) for link in links] == [
        "hls/master.m3u8",
        "poster.jpg",
        "thumbnails/thumbnails.vtt",
        "thumbnails/sprite.jpg",
    ]
    # AND every link carries the one signature of a policy over the job's folder, valid for the download TTL
    queries = [parse_qs(urlsplit(link).query) for link in links]
    assert all(q == queries[0] for q in queries)
    assert queries[0]["Key-Pair-Id"] == [CDN_KEY_PAIR_ID]
    policy = json.loads(base64.b64decode(queries[0]["Policy"][0].translate(str.maketrans("-_~", "+=/"))))
    statement = policy["Statement"][0]
    assert statement["Resource"] == f"{folder}*"
    expires = statement["Condition"]["DateLessThan"]["AWS:EpochTime"]
    assert playback["expiresAt"] == iso_utc(expires * 1000)
    assert 0 < expires - int(time.time()) <= int(API_ENV["DOWNLOAD_URL_TTL_SECONDS"]) + 5
    signature = base64.b64decode(queries[0]["Signature"][0].translate(str.maketrans("-_~", "+=/")))
    signed = base64.b64decode(queries[0]["Policy"][0].translate(str.maketrans("-_~", "+=/")))
    public_key = serialization.load_pem_private_key(cdn_private_key().encode(), password=None).public_key()
    public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA1())  # raises when it does not verify
