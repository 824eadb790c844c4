"""The API function's configuration, read from the environment once per cold start.

Every problem is reported at once, naming the variable, so a misconfigured deployment fails with one clear
message instead of a 500 per request for whichever setting happens to be read first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# S3 refuses a POST upload larger than 5 GiB, so a larger cap could never be honoured.
S3_POST_MAX_BYTES = 5 * 1024**3
# SigV4 presigned requests are valid for at most seven days.
PRESIGN_MAX_SECONDS = 7 * 24 * 3600
# An upload that starts just before its form expires still needs time to finish and reach ingest
# through S3 notifications and SQS; the job's upload deadline leaves this much room before the sweep expires it.
UPLOAD_GRACE_SECONDS = 15 * 60

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


class SettingsError(RuntimeError):
    """The environment does not describe a usable API; the message lists every problem."""


@dataclass(frozen=True)
class ApiSettings:
    """What the API function needs from its environment."""

    jobs_table_name: str
    """DynamoDB table holding job records (`JOBS_TABLE_NAME`)."""
    uploads_bucket: str
    """Bucket the presigned POST uploads into (`UPLOADS_BUCKET`)."""
    outputs_bucket: str
    """Bucket renditions are downloaded from (`OUTPUTS_BUCKET`)."""
    max_upload_bytes: int
    """Largest upload the form allows (`MAX_UPLOAD_BYTES`)."""
    allowed_content_types: frozenset[str]
    """Media types a client may declare, lower case (`ALLOWED_CONTENT_TYPES`, comma list)."""
    upload_url_ttl_seconds: int
    """How long the upload form stays valid (`UPLOAD_URL_TTL_SECONDS`)."""
    download_url_ttl_seconds: int
    """How long a rendition's download link stays valid (`DOWNLOAD_URL_TTL_SECONDS`)."""
    job_retention_days: int
    """Days a job record lives before DynamoDB's TTL removes it (`JOB_RETENTION_DAYS`)."""

    @property
    def retention_seconds(self) -> int:
        return self.job_retention_days * 24 * 3600

    @property
    def upload_deadline_seconds(self) -> int:
        """From job creation to the moment the sweep may expire a job whose upload never arrived."""
        return self.upload_url_ttl_seconds + UPLOAD_GRACE_SECONDS


def load_settings(env: Mapping[str, str]) -> ApiSettings:
    """Settings from an environment mapping; raises SettingsError naming every missing or invalid variable."""
    problems: list[str] = []

    def text(name: str) -> str:
        value = env.get(name, "").strip()
        if not value:
            problems.append(f"{name} is required")
        return value

    def integer(name: str, low: int, high: int) -> int:
        raw = env.get(name, "").strip()
        if not raw:
            problems.append(f"{name} is required")
            return low
        if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
            problems.append(f"{name} must be an integer from {low} to {high}, got {raw!r}")
            return low
        return int(raw)

    def media_types(name: str) -> frozenset[str]:
        items = [item.strip().lower() for item in env.get(name, "").split(",") if item.strip()]
        if not items:
            problems.append(f"{name} is required: a comma-separated list of media types such as video/mp4")
        malformed = [item for item in items if not _MEDIA_TYPE.fullmatch(item)]
        if malformed:
            problems.append(f"{name} holds entries that are not media types: {malformed}")
        return frozenset(items)

    settings = ApiSettings(
        jobs_table_name=text("JOBS_TABLE_NAME"),
        uploads_bucket=text("UPLOADS_BUCKET"),
        outputs_bucket=text("OUTPUTS_BUCKET"),
        max_upload_bytes=integer("MAX_UPLOAD_BYTES", 1, S3_POST_MAX_BYTES),
        allowed_content_types=media_types("ALLOWED_CONTENT_TYPES"),
        upload_url_ttl_seconds=integer("UPLOAD_URL_TTL_SECONDS", 1, PRESIGN_MAX_SECONDS),
        download_url_ttl_seconds=integer("DOWNLOAD_URL_TTL_SECONDS", 1, PRESIGN_MAX_SECONDS),
        job_retention_days=integer("JOB_RETENTION_DAYS", 1, 3650),
    )
    if problems:
        raise SettingsError("api function misconfigured: " + "; ".join(problems))
    return settings
