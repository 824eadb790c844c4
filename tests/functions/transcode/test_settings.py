"""The transcoder's settings: required variables, optional encoder knobs, every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.common.renditions import Rendition
from functions.common.settings import SettingsError
from functions.transcode.settings import TranscodeSettings
from tests.functions.transcode.conftest import BASE_ENV


def test_settings_defaults() -> None:
    settings = TranscodeSettings.from_env(BASE_ENV | {"FFMPEG_THREADS": "3"})
    assert settings.rendition == Rendition(name="720p", height=720, maxVideoBitrateKbps=3000, audioBitrateKbps=128)
    assert (settings.outputs_bucket, settings.event_bus_name) == ("outputs", "bus")
    assert (settings.preset, settings.crf, settings.threads) == ("veryfast", 23, 3)


def test_settings_read_the_optional_encoder_knobs_and_work_dir(tmp_path: Path) -> None:
    env = BASE_ENV | {"FFMPEG_PRESET": "superfast", "FFMPEG_CRF": "20", "TRANSCODE_WORK_DIR": str(tmp_path)}
    settings = TranscodeSettings.from_env(env)
    assert (settings.preset, settings.crf, settings.work_root) == ("superfast", 20, tmp_path)


def test_settings_accept_a_one_element_ladder() -> None:
    settings = TranscodeSettings.from_env(BASE_ENV | {"RENDITION": f"[{BASE_ENV['RENDITION']}]"})
    assert settings.rendition.name == "720p"


def test_settings_report_every_problem_at_once() -> None:
    env = {"RENDITION": '{"name":"720p","height":721}', "FFMPEG_PRESET": "warp", "FFMPEG_THREADS": "-1"}
    with pytest.raises(SettingsError) as raised:
        TranscodeSettings.from_env(env)
    text = str(raised.value)
    expected = ("OUTPUTS_BUCKET is not set", "EVENT_BUS_NAME is not set", "RENDITION:", "FFMPEG_PRESET", "THREADS")
    assert [fragment for fragment in expected if fragment not in text] == []
