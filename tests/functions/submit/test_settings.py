"""The submit function's settings and its MediaConvert client, from the environment."""

from __future__ import annotations

import pytest

from functions.common.clients import forget_clients
from functions.common.settings import SettingsError
from functions.submit.adapters import MediaConvertJobs
from functions.submit.settings import SubmitSettings
from tests.functions.submit.conftest import QUEUE_ARN, ROLE_ARN

ENV = {
    "JOBS_TABLE_NAME": "jobs",
    "EVENT_BUS_NAME": "bus",
    "UPLOADS_BUCKET": "up",
    "OUTPUTS_BUCKET": "out",
    "STACK_NAME": "dev",
    "MEDIACONVERT_QUEUE_ARN": QUEUE_ARN,
    "MEDIACONVERT_ROLE_ARN": ROLE_ARN,
}


def test_settings_come_from_the_environment() -> None:
    settings = SubmitSettings.from_env(ENV)

    assert (settings.queue_arn, settings.role_arn, settings.stack_name) == (QUEUE_ARN, ROLE_ARN, "dev")


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"MEDIACONVERT_ROLE_ARN": ""}, "MEDIACONVERT_ROLE_ARN"), ({"MEDIACONVERT_QUEUE_ARN": "Default"}, "an ARN")],
)
def test_missing_or_malformed_settings_are_named(changes: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        SubmitSettings.from_env({**ENV, **changes})


def test_the_client_uses_the_regional_endpoint_unless_the_environment_names_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_MEDIACONVERT", raising=False)
    assert MediaConvertJobs()._client.meta.endpoint_url == "https://mediaconvert.us-east-1.amazonaws.com"

    monkeypatch.setenv("AWS_ENDPOINT_URL_MEDIACONVERT", "http://127.0.0.1:4599")
    forget_clients()  # a new execution environment: the client is made once per environment
    assert MediaConvertJobs()._client.meta.endpoint_url == "http://127.0.0.1:4599"
