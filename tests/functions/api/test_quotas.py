"""Per-user quotas (issue 12, weakness 4): open uploads, jobs per hour and stored bytes, held atomically in DynamoDB.

The attack first: one user firing 200 POST /uploads at once used to get 200 open upload forms.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from functions.api import handler as api
from functions.api.adapters import DynamoJobs, DynamoUsage, S3Signer
from functions.api.service import ApiError, Jobs, UploadRequest
from functions.api.settings import ApiSettings, QuotaSettings
from functions.common.clients import presigning_s3_client
from functions.common.jobs_table import OWNER_INDEX, JobsTable
from functions.common.playback_links import PlaybackLinks
from functions.common.quotas import DAY_MS, HOUR_MS, QuotaExceeded, QuotaLimits, Usage, admit, release
from functions.common.settings import SettingsError
from functions.common.usage_table import UsageTable
from local.engine.moto_patches import serialize_dynamodb_requests
from tests.functions.api import test_jobs
from tests.functions.api.conftest import ALICE, BOB, call, error, http_event
from tests.functions.api.test_jobs import API_ENV, upload_body

# The job routes' fixtures: a frozen clock, the environment, moto's tables and buckets.
frozen_now = test_jobs.frozen_now
api_env = test_jobs.api_env
usage_table = test_jobs.usage_table
app = test_jobs.app

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
FORM_TTL_SECONDS = int(API_ENV["UPLOAD_URL_TTL_SECONDS"])


def limit(monkeypatch: pytest.MonkeyPatch, **variables: int) -> None:
    """Set quota variables for this test's api function."""
    for name, value in variables.items():
        monkeypatch.setenv(name, str(value))
    api.jobs_service.cache_clear()


