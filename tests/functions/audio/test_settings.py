"""The audio function's settings: required variables, the loudness target's range, every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.audio.settings import AudioSettings
from functions.common.settings import SettingsError
from tests.functions.audio.conftest import BASE_ENV


def test_settings_from_the_environment(tmp_path: Path) -> None:
    settings = AudioSettings.from_env(BASE_ENV | {"AUDIO_WORK_DIR": str(tmp_path)})
    assert (settings.uploads_bucket, settings.outputs_bucket, settings.event_bus_name) == ("uploads", "outputs", "bus")
    assert settings.loudness_target_lufs == -23.0
    assert settings.work_root == tmp_path
    assert settings.reserve_seconds == 30.0


@pytest.mark.parametrize(("raw", "value"), [("-16", -16.0), ("-16.5", -16.5), (" -70 ", -70.0), ("-5", -5.0)])
def test_the_loudness_target_is_a_number_of_lufs(raw: str, value: float) -> None:
    assert AudioSettings.from_env(BASE_ENV | {"LOUDNESS_TARGET_LUFS": raw}).loudness_target_lufs == value


@pytest.mark.parametrize("raw", ["-4.9", "-70.1", "0", "loud", "nan", "-inf"])
def test_a_loudness_target_loudnorm_cannot_reach_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="LOUDNESS_TARGET_LUFS"):
        AudioSettings.from_env(BASE_ENV | {"LOUDNESS_TARGET_LUFS": raw})


def test_settings_report_every_problem_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        AudioSettings.from_env({"LOUDNESS_TARGET_LUFS": "-1"})
    text = str(raised.value)
    expected = ("UPLOADS_BUCKET is not set", "OUTPUTS_BUCKET is not set", "EVENT_BUS_NAME is not set", "-70 to -5")
    assert [fragment for fragment in expected if fragment not in text] == []


def test_the_loudness_target_is_required() -> None:
    env = {name: value for name, value in BASE_ENV.items() if name != "LOUDNESS_TARGET_LUFS"}
    with pytest.raises(SettingsError, match="LOUDNESS_TARGET_LUFS is not set"):
        AudioSettings.from_env(env)
