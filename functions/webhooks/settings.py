"""The webhooks function's configuration, read once from the environment (docs/CONTRACTS.md), every problem at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions.common.settings import EnvironmentReader
from functions.common.ssrf import IPNetwork, parse_allowed_addresses, parse_allowed_ports_env
from functions.webhooks.service import RetrySchedule, schedule_from_env

MAX_TIMEOUT_SECONDS = 30
PRESIGN_MAX_SECONDS = 7 * 86_400  # SigV4 presigned links are valid for at most seven days
MAX_RETENTION_DAYS = 3650


@dataclass(frozen=True)
class WebhooksSettings:
    """What the webhooks function needs to fan out and deliver."""

    endpoints_table: str
    """Endpoints table (`WEBHOOK_ENDPOINTS_TABLE`)."""
    deliveries_table: str
    """Delivery log table (`WEBHOOK_DELIVERIES_TABLE`)."""
    jobs_table: str
    """Jobs table the payload is read from (`JOBS_TABLE_NAME`)."""
    outputs_bucket: str
    """Bucket the payload's download links point into (`OUTPUTS_BUCKET`)."""
    download_url_ttl_seconds: int
    """Lifetime of those links (`DOWNLOAD_URL_TTL_SECONDS`)."""
    queue_url: str
    """The delivery queue, for retries (`WEBHOOK_QUEUE_URL`)."""
    dead_letter_queue_url: str
    """Where a task goes after its last attempt (`WEBHOOK_DLQ_URL`)."""
    schedule: RetrySchedule
    """Delays between attempts (`WEBHOOK_RETRY_SCHEDULE`, comma list of seconds)."""
    timeout_seconds: int
    """An attempt succeeds only with a 2xx within this long (`WEBHOOK_TIMEOUT_SECONDS`)."""
    log_retention_days: int
    """Delivery log items expire with the jobs they talk about (`JOB_RETENTION_DAYS`)."""
    allowed_networks: tuple[IPNetwork, ...]
    """Addresses the SSRF policy admits anyway (`WEBHOOK_ALLOWED_ADDRESSES`, optional, local clouds only)."""
    allowed_ports: frozenset[int]
    """The only ports webhook URLs may use (`WEBHOOK_ALLOWED_PORTS`, optional; empty: 80, 443 and 1024-65535 but
    well-known service ports)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhooksSettings:
        """Raises SettingsError naming every variable that is missing or invalid."""
        read = EnvironmentReader(environ)
        settings = cls(
            endpoints_table=read.text("WEBHOOK_ENDPOINTS_TABLE"),
            deliveries_table=read.text("WEBHOOK_DELIVERIES_TABLE"),
            jobs_table=read.text("JOBS_TABLE_NAME"),
            outputs_bucket=read.text("OUTPUTS_BUCKET"),
            download_url_ttl_seconds=read.integer("DOWNLOAD_URL_TTL_SECONDS", 1, PRESIGN_MAX_SECONDS),
            queue_url=read.text("WEBHOOK_QUEUE_URL"),
            dead_letter_queue_url=read.text("WEBHOOK_DLQ_URL"),
            schedule=read.parsed("WEBHOOK_RETRY_SCHEDULE", schedule_from_env, RetrySchedule()),
            timeout_seconds=read.integer("WEBHOOK_TIMEOUT_SECONDS", 1, MAX_TIMEOUT_SECONDS),
            log_retention_days=read.integer("JOB_RETENTION_DAYS", 1, MAX_RETENTION_DAYS),
            allowed_networks=read.parsed("WEBHOOK_ALLOWED_ADDRESSES", parse_allowed_addresses, ()),
            allowed_ports=read.parsed("WEBHOOK_ALLOWED_PORTS", parse_allowed_ports_env, frozenset()),
        )
        read.done("webhooks function")
        return settings
