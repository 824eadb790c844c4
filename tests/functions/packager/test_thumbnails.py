"""The sprite's geometry and its WebVTT index: pure functions, no ffmpeg."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from functions.packager.service import (
    MAX_SPRITE_SIDE,
    SpriteLayout,
    plan_sprite,
    thumbnails_vtt,
    tile_count,
    tile_height,
    vtt_timestamp,
)
from tests.functions.packager.conftest import vtt_cues, vtt_ms


def plan(duration_ms: int, width: int = 1280, height: int = 720, **overrides: Any) -> SpriteLayout:
    options = {"frame_rate": 30.0, "interval_seconds": 2, "max_tiles": 400, "tile_width": 160} | overrides
    return plan_sprite(duration_ms, width, height, **options)


@pytest.mark.parametrize(
    ("width", "height", "tall"),
    [
        (1920, 1080, 90),
        (640, 360, 90),
        (720, 1280, 284),
        (1000, 1000, 160),
        (853, 480, 90),
        (4000, 100, 4),
        (400, 1, 2),
    ],
)
def test_a_tile_keeps_the_video_aspect_rounded_to_an_even_height(width: int, height: int, tall: int) -> None:
    assert tile_height(160, width, height) == tall


def test_a_short_video_gets_one_row_of_as_many_tiles_as_intervals_started() -> None:
    layout = plan(6500)

    assert layout == SpriteLayout(intervalSeconds=2, tiles=4, columns=4, rows=1, tileWidth=160, tileHeight=90)
    assert (layout.width, layout.height) == (640, 90)


def test_tiles_wrap_after_ten_columns() -> None:
    layout = plan(60_000)

    assert (layout.tiles, layout.columns, layout.rows) == (30, 10, 3)
    assert (layout.width, layout.height) == (1600, 270)
    assert layout.box(0) == (0, 0, 160, 90)
    assert layout.box(9) == (1440, 0, 160, 90)
    assert layout.box(10) == (0, 90, 160, 90)
    assert layout.box(29) == (1440, 180, 160, 90)


def test_a_duration_of_whole_intervals_has_no_empty_last_tile() -> None:
    assert plan(6000).tiles == 3
    assert plan(6034).tiles == 4  # 181 frames at 30 fps: the last one starts at 6.000


@pytest.mark.parametrize(
    ("duration_ms", "frame_rate", "interval", "tiles"),
    [
        (6500, 30.0, 2, 4),
        (6000, 30.0, 2, 3),
        (6033, 30.0, 2, 4),  # a frame starts at 6.000 s (duration rounded down to the ms)
        (6010, 30.0, 2, 3),  # the last 10 ms hold no frame start
        (6006, 30000 / 1001, 2, 3),  # 180 frames at 29.97 fps: the last starts at 5.973 s
        (6040, 25.0, 2, 4),  # 151 frames at 25 fps: the last starts at 6.000 s
        (95_300, 30.0, 4, 24),
        (700, 30.0, 2, 1),
        (20, 30.0, 2, 1),
    ],
)
def test_there_is_a_tile_for_every_interval_a_frame_starts_in(
    duration_ms: int, frame_rate: float, interval: int, tiles: int
) -> None:
    assert tile_count(duration_ms, interval, frame_rate) == tiles


def test_the_configured_interval_is_kept_when_the_tiles_fit() -> None:
    layout = plan(60_000, interval_seconds=10)

    assert (layout.intervalSeconds, layout.tiles, layout.columns, layout.rows) == (10, 6, 6, 1)


def test_a_long_video_raises_the_interval_to_the_smallest_even_one_within_the_tile_limit() -> None:
    # GIVEN two hours of video and at most 400 tiles: 18 s per tile is the least that fits
    layout = plan(7_200_000)

    assert layout.intervalSeconds == 18
    assert layout.tiles == 400
    assert plan(7_200_001).intervalSeconds == 20  # one ms more needs 401 tiles of 18 s


def test_an_odd_configured_interval_is_raised_to_the_gop() -> None:
    assert plan(10_000, interval_seconds=3).intervalSeconds == 4
    assert plan(10_000, interval_seconds=1).intervalSeconds == 2


def test_a_small_tile_limit_raises_the_interval_in_gop_steps() -> None:
    layout = plan(6500, max_tiles=2)

    assert (layout.intervalSeconds, layout.tiles) == (4, 2)


def test_a_tall_portrait_sprite_is_kept_within_the_largest_side() -> None:
    # GIVEN a 1:4 portrait video (tiles 640 px tall) long enough for 400 tiles, 40 rows: 25,600 px
    layout = plan(800_000, width=180, height=720)
    assert layout.tileHeight == 640

    # THEN the interval grows until the rows fit in MAX_SPRITE_SIDE: 4 s, 200 tiles in 20 rows, 12,800 px
    assert (layout.intervalSeconds, layout.rows, layout.height) == (4, 20, 12_800)
    assert layout.height <= MAX_SPRITE_SIDE
    assert plan(800_000, width=180, height=720, interval_seconds=30).intervalSeconds == 30


def test_a_video_shorter_than_one_interval_has_one_tile() -> None:
    assert plan(700) == SpriteLayout(intervalSeconds=2, tiles=1, columns=1, rows=1, tileWidth=160, tileHeight=90)


# --- the VTT ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "stamp"),
    [(0, "00:00:00.000"), (6500, "00:00:06.500"), (61_001, "00:01:01.001"), (36_000_000 + 59_999, "10:00:59.999")],
)
def test_vtt_timestamps_have_hours_minutes_seconds_and_milliseconds(ms: int, stamp: str) -> None:
    assert vtt_timestamp(ms) == stamp


def test_the_vtt_has_one_cue_per_tile_and_the_last_one_ends_with_the_video() -> None:
    layout = plan(6500)

    assert thumbnails_vtt(layout, 6500, "sprite.jpg") == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.000\n"
        "sprite.jpg#xywh=0,0,160,90\n"
        "\n"
        "00:00:02.000 --> 00:00:04.000\n"
        "sprite.jpg#xywh=160,0,160,90\n"
        "\n"
        "00:00:04.000 --> 00:00:06.000\n"
        "sprite.jpg#xywh=320,0,160,90\n"
        "\n"
        "00:00:06.000 --> 00:00:06.500\n"
        "sprite.jpg#xywh=480,0,160,90\n"
    )


def test_a_last_interval_shorter_than_a_frame_belongs_to_the_last_tile() -> None:
    # GIVEN 180 frames at 29.97 fps: 6.006 s, keyframes at 0, 2.002 and 4.004 s
    layout = plan(6006, frame_rate=30000 / 1001)

    cues = vtt_cues(thumbnails_vtt(layout, 6006, "sprite.jpg"))

    # THEN three tiles, the last cue running to the very end
    assert [(start, end) for start, end, _ in cues] == [
        ("00:00:00.000", "00:00:02.000"),
        ("00:00:02.000", "00:00:04.000"),
        ("00:00:04.000", "00:00:06.006"),
    ]


def test_cues_tile_the_whole_duration_and_point_inside_the_sprite() -> None:
    # GIVEN a 95.3 s video with 4 s tiles over several rows
    duration_ms = 95_300
    layout = plan(duration_ms, interval_seconds=4)

    cues = vtt_cues(thumbnails_vtt(layout, duration_ms, "sprite.jpg"))

    assert len(cues) == layout.tiles == 24
    assert vtt_ms(cues[0][0]) == 0 and vtt_ms(cues[-1][1]) == duration_ms
    for (_, end, _), (start, _, _) in itertools.pairwise(cues):
        assert end == start  # contiguous, no gap and no overlap
    for index, (start, end, payload) in enumerate(cues):
        assert vtt_ms(start) == index * 4000 and vtt_ms(end) > vtt_ms(start)
        name, _, box = payload.partition("#xywh=")
        x, y, w, h = (int(value) for value in box.split(","))
        assert name == "sprite.jpg"
        assert (w, h) == (layout.tileWidth, layout.tileHeight)
        assert x >= 0 and x + w <= layout.width and y >= 0 and y + h <= layout.height
