"""Reading an encoded rendition back from ffprobe's report, and checking it is what was planned."""

from __future__ import annotations

import pytest

from functions.transcode.adapters import parse_output_probe, stream_rotation
from functions.transcode.service import OutputMedia, OutputUnreadable, output_problems
from tests.functions.transcode.conftest import PLAN, ffprobe_report


def test_parse_output_probe() -> None:
    assert parse_output_probe(ffprobe_report()) == OutputMedia(
        width=1280,
        height=720,
        durationMs=2021,
        bytes=412345,
        videoCodec="h264",
        profile="High",
        pixelFormat="yuv420p",
        rotation=0,
        audioCodec="aac",
    )


@pytest.mark.parametrize(
    ("stream", "rotation"),
    [
        ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}, 270),
        ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": 90}]}, 90),
        ({"tags": {"rotate": "180"}}, 180),
        ({}, 0),
    ],
)
def test_stream_rotation(stream: dict, rotation: int) -> None:
    assert stream_rotation(stream) == rotation


def test_display_size_swaps_for_a_quarter_turn() -> None:
    media = parse_output_probe(ffprobe_report(side_data_list=[{"rotation": 90}]))
    assert (media.width, media.height, media.rotation) == (720, 1280, 90)


def test_output_without_video_is_unreadable() -> None:
    with pytest.raises(OutputUnreadable):
        parse_output_probe({"streams": [{"codec_type": "audio", "codec_name": "aac"}], "format": {}})


def test_planned_output_has_no_problems() -> None:
    assert output_problems(parse_output_probe(ffprobe_report()), PLAN, expect_audio=True) == []


def test_output_problems_name_each_difference() -> None:
    media = parse_output_probe(ffprobe_report(codec_name="hevc", width=1280, height=718))
    assert output_problems(media, PLAN, expect_audio=False) == [
        "video codec is hevc, expected h264",
        "display size is 1280x718, expected 1280x720",
        "has a aac audio stream, expected none",
    ]
