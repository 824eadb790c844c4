"""The webhooks function's settings from its environment: every problem reported at once."""

from __future__ import annotations

import pytest

from functions.common.settings import SettingsError
from functions.webhooks.service import RetrySchedule
from functions.webhooks.settings import WebhooksSettings

DELIVERY_ENV = {
    "WEBHOOK_ENDPOINTS_TABLE": "endpoints",
    "WEBHOOK_DELIVERIES_TABLE": "deliveries",
    "JOBS_TABLE_NAME": "jobs",
    "OUTPUTS_BUCKET": "outputs",
    "DOWNLOAD_URL_TTL_SECONDS": "3600",
    "WEBHOOK_QUEUE_URL": "https://sqs/q",
    "WEBHOOK_DLQ_URL": "https://sqs/dlq",
    "WEBHOOK_RETRY_SCHEDULE": "5,300",
    "WEBHOOK_TIMEOUT_SECONDS": "15",
    "JOB_RETENTION_DAYS": "30",
}


def test_delivery_settings_are_read_and_every_problem_is_reported_at_once() -> None:
    settings = WebhooksSettings.from_env(
        {**DELIVERY_ENV, "WEBHOOK_ALLOWED_ADDRESSES": "127.0.0.1, ::1", "WEBHOOK_ALLOWED_PORTS": "443, 8443"}
    )
    assert settings.schedule == RetrySchedule(delays=(5, 300))
    assert [str(n) for n in settings.allowed_networks] == ["127.0.0.1/32", "::1/128"]
    assert settings.allowed_ports == frozenset({443, 8443})
    unset = WebhooksSettings.from_env(DELIVERY_ENV)
    assert (unset.allowed_networks, unset.allowed_ports) == ((), frozenset())  # the port rule applies
    broken = {**DELIVERY_ENV, "WEBHOOK_QUEUE_URL": "", "WEBHOOK_RETRY_SCHEDULE": "5,x", "WEBHOOK_TIMEOUT_SECONDS": "99"}
    with pytest.raises(SettingsError) as raised:
        WebhooksSettings.from_env(
            {**broken, "WEBHOOK_ALLOWED_ADDRESSES": "intranet", "WEBHOOK_ALLOWED_PORTS": "443,70000"}
        )
    message = str(raised.value)
    for name in (
        "WEBHOOK_QUEUE_URL",
        "WEBHOOK_RETRY_SCHEDULE",
        "WEBHOOK_TIMEOUT_SECONDS",
        "WEBHOOK_ALLOWED_ADDRESSES",
        "WEBHOOK_ALLOWED_PORTS",
    ):
        assert name in message
