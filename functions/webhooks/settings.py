"""Configuration of the webhook parts, read from the environment (docs/CONTRACTS.md), every problem reported at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from functions.webhooks.schedule import RetrySchedule, schedule_from_env
from functions.common.ssrf import IPNetwork, parse_allowed_networks

T = TypeVar("T")
MAX_TIMEOUT_SECONDS = 30
MAX_OVERLAP_SECONDS = 30 * 86_400
PRESIGN_MAX_SECONDS = 7 * 86_400


class SettingsError(RuntimeError):
    """The environment does not describe a usable configuration; the message lists every problem."""


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, name: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            self.problems.append(f"{name} is required")
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        raw = self.env.get(name, "").strip()
        if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
            self.problems.append(f"{name} must be an integer from {low} to {high}, got {raw!r}")
            return low
        return int(raw)

    def parsed(self, name: str, parse: Callable[[str], T], fallback: T) -> T:
        try:
            return parse(self.env.get(name, ""))
        except ValueError as err:
            self.problems.append(f"{name}: {err}")
            return fallback

    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        """`WEBHOOK_ALLOWED_ADDRESSES` (optional): comma list of addresses or networks the SSRF policy admits."""
        return self.parsed(
            "WEBHOOK_ALLOWED_ADDRESSES",
            lambda raw: parse_allowed_networks(item for item in raw.split(",") if item.strip()),
            (),
        )

    def done(self, what: str) -> None:
        if self.problems:
            raise SettingsError(f"{what} misconfigured: " + "; ".join(self.problems))


@dataclass(frozen=True)
class EndpointSettings:
    """What the api function needs to manage webhook endpoints."""

    endpoints_table: str
    """Endpoints table (`WEBHOOK_ENDPOINTS_TABLE`)."""
    deliveries_table: str
    """Delivery log table (`WEBHOOK_DELIVERIES_TABLE`)."""
    secret_overlap_seconds: int
    """How long a rotated-out secret keeps signing (`WEBHOOK_SECRET_OVERLAP_SECONDS`)."""
    allowed_networks: tuple[IPNetwork, ...]
    """Addresses the SSRF policy admits anyway (`WEBHOOK_ALLOWED_ADDRESSES`, optional, local clouds only)."""


def load_endpoint_settings(env: Mapping[str, str]) -> EndpointSettings:
    read = _Reader(env)
    settings = EndpointSettings(
        endpoints_table=read.text("WEBHOOK_ENDPOINTS_TABLE"),
        deliveries_table=read.text("WEBHOOK_DELIVERIES_TABLE"),
        secret_overlap_seconds=read.integer("WEBHOOK_SECRET_OVERLAP_SECONDS", 0, MAX_OVERLAP_SECONDS),
        allowed_networks=read.allowed_networks(),
    )
    read.done("webhook endpoints")
    return settings


@dataclass(frozen=True)
class DeliverySettings:
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
    metrics_namespace: str = "MediaPipeline"
    """CloudWatch namespace (`POWERTOOLS_METRICS_NAMESPACE`)."""


def load_delivery_settings(env: Mapping[str, str]) -> DeliverySettings:
    read = _Reader(env)
    settings = DeliverySettings(
        endpoints_table=read.text("WEBHOOK_ENDPOINTS_TABLE"),
        deliveries_table=read.text("WEBHOOK_DELIVERIES_TABLE"),
        jobs_table=read.text("JOBS_TABLE_NAME"),
        outputs_bucket=read.text("OUTPUTS_BUCKET"),
        download_url_ttl_seconds=read.integer("DOWNLOAD_URL_TTL_SECONDS", 1, PRESIGN_MAX_SECONDS),
        queue_url=read.text("WEBHOOK_QUEUE_URL"),
        dead_letter_queue_url=read.text("WEBHOOK_DLQ_URL"),
        schedule=read.parsed("WEBHOOK_RETRY_SCHEDULE", schedule_from_env, RetrySchedule()),
        timeout_seconds=read.integer("WEBHOOK_TIMEOUT_SECONDS", 1, MAX_TIMEOUT_SECONDS),
        log_retention_days=read.integer("JOB_RETENTION_DAYS", 1, 3650),
        allowed_networks=read.allowed_networks(),
        metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or "MediaPipeline",
    )
    read.done("webhooks function")
    return settings
