"""The api function's ports over AWS and DNS: presigned S3 requests, the jobs and webhook tables, the SSRF check.

Each maps what its library raises to what the service expects: a missing item is None (or False), a cursor the
table refuses is the service's `invalid_cursor()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from functions.api.service import (
    ApiError,
    QuotaUse,
    UsageView,
    concurrent_change,
    invalid_cursor,
    quota_exceeded,
)
from functions.common.download_links import DownloadLinks
from functions.common.job_state import Transition
from functions.common.jobs_table import ConcurrentUpdate, InvalidCursor, JobNotFound, JobsTable
from functions.common.playback_links import PlaybackLinks, SignedPlayback
from functions.common.quotas import LargerThanQuota, QuotaExceeded, QuotaLimits, Usage, admit, release
from functions.common.ssrf import AddressPolicy, UrlRefused, check_url
from functions.common.usage_table import UsageBusy, UsageTable
from functions.common.webhook_tables import (
    EndpointNotFound,
    EndpointsBusy,
    EndpointsTable,
    SecretChangedConcurrently,
    TooManyEndpoints,
)
from functions.contracts.jobs import JobRecord, RerunMessage
from functions.contracts.webhooks import Endpoint


class S3Signer:
    """Presigned requests: POST forms into the uploads bucket, GET links into the outputs bucket; CDN links to a job's
    playback package."""

    def __init__(
        self,
        s3: Any,
        *,
        uploads_bucket: str,
        outputs_bucket: str,
        download_ttl_seconds: int,
        playback_links: PlaybackLinks,
    ) -> None:
        self._s3 = s3
        self._uploads_bucket = uploads_bucket
        self._downloads = DownloadLinks(outputs_bucket, download_ttl_seconds, s3)
        self._playback = playback_links

    def presigned_post(self, *, key: str, content_type: str, size: int, ttl_seconds: int) -> tuple[str, dict[str, str]]:
        form = self._s3.generate_presigned_post(
            Bucket=self._uploads_bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, size]],
            ExpiresIn=ttl_seconds,
        )
        return form["url"], form["fields"]

    def download_url(self, key: str) -> str:
        return self._downloads.url(key)

    def sign_playback(self, job_id: str, keys: Mapping[str, str]) -> SignedPlayback:
        return self._playback.signed(job_id, keys)


class DynamoJobs:
    """The jobs table."""

    def __init__(self, table: JobsTable) -> None:
        self._table = table

    def create(self, job: JobRecord) -> None:
        self._table.create(job)

    def get(self, job_id: str) -> JobRecord | None:
        try:
            return self._table.get(job_id)
        except JobNotFound:
            return None

    def change(self, job_id: str, transition: Transition) -> tuple[JobRecord, JobRecord] | None:
        try:
            return self._table.change(job_id, transition)
        except JobNotFound:
            return None
        except ConcurrentUpdate as err:
            raise concurrent_change("the job") from err

    def page_for_owner(self, owner_id: str, *, limit: int, cursor: str | None) -> tuple[list[JobRecord], str | None]:
        try:
            return self._table.list_for_owner(owner_id, limit=limit, cursor=cursor)
        except InvalidCursor as err:
            raise invalid_cursor() from err


class SqsReruns:
    """The ingest queue, as the api sends it a re-run request."""

    def __init__(self, queue_url: str, sqs_client: Any) -> None:
        self._queue_url = queue_url
        self._sqs = sqs_client

    def send(self, message: RerunMessage) -> None:
        self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=message.model_dump_json())


def usage_from_record(record: Mapping[str, Any] | None) -> Usage:
    if record is None:
        return Usage()
    return Usage(
        open_uploads=tuple(int(expiry) for expiry in record.get("openUploads", [])),
        hour_start=int(record.get("hourStart", 0)),
        jobs_this_hour=int(record.get("jobsThisHour", 0)),
        stored_by_day={int(day): int(size) for day, size in record.get("storedByDay", {}).items()},
        version=int(record["version"]),
    )


def usage_record(owner_id: str, usage: Usage, *, version: int, retention_ms: int) -> dict[str, Any]:
    return {
        "ownerId": owner_id,
        "version": version,
        "openUploads": list(usage.open_uploads),
        "hourStart": usage.hour_start,
        "jobsThisHour": usage.jobs_this_hour,
        "storedByDay": {str(day): size for day, size in usage.stored_by_day.items()},
        "expiresAt": usage.expires_at_ms(retention_ms) // 1000 + 1,
    }


class DynamoUsage:
    """The usage table: jobs created under the owner's quotas, and the owner's usage."""

    def __init__(self, table: UsageTable, limits: QuotaLimits, *, retention_seconds: int) -> None:
        self._table = table
        self._limits = limits
        self._retention_ms = retention_seconds * 1000

    def create_within_quota(self, job: JobRecord, *, form_expires_ms: int, now_ms: int) -> None:
        def next_usage(record: dict[str, Any] | None) -> dict[str, Any]:
            before = usage_from_record(record)
            after = admit(
                before,
                size=job.source.size or 0,
                now_ms=now_ms,
                form_expires_ms=form_expires_ms,
                retention_ms=self._retention_ms,
                limits=self._limits,
            )
            return usage_record(job.ownerId, after, version=before.version + 1, retention_ms=self._retention_ms)

        try:
            self._table.create_job(job, next_usage)
        except QuotaExceeded as err:
            raise quota_exceeded(err.message, err.retry_after_seconds) from err
        except LargerThanQuota as err:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "UPLOAD_TOO_LARGE", err.message) from err
        except UsageBusy as err:
            raise concurrent_change("your usage") from err

    def release(self, job: JobRecord) -> None:
        """A deleted job's declared bytes no longer count towards the owner's stored bytes."""

        def next_usage(record: dict[str, Any]) -> dict[str, Any] | None:
            before = usage_from_record(record)
            after = release(before, size=job.source.size or 0, created_ms=job.createdAt)
            if after is None:
                return None
            return usage_record(job.ownerId, after, version=before.version + 1, retention_ms=self._retention_ms)

        try:
            self._table.update(job.ownerId, next_usage)
        except UsageBusy as err:
            raise concurrent_change("your usage") from err

    def usage(self, owner_id: str, *, now_ms: int) -> UsageView:
        usage = usage_from_record(self._table.get(owner_id)).current(now_ms, self._retention_ms)
        return UsageView(
            openUploads=QuotaUse(used=len(usage.open_uploads), limit=self._limits.open_uploads),
            jobsThisHour=QuotaUse(used=usage.jobs_this_hour, limit=self._limits.jobs_per_hour),
            storedBytes=QuotaUse(used=usage.stored_bytes, limit=self._limits.stored_bytes),
        )


class DynamoEndpoints:
    """The webhook endpoints table."""

    def __init__(self, table: EndpointsTable) -> None:
        self._table = table

    def create(self, endpoint: Endpoint, *, limit: int) -> bool:
        try:
            self._table.create(endpoint, limit=limit)
        except TooManyEndpoints:
            return False
        except EndpointsBusy as err:
            raise concurrent_change("the account's webhooks") from err
        return True

    def get(self, owner_id: str, endpoint_id: str) -> Endpoint | None:
        try:
            return self._table.get(owner_id, endpoint_id)
        except EndpointNotFound:
            return None

    def list_for_owner(self, owner_id: str) -> list[Endpoint]:
        return self._table.list_for_owner(owner_id)

    def delete(self, owner_id: str, endpoint_id: str) -> bool:
        try:
            self._table.delete(owner_id, endpoint_id)
        except EndpointNotFound:
            return False
        except EndpointsBusy as err:
            raise concurrent_change("the account's webhooks") from err
        return True

    def rotate_secret(self, before: Endpoint, after: Endpoint) -> bool:
        try:
            self._table.rotate_secret(before, after)
        except SecretChangedConcurrently:
            return False
        return True


class ResolvingUrlPolicy:
    """The SSRF policy, resolving the URL's host (the system resolver unless the policy names another)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy

    def refusal(self, url: str) -> str | None:
        try:
            check_url(url, self._policy)
        except UrlRefused as err:
            return str(err)
        return None
