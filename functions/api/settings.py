"""The api function's configuration, read from the environment once per cold start (docs/CONTRACTS.md).

Every problem is reported at once, naming the variable, so a misconfigured deployment fails with one clear
message instead of a 500 per request for whichever setting happens to be read first. The webhook routes read
their own variables only when one of them is first called: the job routes never depend on them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from functions.common.quotas import QuotaLimits
from functions.common.settings import EnvironmentReader
from functions.common.ssrf import IPNetwork, parse_allowed_addresses, parse_allowed_ports_env
from functions.contracts.media import MediaType

# S3 refuses a POST upload larger than 5 GiB, so a larger cap could never be honoured.
S3_POST_MAX_BYTES = 5 * 1024**3
# SigV4 presigned requests are valid for at most seven days.
PRESIGN_MAX_SECONDS = 7 * 24 * 3600
# An upload that starts just before its form expires still needs time to finish and reach ingest
# through S3 notifications and SQS; the job's upload deadline leaves this much room before the sweep expires it.
UPLOAD_GRACE_SECONDS = 15 * 60
MAX_RETENTION_DAYS = 3650
MAX_SECRET_OVERLAP_SECONDS = 30 * 86_400
# The open uploads are listed in the owner's usage record (one number each), which must stay far below DynamoDB's
# 400 KB item limit.
MAX_QUOTA_COUNT = 10_000
MAX_QUOTA_BYTES = 2**60

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


@dataclass(frozen=True)
class ApiSettings:
    """What the job routes need from the environment."""

    jobs_table_name: str
    """DynamoDB table holding job records (`JOBS_TABLE_NAME`)."""
    uploads_bucket: str
    """Bucket the presigned POST uploads into (`UPLOADS_BUCKET`)."""
    outputs_bucket: str
    """Bucket renditions are downloaded from (`OUTPUTS_BUCKET`)."""
    max_upload_bytes: int
    """Largest video upload the form allows (`MAX_UPLOAD_BYTES`): a declared type that is neither `image/` nor
    `audio/`."""
    max_image_upload_bytes: int
    """Largest upload the form allows for a declared `image/*` type (`MAX_IMAGE_UPLOAD_BYTES`)."""
    max_audio_upload_bytes: int
    """Largest upload the form allows for a declared `audio/*` type (`MAX_AUDIO_UPLOAD_BYTES`)."""
    allowed_content_types: frozenset[str]
    """Media types a client may declare, lower case (`ALLOWED_CONTENT_TYPES`, comma list)."""
    upload_url_ttl_seconds: int
    """How long the upload form stays valid (`UPLOAD_URL_TTL_SECONDS`)."""
    download_url_ttl_seconds: int
    """How long a rendition's download link stays valid (`DOWNLOAD_URL_TTL_SECONDS`)."""
    job_retention_days: int
    """Days a job record lives before DynamoDB's TTL removes it (`JOB_RETENTION_DAYS`)."""

    @property
    def upload_limits(self) -> dict[MediaType, int]:
        """The largest upload of each kind, by the kind a declared content type names."""
        return {
            MediaType.VIDEO: self.max_upload_bytes,
            MediaType.IMAGE: self.max_image_upload_bytes,
            MediaType.AUDIO: self.max_audio_upload_bytes,
        }

    @property
    def retention_seconds(self) -> int:
        return self.job_retention_days * 24 * 3600

    @property
    def upload_deadline_seconds(self) -> int:
        """From job creation to the moment the sweep may expire a job whose upload never arrived."""
        return self.upload_url_ttl_seconds + UPLOAD_GRACE_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """The settings; raises SettingsError naming every missing or invalid variable."""
        read = EnvironmentReader(environ)
        settings = cls(
            jobs_table_name=read.text("JOBS_TABLE_NAME"),
            uploads_bucket=read.text("UPLOADS_BUCKET"),
            outputs_bucket=read.text("OUTPUTS_BUCKET"),
            max_upload_bytes=_required_integer(read, "MAX_UPLOAD_BYTES", 1, S3_POST_MAX_BYTES),
            max_image_upload_bytes=_required_integer(read, "MAX_IMAGE_UPLOAD_BYTES", 1, S3_POST_MAX_BYTES),
            max_audio_upload_bytes=_required_integer(read, "MAX_AUDIO_UPLOAD_BYTES", 1, S3_POST_MAX_BYTES),
            allowed_content_types=_media_types(read, "ALLOWED_CONTENT_TYPES"),
            upload_url_ttl_seconds=_required_integer(read, "UPLOAD_URL_TTL_SECONDS", 1, PRESIGN_MAX_SECONDS),
            download_url_ttl_seconds=_required_integer(read, "DOWNLOAD_URL_TTL_SECONDS", 1, PRESIGN_MAX_SECONDS),
            job_retention_days=_required_integer(read, "JOB_RETENTION_DAYS", 1, MAX_RETENTION_DAYS),
        )
        read.done("api function")
        return settings


