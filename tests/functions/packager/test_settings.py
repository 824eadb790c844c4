"""The packager's environment: what it requires, its defaults, and every mistake reported at once."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from functions.common.settings import SettingsError
from functions.packager.settings import PACKAGER_RESERVE_SECONDS, PackagerSettings

BASE_ENV = {"OUTPUTS_BUCKET": "outputs", "EVENT_BUS_NAME": "bus", "JOBS_TABLE_NAME": "jobs"}


def test_only_the_bucket_and_the_bus_are_required() -> None:
    settings = PackagerSettings.from_env(BASE_ENV)

    assert settings == PackagerSettings(
        outputs_bucket="outputs",
        event_bus_name="bus",
        jobs_table_name="jobs",
        thumbnail_interval_seconds=2,
        max_sprite_tiles=400,
        sprite_tile_width=160,
        work_root=Path(tempfile.gettempdir()),
        reserve_seconds=PACKAGER_RESERVE_SECONDS,
    )


def test_the_thumbnail_knobs_and_the_work_dir_can_be_set() -> None:
    env = BASE_ENV | {
        "THUMBNAIL_INTERVAL_SECONDS": "10",
        "MAX_SPRITE_TILES": "100",
        "SPRITE_TILE_WIDTH": "240",
        "PACKAGER_WORK_DIR": "/mnt/work",
    }

    settings = PackagerSettings.from_env(env)

    assert (settings.thumbnail_interval_seconds, settings.max_sprite_tiles, settings.sprite_tile_width) == (
        10,
        100,
        240,
    )
    assert settings.work_root == Path("/mnt/work")


def test_every_mistake_is_reported_at_once() -> None:
    env = {"THUMBNAIL_INTERVAL_SECONDS": "3", "MAX_SPRITE_TILES": "0", "SPRITE_TILE_WIDTH": "161"}

    with pytest.raises(SettingsError) as raised:
        PackagerSettings.from_env(env)

    message = str(raised.value)
    assert message.startswith("packager function misconfigured: ")
    for expected in (
        "OUTPUTS_BUCKET is not set",
        "EVENT_BUS_NAME is not set",
        "THUMBNAIL_INTERVAL_SECONDS must be a multiple of 2, got 3",
        "MAX_SPRITE_TILES must be an integer from 1 to 2000, got '0'",
        "SPRITE_TILE_WIDTH must be even, got 161",
    ):
        assert expected in message


@pytest.mark.parametrize("value", ["0", "1", "-2", "two", "3602"])
def test_an_interval_outside_2_to_3600_seconds_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="THUMBNAIL_INTERVAL_SECONDS"):
        PackagerSettings.from_env(BASE_ENV | {"THUMBNAIL_INTERVAL_SECONDS": value})
