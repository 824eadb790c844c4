"""The api function's settings from its environment: every problem reported at once, naming the variable."""

from __future__ import annotations

import pytest

from functions.api.settings import UPLOAD_GRACE_SECONDS, ApiSettings, WebhookSettings
from functions.common.settings import SettingsError
from functions.contracts.media import MediaType
from tests.functions.api.conftest import SETTINGS_ENV

WEBHOOK_ENV = {"WEBHOOK_ENDPOINTS_TABLE": "e", "WEBHOOK_DELIVERIES_TABLE": "d", "WEBHOOK_SECRET_OVERLAP_SECONDS": "0"}


def test_settings_read_every_variable() -> None:
    assert ApiSettings.from_env(SETTINGS_ENV) == ApiSettings(
        jobs_table_name="jobs",
        uploads_bucket="up",
        outputs_bucket="out",
        max_upload_bytes=1000,
        max_image_upload_bytes=100,
        max_audio_upload_bytes=500,
        allowed_content_types=frozenset({"video/mp4", "video/quicktime", "image/png", "audio/mpeg"}),
        upload_url_ttl_seconds=600,
        download_url_ttl_seconds=120,
        job_retention_days=7,
    )
    settings = ApiSettings.from_env(SETTINGS_ENV)
    assert settings.upload_limits == {MediaType.VIDEO: 1000, MediaType.IMAGE: 100, MediaType.AUDIO: 500}
    assert settings.retention_seconds == 7 * 86_400
    assert settings.upload_deadline_seconds == 600 + UPLOAD_GRACE_SECONDS


def test_settings_name_every_problem_at_once() -> None:
    env = {**SETTINGS_ENV, "MAX_UPLOAD_BYTES": "lots", "MAX_AUDIO_UPLOAD_BYTES": "1e6", "DOWNLOAD_URL_TTL_SECONDS": "0"}
    del env["UPLOADS_BUCKET"]
    del env["MAX_IMAGE_UPLOAD_BYTES"]

    with pytest.raises(SettingsError) as caught:
        ApiSettings.from_env(env)

    assert str(caught.value) == (
        "api function misconfigured: UPLOADS_BUCKET is required; "
        "MAX_UPLOAD_BYTES must be an integer from 1 to 5368709120, got 'lots'; "
        "MAX_IMAGE_UPLOAD_BYTES is required; "
        "MAX_AUDIO_UPLOAD_BYTES must be an integer from 1 to 5368709120, got '1e6'; "
        "DOWNLOAD_URL_TTL_SECONDS must be an integer from 1 to 604800, got '0'"
    )


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("MAX_UPLOAD_BYTES", str(5 * 1024**3 + 1), "MAX_UPLOAD_BYTES must be an integer from 1 to 5368709120"),
        ("MAX_IMAGE_UPLOAD_BYTES", "0", "MAX_IMAGE_UPLOAD_BYTES must be an integer from 1 to 5368709120"),
        ("MAX_AUDIO_UPLOAD_BYTES", str(5 * 1024**3 + 1), "MAX_AUDIO_UPLOAD_BYTES must be an integer from 1 to"),
        ("MAX_AUDIO_UPLOAD_BYTES", "", "MAX_AUDIO_UPLOAD_BYTES is required"),
        ("UPLOAD_URL_TTL_SECONDS", "604801", "UPLOAD_URL_TTL_SECONDS must be an integer from 1 to 604800"),
        ("JOB_RETENTION_DAYS", "-3", "JOB_RETENTION_DAYS must be an integer from 1 to 3650"),
        ("JOB_RETENTION_DAYS", "", "JOB_RETENTION_DAYS is required"),
        ("ALLOWED_CONTENT_TYPES", " , ", "ALLOWED_CONTENT_TYPES is required"),
        ("ALLOWED_CONTENT_TYPES", "video/mp4,mp4", "ALLOWED_CONTENT_TYPES holds entries that are not media types"),
        ("JOBS_TABLE_NAME", "  ", "JOBS_TABLE_NAME is required"),
    ],
)
def test_settings_refuse_values_the_api_could_not_honour(name: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        ApiSettings.from_env({**SETTINGS_ENV, name: value})


def test_webhook_settings_bound_the_overlap() -> None:
    assert WebhookSettings.from_env(WEBHOOK_ENV).secret_overlap_seconds == 0
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET_OVERLAP_SECONDS"):
        WebhookSettings.from_env({**WEBHOOK_ENV, "WEBHOOK_SECRET_OVERLAP_SECONDS": str(31 * 86_400)})


def test_webhook_settings_read_the_allow_list_and_name_every_problem_at_once() -> None:
    settings = WebhookSettings.from_env(
        {**WEBHOOK_ENV, "WEBHOOK_ALLOWED_ADDRESSES": "127.0.0.1, ::1", "WEBHOOK_ALLOWED_PORTS": "8443"}
    )
    assert [str(network) for network in settings.allowed_networks] == ["127.0.0.1/32", "::1/128"]
    assert settings.allowed_ports == frozenset({8443})
    unset = WebhookSettings.from_env(WEBHOOK_ENV)
    assert (unset.allowed_networks, unset.allowed_ports) == ((), frozenset())

    with pytest.raises(SettingsError) as caught:
        WebhookSettings.from_env(
            {"WEBHOOK_DELIVERIES_TABLE": "d", "WEBHOOK_ALLOWED_ADDRESSES": "intranet", "WEBHOOK_ALLOWED_PORTS": "ssh"}
        )

    message = str(caught.value)
    assert message.startswith("webhook endpoints misconfigured: WEBHOOK_ENDPOINTS_TABLE is required; ")
    for name in ("WEBHOOK_SECRET_OVERLAP_SECONDS", "WEBHOOK_ALLOWED_ADDRESSES", "WEBHOOK_ALLOWED_PORTS"):
        assert name in message
