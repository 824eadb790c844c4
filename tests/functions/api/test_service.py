"""The api function's rules without AWS: request parsing, upload rules, the upload form, the job view."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest

from functions.api.adapters import S3Signer
from functions.api.service import (
    DEFAULT_PAGE_SIZE,
    ApiError,
    UploadRequest,
    Webhooks,
    declared_media_type,
    is_job_id,
    new_upload_job,
    owner_from_claims,
    parse_cursor,
    parse_json_object,
    parse_page_size,
    upload_form,
    upload_key,
    validate_content_type,
    validate_filename,
    validate_size,
    validate_upload_request,
)
from functions.api.settings import UPLOAD_GRACE_SECONDS, ApiSettings
from functions.common import job_state
from functions.contracts.job_view import iso_utc, job_page, job_view, rendition_view
from functions.contracts.jobs import JobRecord, JobSource, ObjectLocation, RenditionRecord
from functions.contracts.media import MediaType
from functions.contracts.webhooks import Endpoint, new_endpoint
from tests.functions.api.conftest import SETTINGS_ENV
from tests.functions.cdn_keys import unsigned_playback

SETTINGS = ApiSettings.from_env(SETTINGS_ENV)


def raised(call: Any) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        call()
    return int(caught.value.status), caught.value.code


# --- request parsing --------------------------------------------------------------------------------------------


def test_a_json_object_body_parses_plain_or_base64() -> None:
    body = '{"a": 1}'
    assert parse_json_object(body, base64_encoded=False) == {"a": 1}
    assert parse_json_object(base64.b64encode(body.encode()).decode(), base64_encoded=True) == {"a": 1}


@pytest.mark.parametrize(
    ("body", "base64_encoded", "code"),
    [
        (None, False, "INVALID_JSON"),
        ("", False, "INVALID_JSON"),
        ("{", False, "INVALID_JSON"),
        ('"text"', False, "INVALID_REQUEST"),
        ("null", False, "INVALID_REQUEST"),
        ("e30=", False, "INVALID_JSON"),  # base64 of {} but not flagged as such
        ("é", True, "INVALID_JSON"),
        (base64.b64encode(b"\xff\xfe{}").decode(), True, "INVALID_JSON"),
        ("{" * 50_000, False, "INVALID_JSON"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_client_error(body: str | None, base64_encoded: bool, code: str) -> None:
    assert raised(lambda: parse_json_object(body, base64_encoded=base64_encoded)) == (400, code)


@pytest.mark.parametrize(("raw", "size"), [(None, DEFAULT_PAGE_SIZE), ("1", 1), ("100", 100), ("007", 7)])
def test_page_size(raw: str | None, size: int) -> None:
    assert parse_page_size(raw) == size


@pytest.mark.parametrize("raw", ["0", "101", "", " 5", "5 ", "+5", "1e2", "²", "9999"])
def test_page_size_outside_1_to_100_is_refused(raw: str) -> None:
    assert raised(lambda: parse_page_size(raw)) == (400, "INVALID_LIMIT")


def test_an_empty_cursor_means_the_first_page() -> None:
    assert parse_cursor(None) is None
    assert parse_cursor("") is None
    assert parse_cursor("abc") == "abc"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("01JD5Z3K8Q4WJ2V7N6M9P0R1ST", True),
        ("01jd5z3k8q4wj2v7n6m9p0r1st", False),
        ("01JD5Z3K8Q4WJ2V7N6M9P0R1S", False),
        ("01JD5Z3K8Q4WJ2V7N6M9P0R1STU", False),
        ("01JD5Z3K8Q4WJ2V7N6M9P0R1SU", False),  # U is not Crockford base32
        ("01JD5Z3K8Q4WJ2V7N6M9P0R1S\n", False),
    ],
)
def test_job_ids_are_ulids(value: str, valid: bool) -> None:
    assert is_job_id(value) is valid


def test_the_owner_is_the_sub_claim() -> None:
    assert owner_from_claims({"sub": "user-1", "aud": "x"}) == "user-1"


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": " "}, {"sub": None}, {"sub": 5}])
def test_no_usable_sub_claim_is_unauthorized(claims: dict[str, Any]) -> None:
    assert raised(lambda: owner_from_claims(claims)) == (401, "UNAUTHORIZED")


# --- upload rules -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["clip.mp4", "a", "a" * 255, "holiday é 🎬.mov", "no extension", "..clip", "👨‍👩‍👧.mp4"]
)
def test_plain_filenames_are_accepted_as_given(name: str) -> None:
    assert validate_filename(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        "a" * 256,
        "a/b",
        "a\\b",
        ".",
        "..",
        "a\x00b",
        "a\tb",
        "a\x7fb",
        "a\u2028b",
        "a\u202eb",
        "a\u2066b",
        "\ud800",
    ],
)
def test_filenames_that_could_name_a_path_or_hide_text_are_refused(name: str) -> None:
    assert raised(lambda: validate_filename(name)) == (400, "INVALID_FILENAME")


def test_content_type_is_matched_case_insensitively_and_normalised() -> None:
    allowed = frozenset({"video/mp4"})
    assert validate_content_type(" VIDEO/Mp4 ", allowed) == "video/mp4"
    assert raised(lambda: validate_content_type("video/webm", allowed)) == (415, "UNSUPPORTED_CONTENT_TYPE")
    assert raised(lambda: validate_content_type(None, allowed)) == (400, "INVALID_CONTENT_TYPE")


@pytest.mark.parametrize(("size", "outcome"), [(1, 1), (1000, 1000), (1001, (413, "UPLOAD_TOO_LARGE"))])
def test_size_is_bounded_by_the_cap(size: int, outcome: Any) -> None:
    if isinstance(outcome, tuple):
        assert raised(lambda: validate_size(size, 1000)) == outcome
    else:
        assert validate_size(size, 1000) == outcome


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("image/jpeg", MediaType.IMAGE),
        ("image/avif", MediaType.IMAGE),
        ("audio/mpeg", MediaType.AUDIO),
        ("audio/x-m4a", MediaType.AUDIO),
        ("video/mp4", MediaType.VIDEO),
        ("application/octet-stream", MediaType.VIDEO),
        ("imagex/png", MediaType.VIDEO),
        ("audiobook/mp3", MediaType.VIDEO),
    ],
)
def test_the_declared_type_names_the_kind_whose_limit_applies(content_type: str, kind: MediaType) -> None:
    assert declared_media_type(content_type) == kind


LIMITS = {MediaType.VIDEO: 1000, MediaType.IMAGE: 10, MediaType.AUDIO: 100}
ALLOWED = frozenset({"video/mp4", "image/png", "audio/mpeg"})


@pytest.mark.parametrize(("content_type", "limit"), [("video/mp4", 1000), ("image/png", 10), ("audio/mpeg", 100)])
def test_each_kind_is_bounded_by_its_own_limit(content_type: str, limit: int) -> None:
    def request(size: int) -> UploadRequest:
        payload = {"filename": "a", "contentType": content_type, "size": size}
        return validate_upload_request(payload, allowed_content_types=ALLOWED, upload_limits=LIMITS)

    assert request(limit) == UploadRequest(filename="a", contentType=content_type, size=limit)
    with pytest.raises(ApiError) as caught:
        request(limit + 1)
    kind = content_type.partition("/")[0]
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        413,
        "UPLOAD_TOO_LARGE",
        f"size must be at most {limit} bytes for {kind} uploads",
    )


def test_the_content_type_is_checked_before_the_size_it_bounds() -> None:
    payload = {"filename": "a", "contentType": "image/gif", "size": 10**9}

    with pytest.raises(ApiError) as caught:
        validate_upload_request(payload, allowed_content_types=ALLOWED, upload_limits=LIMITS)

    assert (caught.value.status, caught.value.code) == (415, "UNSUPPORTED_CONTENT_TYPE")


def test_a_valid_request_becomes_an_upload_request() -> None:
    payload = {"filename": "a.mp4", "contentType": "video/mp4", "size": 10}

    request = validate_upload_request(payload, allowed_content_types=frozenset({"video/mp4"}), upload_limits=LIMITS)

    assert request == UploadRequest(filename="a.mp4", contentType="video/mp4", size=10)


def test_unknown_fields_are_refused_before_anything_else() -> None:
    payload = {"filename": "", "contentType": "x", "size": 0, "content_type": "video/mp4"}

    with pytest.raises(ApiError) as caught:
        validate_upload_request(payload, allowed_content_types=frozenset({"video/mp4"}), upload_limits=LIMITS)

    assert (caught.value.code, caught.value.message) == (
        "UNKNOWN_FIELD",
        "unknown fields ['content_type']; allowed: filename, contentType, size",
    )


def test_the_new_job_waits_for_the_upload_until_the_form_expires_plus_grace() -> None:
    request = UploadRequest(filename="a.mp4", contentType="video/mp4", size=10)

    job = new_upload_job(request, job_id="J", owner_id="o", now_ms=1_000_500, settings=SETTINGS)

    assert job.to_item() == {
        "jobId": "J",
        "ownerId": "o",
        "status": "AWAITING_UPLOAD",
        "version": 0,
        "attempt": 1,
        "createdAt": 1_000_500,
        "updatedAt": 1_000_500,
        "mediaType": None,
        "engine": None,
        "progress": 0,
        "source": {
            "filename": "a.mp4",
            "contentType": "video/mp4",
            "size": 10,
            "bucket": "up",
            "key": "uploads/J/source",
            "etag": None,
        },
        "probe": None,
        "renditions": {},
        "error": None,
        "openJob": "OPEN",
        "deadlineAt": 1_000_500 + (600 + UPLOAD_GRACE_SECONDS) * 1000,
        "expiresAt": 1000 + 7 * 86_400,
    }


def test_the_upload_form_pins_key_type_and_size(aws_environment: None) -> None:
    # GIVEN an S3 client (signing a form is local: no request is made)
    s3 = boto3.client("s3", region_name="us-east-1")

    signer = S3Signer(
        s3,
        uploads_bucket="up-bucket",
        outputs_bucket="out-bucket",
        download_ttl_seconds=60,
        playback_links=None,  # type: ignore[arg-type]  # the upload form signs nothing through the CDN
    )

    # WHEN a form is built for a 10-byte MP4
    form = upload_form(signer, key=upload_key("J"), content_type="video/mp4", size=10, ttl_seconds=60, now_ms=1_500)

    # THEN its policy admits only that key, that type and 1..10 bytes, and expiresAt is now + ttl
    policy = json.loads(base64.b64decode(form.fields["policy"]))
    assert form.expiresAt == "1970-01-01T00:01:01Z"
    assert form.fields["key"] == "uploads/J/source"
    assert form.fields["Content-Type"] == "video/mp4"
    assert policy["conditions"][:4] == [
        {"Content-Type": "video/mp4"},
        ["content-length-range", 1, 10],
        {"bucket": "up-bucket"},
        {"key": "uploads/J/source"},
    ]


# --- job view ---------------------------------------------------------------------------------------------------


def fake_url(key: str) -> str:
    return f"signed:{key}"


def record(
    *, job_id: str = "J", status: str = "AWAITING_UPLOAD", renditions: dict[str, Any] | None = None
) -> JobRecord:
    """A job record with only what a view test needs; times at the epoch."""
    return JobRecord.model_validate(
        {
            "jobId": job_id,
            "ownerId": "o",
            "status": status,
            "version": 0,
            "createdAt": 0,
            "updatedAt": 0,
            "expiresAt": 0,
            "renditions": renditions or {},
        }
    )


def test_iso_utc_keeps_milliseconds() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1_795_000_000_123) == "2026-11-18T11:06:40.123Z"


def test_the_job_view_hides_bookkeeping_and_storage_details() -> None:
    job = job_state.new_job(
        job_id="J",
        owner_id="o",
        source=JobSource(filename="a.mp4", contentType="video/mp4", size=10, bucket="up", key="uploads/J/source"),
        now=1_000,
        upload_deadline=2_000,
        retention_seconds=60,
    )
    announced = job.model_copy(update={"outcomeAnnouncedAt": 5, "hls": ObjectLocation(bucket="b", key="k")})
    job = job_state.expire_if_overdue(announced, now=3_000)
    assert job is not None

    assert job_view(job, fake_url, unsigned_playback).model_dump(mode="json") == {
        "jobId": "J",
        "status": "EXPIRED",
        "attempt": 1,
        "mediaType": None,
        "engine": None,
        "createdAt": "1970-01-01T00:00:01.000Z",
        "updatedAt": "1970-01-01T00:00:03.000Z",
        "progress": 0,
        "source": {"filename": "a.mp4", "contentType": "video/mp4", "size": 10},
        "probe": None,
        "renditions": [],
        "image": None,
        "playback": None,
        "error": {"code": "UPLOAD_EXPIRED", "message": "no upload arrived before the upload form expired"},
        "webhookFailures": [],
        "deletionRequestedAt": None,
    }


def test_webhook_failures_read_as_a_list_oldest_first_without_their_webhook_id() -> None:
    job = record(status="COMPLETED")
    for endpoint_id, status_code, error, now in (
        ("ep_B", 500, "http_500", 2_000),
        ("ep_C", None, "timed out after 15 s", 1_000),  # noted before errors were codes: shown as its code
        ("ep_A", 503, "http_503", 2_000),
    ):
        failure = job_state.WebhookFailure(
            owner_id="o",
            endpoint_id=endpoint_id,
            event_type="job.completed",
            webhook_id="msg_J_completed",
            attempts=8,
            status_code=status_code,
            error=error,
        )
        changed = job_state.note_webhook_failure(job, failure, now=now)
        assert changed is not None
        job = changed

    assert job_view(job, fake_url, unsigned_playback).model_dump(mode="json")["webhookFailures"] == [
        {
            "endpointId": "ep_C",
            "eventType": "job.completed",
            "attempts": 8,
            "statusCode": None,
            "error": "timeout",
            "failedAt": "1970-01-01T00:00:01.000Z",
        },
        {
            "endpointId": "ep_A",
            "eventType": "job.completed",
            "attempts": 8,
            "statusCode": 503,
            "error": "http_503",
            "failedAt": "1970-01-01T00:00:02.000Z",
        },
        {
            "endpointId": "ep_B",
            "eventType": "job.completed",
            "attempts": 8,
            "statusCode": 500,
            "error": "http_500",
            "failedAt": "1970-01-01T00:00:02.000Z",
        },
    ]


def test_renditions_follow_their_order_not_their_name_or_storage_order() -> None:
    renditions = {
        name: {"name": name, "status": "QUEUED", "order": order}
        for name, order in (("1080p", 2), ("480p", 0), ("720p", 1))
    }
    job = record(status="PROCESSING", renditions=renditions)

    assert [r.name for r in job_view(job, fake_url, unsigned_playback).renditions] == ["480p", "720p", "1080p"]


@pytest.mark.parametrize(
    ("status", "url"),
    [("COMPLETED", "signed:outputs/J/720p.mp4"), ("PROCESSING", None), ("FAILED", None), ("QUEUED", None)],
)
def test_only_a_completed_rendition_links_to_its_output(status: str, url: str | None) -> None:
    rendition = RenditionRecord(name="720p", status=status, order=0, bucket="out", key="outputs/J/720p.mp4")

    assert rendition_view(rendition, fake_url).url == url


def test_a_failed_rendition_shows_its_error_and_nothing_internal() -> None:
    rendition = RenditionRecord.model_validate(
        {
            "name": "720p",
            "status": "FAILED",
            "order": 0,
            "progress": 40,
            "width": 1280,
            "height": 720,
            "bucket": "out",
            "key": "outputs/J/720p.mp4",
            "engine": "lambda",
            "error": {"code": "TRANSCODE_FAILED", "message": "ffmpeg exited 1"},
        }
    )

    assert rendition_view(rendition, fake_url).model_dump(mode="json") == {
        "name": "720p",
        "status": "FAILED",
        "progress": 40,
        "width": 1280,
        "height": 720,
        "durationMs": None,
        "bytes": None,
        "contentType": None,
        "url": None,
        "error": {"code": "TRANSCODE_FAILED", "message": "ffmpeg exited 1"},
        "reason": None,
    }


def test_a_page_view_keeps_the_table_order_and_the_cursor() -> None:
    jobs = [record(job_id=job_id) for job_id in ("B", "A")]

    page = job_page(jobs, "next", fake_url, unsigned_playback)

    assert [job.jobId for job in page.jobs] == ["B", "A"]
    assert page.nextCursor == "next"


# --- webhook endpoints ------------------------------------------------------------------------------------------


class LosingEndpoints:
    """One endpoint of owner `o`, whose every rotation loses to one made meanwhile."""

    def __init__(self) -> None:
        self.endpoint = new_endpoint(
            endpoint_id="ep_01JD5Z3K8Q4WJ2V7N6M9P0R1ST",
            owner_id="o",
            url="https://hooks.example.com/",
            events=["job.completed"],
            secret="whsec_old",
            now_ms=0,
        )

    def get(self, owner_id: str, endpoint_id: str) -> Endpoint | None:
        return self.endpoint if (owner_id, endpoint_id) == ("o", self.endpoint["endpointId"]) else None

    def rotate_secret(self, before: Endpoint, after: Endpoint) -> bool:
        return False


def test_a_rotation_that_loses_to_a_concurrent_one_is_a_conflict_to_retry() -> None:
    endpoints = LosingEndpoints()
    service = Webhooks(endpoints=endpoints, deliveries=None, urls=None, secret_overlap_seconds=60)

    assert raised(lambda: service.rotate_secret("o", endpoints.endpoint["endpointId"], now_ms=1)) == (
        409,
        "CONCURRENT_CHANGE",
    )
    assert raised(lambda: service.rotate_secret("p", endpoints.endpoint["endpointId"], now_ms=1)) == (
        404,
        "WEBHOOK_NOT_FOUND",
    )