def owner_jobs(owner: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table("jobs")
    return table.query(IndexName=OWNER_INDEX, KeyConditionExpression=Key("ownerId").eq(owner))["Items"]


def create(lambda_context: Any, *, sub: str = ALICE, size: int = 12345) -> dict[str, Any]:
    return call(http_event("POST", "/uploads", sub=sub, body=upload_body(size=size)), lambda_context)


def usage(lambda_context: Any, sub: str = ALICE) -> dict[str, Any]:
    response = call(http_event("GET", "/usage", sub=sub), lambda_context)
    assert response["statusCode"] == 200, response
    return response["body"]


def _upload_concurrently(owner: str, count: int, now_ms: int) -> list[tuple[str, str]]:
    """`count` POST /uploads of one owner at once, each served as its own Lambda instance would (own clients);
    each one's outcome: ("created", jobId) or (status code, "CODE Retry-After")."""
    settings, quotas = ApiSettings.from_env(), QuotaSettings.from_env()
    request = UploadRequest(filename="clip.mp4", contentType="video/mp4", size=12345)
    start = threading.Barrier(count)

    def one(index: int) -> tuple[str, str]:
        dynamodb = boto3.resource("dynamodb")
        signer = S3Signer(
            presigning_s3_client(),
            uploads_bucket=settings.uploads_bucket,
            outputs_bucket=settings.outputs_bucket,
            download_ttl_seconds=settings.download_url_ttl_seconds,
            playback_links=PlaybackLinks.from_env(),
        )
        usage_store = DynamoUsage(
            UsageTable(quotas.usage_table_name, settings.jobs_table_name, dynamodb),
            quotas.limits,
            retention_seconds=settings.retention_seconds,
        )
        service = Jobs(settings, DynamoJobs(JobsTable(settings.jobs_table_name, dynamodb)), signer, usage_store)
        job_id = f"01JD5Z3K8Q4WJ2V7N6M9P{index:05d}"
        start.wait()
        try:
            created = service.create_upload(owner, request, job_id=job_id, now_ms=now_ms)
        except ApiError as refused:
            return (str(int(refused.status)), f"{refused.code} {refused.headers.get('Retry-After')}")
        return ("created", created.jobId)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_two_hundred_concurrent_uploads_by_one_user_get_exactly_the_open_upload_limit(
    app: Any, lambda_context: Any, frozen_now: int
) -> None:
    # GIVEN the moto backend applies each request atomically, as DynamoDB does (the local cloud's correction)
    serialize_dynamodb_requests()

    # WHEN alice fires 200 upload requests at once (the attack: 200 open 2 GiB forms)
    outcomes = _upload_concurrently(ALICE, 200, frozen_now)

    # THEN exactly 20 (the limit) get a form, and the 180 others 429 QUOTA_EXCEEDED with Retry-After: when the oldest
    # form expires
    created = sorted(value for kind, value in outcomes if kind == "created")
    refused = sorted({f"{kind} {value}" for kind, value in outcomes if kind != "created"})
    assert (len(created), refused) == (20, [f"429 QUOTA_EXCEEDED {FORM_TTL_SECONDS}"])
    # AND the table holds exactly those 20 jobs, and GET /usage says so
    assert sorted(item["jobId"] for item in owner_jobs(ALICE)) == created
    assert usage(lambda_context)["openUploads"] == {"used": 20, "limit": 20}
    # AND another user is not affected
    assert create(lambda_context, sub=BOB)["statusCode"] == 201


def test_the_open_upload_limit_refuses_with_retry_after_and_changes_nothing(
    app: Any, lambda_context: Any, frozen_now: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a limit of 2 open uploads, both used
    limit(monkeypatch, MAX_OPEN_UPLOADS_PER_USER=2)
    assert [create(lambda_context)["statusCode"] for _ in range(2)] == [201, 201]
    record = boto3.resource("dynamodb").Table("usage").get_item(Key={"ownerId": ALICE})["Item"]

    # WHEN alice asks for a third
    refused = create(lambda_context)

    # THEN it is 429 with when the oldest form expires, in plain words, and nothing was written
    assert refused == error(
        429,
        "QUOTA_EXCEEDED",
        f"open uploads: you have 2 upload forms open and the limit is 2; the oldest expires in {FORM_TTL_SECONDS} s",
        headers={"Retry-After": str(FORM_TTL_SECONDS)},
    )
    assert len(owner_jobs(ALICE)) == 2
    assert boto3.resource("dynamodb").Table("usage").get_item(Key={"ownerId": ALICE})["Item"] == record

    # AND once the forms have expired, uploads are issued again
    monkeypatch.setattr(api, "now_ms", lambda: frozen_now + FORM_TTL_SECONDS * 1000)
    assert create(lambda_context)["statusCode"] == 201
    assert usage(lambda_context)["openUploads"] == {"used": 1, "limit": 2}


def test_the_jobs_per_hour_limit_holds_until_the_next_hour(
    app: Any, lambda_context: Any, frozen_now: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 3 jobs an hour, open uploads unlimited, and alice has made 3 this hour
    limit(monkeypatch, MAX_OPEN_UPLOADS_PER_USER=0, MAX_JOBS_PER_USER_PER_HOUR=3)
    assert [create(lambda_context)["statusCode"] for _ in range(3)] == [201, 201, 201]

    # THEN a fourth is refused until the next hour starts
    next_hour = frozen_now - frozen_now % HOUR_MS + HOUR_MS
    wait = -(-(next_hour - frozen_now) // 1000)
    assert create(lambda_context) == error(
        429,
        "QUOTA_EXCEEDED",
        f"jobs per hour: you created 3 jobs this hour and the limit is 3; the next hour starts in {wait} s",
        headers={"Retry-After": str(wait)},
    )
    assert usage(lambda_context) == {
        "openUploads": {"used": 0, "limit": 0},
        "jobsThisHour": {"used": 3, "limit": 3},
        "storedBytes": {"used": 3 * 12345, "limit": 50 * 1024**3},
    }
    monkeypatch.setattr(api, "now_ms", lambda: next_hour)
    assert create(lambda_context)["statusCode"] == 201
    assert usage(lambda_context)["jobsThisHour"] == {"used": 1, "limit": 3}


def test_the_stored_bytes_limit_counts_declared_sizes(
    app: Any, lambda_context: Any, frozen_now: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 30000 bytes per user, of which alice's two jobs declared 24690
    limit(monkeypatch, MAX_STORED_BYTES_PER_USER=30_000)
    assert [create(lambda_context)["statusCode"] for _ in range(2)] == [201, 201]

    # THEN a 12345-byte upload is refused, a 5000-byte one is not, and bob is not affected
    refused = create(lambda_context)
    assert refused["statusCode"] == 429
    assert refused["body"]["error"] == {
        "code": "QUOTA_EXCEEDED",
        "message": "stored bytes: your jobs hold 24690 bytes, this upload would add 12345 and the limit is 30000",
    }
    assert int(refused["headers"]["Retry-After"]) > 30 * 86_400  # the day's jobs leave the 30-day retention
    assert create(lambda_context, size=5000)["statusCode"] == 201
    assert usage(lambda_context)["storedBytes"] == {"used": 29690, "limit": 30_000}
    # AND an upload that could never fit is no 429 to wait for
    assert create(lambda_context, size=30_001) == error(
        413, "UPLOAD_TOO_LARGE", "size must be at most your stored-bytes limit of 30000 bytes"
    )
    assert create(lambda_context, sub=BOB)["statusCode"] == 201


def test_usage_of_a_user_with_no_jobs_is_zero(app: Any, lambda_context: Any) -> None:
    assert usage(lambda_context, sub="user-new") == {
        "openUploads": {"used": 0, "limit": 20},
        "jobsThisHour": {"used": 0, "limit": 100},
        "storedBytes": {"used": 0, "limit": 50 * 1024**3},
    }


# --- the rule, without AWS ------------------------------------------------------------------------------------------

LIMITS = QuotaLimits(open_uploads=2, jobs_per_hour=10, stored_bytes=100)
NOW = 1_800_000_000_000
RETENTION = 2 * DAY_MS


def test_admit_drops_expired_forms_past_hours_and_days_beyond_the_retention() -> None:
    old = Usage(
        open_uploads=(NOW - 1, NOW + 5000),
        hour_start=NOW - NOW % HOUR_MS - HOUR_MS,
        jobs_this_hour=10,
        stored_by_day={NOW - NOW % DAY_MS - 3 * DAY_MS: 90, NOW - NOW % DAY_MS: 5},
        version=7,
    )
    after = admit(old, size=10, now_ms=NOW, form_expires_ms=NOW + 9000, retention_ms=RETENTION, limits=LIMITS)
    assert after == Usage(
        open_uploads=(NOW + 5000, NOW + 9000),
        hour_start=NOW - NOW % HOUR_MS,
        jobs_this_hour=1,
        stored_by_day={NOW - NOW % DAY_MS: 15},
        version=7,
    )


def test_a_stored_bytes_refusal_waits_for_enough_days_to_leave_the_retention() -> None:
    day = NOW - NOW % DAY_MS
    full = Usage(stored_by_day={day - DAY_MS: 40, day: 50}, hour_start=NOW - NOW % HOUR_MS)
    with pytest.raises(QuotaExceeded) as refused:
        admit(full, size=50, now_ms=NOW, form_expires_ms=NOW, retention_ms=RETENTION, limits=LIMITS)
    # yesterday's 40 bytes must go (then 50 + 50 fits): when yesterday's jobs are past the retention
    assert refused.value.retry_after_seconds == (day - DAY_MS + DAY_MS + RETENTION - NOW) // 1000


# --- settings -------------------------------------------------------------------------------------------------------

QUOTA_ENV = {
    "USAGE_TABLE_NAME": "usage",
    "MAX_OPEN_UPLOADS_PER_USER": "20",
    "MAX_JOBS_PER_USER_PER_HOUR": "0",
    "MAX_STORED_BYTES_PER_USER": "1000",
}


def test_quota_settings_read_every_variable() -> None:
    assert QuotaSettings.from_env(QUOTA_ENV).limits == QuotaLimits(open_uploads=20, jobs_per_hour=0, stored_bytes=1000)


def test_quota_settings_name_every_problem_at_once() -> None:
    env = {**QUOTA_ENV, "MAX_OPEN_UPLOADS_PER_USER": "-1", "MAX_STORED_BYTES_PER_USER": "lots"}
    del env["USAGE_TABLE_NAME"]
    with pytest.raises(SettingsError) as failed:
        QuotaSettings.from_env(env)
    for name in ("USAGE_TABLE_NAME", "MAX_OPEN_UPLOADS_PER_USER", "MAX_STORED_BYTES_PER_USER"):
        assert name in str(failed.value)
    with pytest.raises(SettingsError, match="MAX_JOBS_PER_USER_PER_HOUR is required"):
        QuotaSettings.from_env({k: v for k, v in QUOTA_ENV.items() if k != "MAX_JOBS_PER_USER_PER_HOUR"})


def test_a_deleted_jobs_bytes_leave_the_day_it_was_created_on() -> None:
    day = 20_000 * DAY_MS
    usage = Usage(stored_by_day={day: 700, day + DAY_MS: 50}, version=3)

    freed = release(usage, size=300, created_ms=day + 5_000)

    assert freed is not None and freed.stored_by_day == {day: 400, day + DAY_MS: 50}
    assert release(usage, size=900, created_ms=day).stored_by_day[day] == 0  # never below nothing
    assert release(usage, size=300, created_ms=day - DAY_MS) is None  # that day no longer counts
    assert release(usage, size=0, created_ms=day) is None
