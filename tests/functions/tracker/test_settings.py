"""The tracker's settings: the common environment, every problem reported as the one SettingsError."""

from __future__ import annotations

import pytest

from functions.common.settings import SettingsError
from functions.tracker.settings import TrackerSettings

ENV = {
    "JOBS_TABLE_NAME": "jobs",
    "EVENT_BUS_NAME": "bus",
    "OUTPUTS_BUCKET": "out",
    "UPLOADS_BUCKET": "up",
    "STACK_NAME": "dev",
    "VALIDATED_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:validated",
}


def test_settings_come_from_the_common_environment() -> None:
    assert TrackerSettings.from_env(ENV) == TrackerSettings(
        jobs_table_name="jobs",
        event_bus_name="bus",
        outputs_bucket="out",
        uploads_bucket="up",
        stack_name="dev",
        validated_topic_arn="arn:aws:sns:us-east-1:123456789012:validated",
        sweep_max_jobs=200,
    )
    assert TrackerSettings.from_env({**ENV, "SWEEP_MAX_JOBS": "7"}).sweep_max_jobs == 7


@pytest.mark.parametrize(
    "env",
    [
        {k: v for k, v in ENV.items() if k != "STACK_NAME"},
        {k: v for k, v in ENV.items() if k != "UPLOADS_BUCKET"},
        {k: v for k, v in ENV.items() if k != "VALIDATED_TOPIC_ARN"},
        {**ENV, "EVENT_BUS_NAME": ""},
        {**ENV, "SWEEP_MAX_JOBS": "0"},
    ],
)
def test_settings_refuse_a_broken_environment(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        TrackerSettings.from_env(env)