@dataclass(frozen=True)
class QuotaSettings:
    """The per-user quotas of POST /uploads and GET /usage (docs/CONTRACTS.md); 0 for a limit means none."""

    usage_table_name: str
    """DynamoDB table of per-owner usage records (`USAGE_TABLE_NAME`)."""
    max_open_uploads_per_user: int
    """Upload forms a user may hold open at once (`MAX_OPEN_UPLOADS_PER_USER`)."""
    max_jobs_per_user_per_hour: int
    """Jobs a user may create per clock hour (`MAX_JOBS_PER_USER_PER_HOUR`)."""
    max_stored_bytes_per_user: int
    """Declared upload bytes of a user's retained jobs (`MAX_STORED_BYTES_PER_USER`)."""

    @property
    def limits(self) -> QuotaLimits:
        return QuotaLimits(
            open_uploads=self.max_open_uploads_per_user,
            jobs_per_hour=self.max_jobs_per_user_per_hour,
            stored_bytes=self.max_stored_bytes_per_user,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QuotaSettings:
        """The settings; raises SettingsError naming every missing or invalid variable."""
        read = EnvironmentReader(environ)
        settings = cls(
            usage_table_name=read.text("USAGE_TABLE_NAME"),
            max_open_uploads_per_user=_required_integer(read, "MAX_OPEN_UPLOADS_PER_USER", 0, MAX_QUOTA_COUNT),
            max_jobs_per_user_per_hour=_required_integer(read, "MAX_JOBS_PER_USER_PER_HOUR", 0, MAX_QUOTA_COUNT),
            max_stored_bytes_per_user=_required_integer(read, "MAX_STORED_BYTES_PER_USER", 0, MAX_QUOTA_BYTES),
        )
        read.done("api quotas")
        return settings


@dataclass(frozen=True)
class JobControlSettings:
    """What deleting, retrying and reprocessing a job need."""

    event_bus_name: str
    """The custom bus `Job Canceled` and `Job Deletion Requested` go on (`EVENT_BUS_NAME`)."""
    rerun_queue_url: str
    """The ingest queue, which plans a re-run (`RERUN_QUEUE_URL`)."""
    processing_deadline_seconds: int
    """A re-run's deadline from the moment it is asked for (`PROCESSING_DEADLINE_SECONDS`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobControlSettings:
        """The settings; raises SettingsError naming every missing or invalid variable."""
        read = EnvironmentReader(environ)
        settings = cls(
            event_bus_name=read.text("EVENT_BUS_NAME"),
            rerun_queue_url=read.text("RERUN_QUEUE_URL"),
            processing_deadline_seconds=_required_integer(read, "PROCESSING_DEADLINE_SECONDS", 1, 7 * 86_400),
        )
        read.done("job management")
        return settings


@dataclass(frozen=True)
class WebhookSettings:
    """What the webhook routes need to manage endpoints."""

    endpoints_table: str
    """Endpoints table (`WEBHOOK_ENDPOINTS_TABLE`)."""
    deliveries_table: str
    """Delivery log table (`WEBHOOK_DELIVERIES_TABLE`)."""
    secret_overlap_seconds: int
    """How long a rotated-out secret keeps signing (`WEBHOOK_SECRET_OVERLAP_SECONDS`)."""
    allowed_networks: tuple[IPNetwork, ...]
    """Addresses the SSRF policy admits anyway (`WEBHOOK_ALLOWED_ADDRESSES`, optional, local clouds only)."""
    allowed_ports: frozenset[int]
    """The only ports webhook URLs may use (`WEBHOOK_ALLOWED_PORTS`, optional; empty: 80, 443 and 1024-65535 but
    well-known service ports)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        """The settings; raises SettingsError naming every missing or invalid variable."""
        read = EnvironmentReader(environ)
        settings = cls(
            endpoints_table=read.text("WEBHOOK_ENDPOINTS_TABLE"),
            deliveries_table=read.text("WEBHOOK_DELIVERIES_TABLE"),
            secret_overlap_seconds=read.integer("WEBHOOK_SECRET_OVERLAP_SECONDS", 0, MAX_SECRET_OVERLAP_SECONDS),
            allowed_networks=read.parsed("WEBHOOK_ALLOWED_ADDRESSES", parse_allowed_addresses, ()),
            allowed_ports=read.parsed("WEBHOOK_ALLOWED_PORTS", parse_allowed_ports_env, frozenset()),
        )
        read.done("webhook endpoints")
        return settings


def _required_integer(read: EnvironmentReader, name: str, low: int, high: int) -> int:
    """A whole number from `low` to `high`; an unset one is named as missing rather than as malformed."""
    if not read.raw(name):
        read.problem(f"{name} is required")
        return low
    return read.integer(name, low, high)


def _media_types(read: EnvironmentReader, name: str) -> frozenset[str]:
    """A comma list of media types, lower case."""
    items = [item.strip().lower() for item in read.raw(name).split(",") if item.strip()]
    if not items:
        read.problem(f"{name} is required: a comma-separated list of media types such as video/mp4")
    malformed = [item for item in items if not _MEDIA_TYPE.fullmatch(item)]
    if malformed:
        read.problem(f"{name} holds entries that are not media types: {malformed}")
    return frozenset(items)
