"""Choosing the poster's frame: where to look, and which frame is a picture. Pure functions, no ffmpeg."""

from __future__ import annotations

import itertools

import pytest

from functions.packager.service import (
    BLACK_MEAN_LUMA,
    FLAT_LUMA_SPREAD,
    SCAN_SIDE,
    FrameLuma,
    LumaScan,
    first_visible_frame,
    frame_luma,
    is_blank,
    poster_frame_ms,
    poster_start_ms,
    poster_windows,
)

BLACK = FrameLuma(mean=1.0, spread=0.3)
PICTURE = FrameLuma(mean=120.0, spread=60.0)


def test_a_frame_gets_the_mean_and_standard_deviation_of_its_grey_levels() -> None:
    assert frame_luma(bytes([0, 0, 255, 255])) == FrameLuma(mean=127.5, spread=127.5)
    assert frame_luma(bytes([16] * 64)) == FrameLuma(mean=16.0, spread=0.0)
    assert frame_luma(b"") == FrameLuma(0.0, 0.0)


@pytest.mark.parametrize(
    ("luma", "blank"),
    [
        (BLACK, True),
        (FrameLuma(mean=BLACK_MEAN_LUMA - 0.1, spread=40.0), True),  # a very dark frame, even with some detail
        (FrameLuma(mean=128.0, spread=FLAT_LUMA_SPREAD - 0.1), True),  # a flat grey slate
        (FrameLuma(mean=BLACK_MEAN_LUMA, spread=FLAT_LUMA_SPREAD), False),
        (PICTURE, False),
        (FrameLuma(mean=235.0, spread=10.0), False),
    ],
)
def test_black_and_flat_frames_are_blank(luma: FrameLuma, blank: bool) -> None:
    assert is_blank(luma) is blank


@pytest.mark.parametrize(
    ("series", "chosen"),
    [
        ([PICTURE, BLACK], 0),
        ([BLACK, BLACK, PICTURE, BLACK, PICTURE], 2),
        ([BLACK, FrameLuma(mean=128.0, spread=0.5), PICTURE], 2),
        ([BLACK, BLACK, BLACK], None),
        ([], None),
    ],
)
def test_the_poster_is_the_first_frame_that_is_not_blank(series: list[FrameLuma], chosen: int | None) -> None:
    assert first_visible_frame(series) == chosen


def test_the_scan_starts_at_ten_percent_and_doubles_its_window_to_the_end() -> None:
    assert poster_start_ms(6500) == 650
    assert poster_windows(6500) == [(650, 2000), (2650, 3850)]
    assert poster_windows(60_000) == [(6000, 2000), (8000, 4000), (12_000, 8000), (20_000, 16_000), (36_000, 24_000)]


def test_a_very_short_video_is_scanned_in_one_window() -> None:
    assert poster_windows(1000) == [(100, 900)]
    assert poster_windows(0) == []


def test_the_windows_cover_everything_from_ten_percent_to_the_end_without_overlap() -> None:
    duration = 3_600_000
    windows = poster_windows(duration)

    assert windows[0][0] == poster_start_ms(duration)
    for (start, length), (next_start, _) in itertools.pairwise(windows):
        assert start + length == next_start
    assert sum(windows[-1]) == duration
    assert len(windows) <= 12  # an hour of black costs a dozen ffmpeg runs, not hundreds


def test_frames_of_a_window_are_half_a_second_apart_from_its_start() -> None:
    assert [poster_frame_ms(650, index) for index in range(4)] == [650, 1150, 1650, 2150]


def test_the_scan_splits_ffmpeg_output_into_frames_whatever_the_chunks() -> None:
    # GIVEN two black frames and a half-white one, written in chunks that do not fall on frame boundaries
    size = SCAN_SIDE * SCAN_SIDE
    half_white = bytes([0] * (size // 2) + [255] * (size // 2))
    data = bytes(size) + bytes(size) + half_white
    scan = LumaScan()

    for start in range(0, len(data), 700):
        scan.feed(data[start : start + 700])

    assert [round(frame.mean, 1) for frame in scan.frames] == [0.0, 0.0, 127.5]
    assert first_visible_frame(scan.frames) == 2


def test_a_partial_frame_at_the_end_is_not_judged() -> None:
    scan = LumaScan()
    scan.feed(bytes(SCAN_SIDE * SCAN_SIDE + 10))
    assert len(scan.frames) == 1
