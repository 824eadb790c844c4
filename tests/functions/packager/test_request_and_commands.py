"""What the packager accepts before it reads anything, the ffmpeg commands it builds, and its failure messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.common.unit_worker import ERROR_MESSAGE_CHARS
from functions.packager.adapters import frame_rate, parse_rendition_probe
from functions.packager.service import (
    MP4_DEMUXERS,
    RenditionMedia,
    SpriteLayout,
    failure_message,
    hls_args,
    luma_scan_args,
    poster_args,
    rendition_problem,
    request_problem,
    sprite_args,
)
from tests.functions.packager.conftest import JOB_ID, OUTPUTS, packaging_request, rendition_key, source

# --- the request ----------------------------------------------------------------------------------------------------


def test_a_request_for_this_jobs_renditions_in_the_outputs_bucket_is_accepted() -> None:
    assert request_problem(packaging_request(), OUTPUTS) is None


@pytest.mark.parametrize(
    ("sources", "problem"),
    [
        ([source("180p", bucket="test-uploads")], "rendition 180p is not in the outputs bucket"),
        ([source("180p", key=rendition_key("180p", "01OTHERJOB"))], "rendition 180p is not among the job's outputs"),
        ([source("180p", key="uploads/x/source")], "rendition 180p is not among the job's outputs"),
        ([source("180p", key=f"outputs/{JOB_ID}/")], "rendition 180p is not among the job's outputs"),
        ([source("180p"), source("180p")], "rendition 180p is named twice"),
        ([source("../180p")], "a rendition's name cannot name a playlist folder"),
        ([source("a/b")], "a rendition's name cannot name a playlist folder"),
        ([source("")], "a rendition's name cannot name a playlist folder"),
    ],
)
def test_a_request_outside_the_jobs_outputs_is_refused_without_naming_where(sources: list, problem: str) -> None:
    found = request_problem(packaging_request(*sources), OUTPUTS)

    assert found == problem
    assert OUTPUTS not in found and "uploads" not in found and "outputs/" not in found


def rendition(**overrides: object) -> RenditionMedia:
    values: dict[str, object] = {
        "width": 640,
        "height": 360,
        "durationMs": 6500,
        "frameRate": 30.0,
        "videoCodec": "h264",
        "profile": "High",
        "level": 30,
        "audioCodec": "aac",
        "audioProfile": "LC",
    }
    return RenditionMedia(**(values | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({}, None),
        ({"audioCodec": None, "audioProfile": None}, None),
        ({"videoCodec": None}, "rendition 360p has no video"),
        ({"videoCodec": "hevc"}, "rendition 360p is hevc, not H.264"),
        ({"width": 0}, "rendition 360p has no picture size"),
        ({"durationMs": 0}, "rendition 360p has no duration"),
        ({"frameRate": None}, "rendition 360p has no frame rate"),
        ({"audioCodec": "mp3"}, "rendition 360p has mp3 audio, not AAC"),
    ],
)
def test_a_rendition_must_be_h264_with_aac_a_size_a_duration_and_a_frame_rate(
    overrides: dict, problem: str | None
) -> None:
    assert rendition_problem("360p", rendition(**overrides)) == problem


def test_the_probe_of_a_rendition_gives_its_video_and_audio_facts() -> None:
    report = {
        "streams": [
            {"codec_type": "audio", "codec_name": "aac", "profile": "LC"},
            {
                "codec_type": "video",
                "codec_name": "h264",
                "profile": "High",
                "level": 31,
                "width": 1280,
                "height": 720,
                "avg_frame_rate": "30000/1001",
                "duration": "6.006000",
            },
        ],
        "format": {"duration": "6.050000"},
    }

    assert parse_rendition_probe(report) == RenditionMedia(
        width=1280,
        height=720,
        durationMs=6006,
        frameRate=30000 / 1001,
        videoCodec="h264",
        profile="High",
        level=31,
        audioCodec="aac",
        audioProfile="LC",
    )


def test_a_probe_without_video_has_no_video_facts() -> None:
    media = parse_rendition_probe({"streams": [{"codec_type": "audio", "codec_name": "aac"}], "format": {}})
    assert (media.videoCodec, media.width, media.durationMs) == (None, 0, 0)
    assert rendition_problem("x", media) == "rendition x has no video"


@pytest.mark.parametrize(("value", "rate"), [("30/1", 30.0), ("0/0", None), ("25", 25.0), (None, None), ("x", None)])
def test_frame_rates_are_read_from_ffprobe_fractions(value: str | None, rate: float | None) -> None:
    assert frame_rate(value) == rate


# --- the ffmpeg commands --------------------------------------------------------------------------------------------

SOURCE = Path("/work/renditions/720p.mp4")


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def assert_opens_only_a_local_mp4(args: list[str]) -> None:
    before_input = args[: args.index("-i")]
    assert option(before_input, "-protocol_whitelist") == "file"
    assert option(before_input, "-format_whitelist") == MP4_DEMUXERS
    assert option(args, "-i") == str(SOURCE)
    assert "-nostdin" in args


def test_the_hls_command_remuxes_without_reencoding_into_cmaf_segments() -> None:
    folder = Path("/work/package/hls/720p")

    args = hls_args("ffmpeg", SOURCE, folder, has_audio=True)

    assert_opens_only_a_local_mp4(args)
    assert option(args, "-c") == "copy"
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "-map"] == ["0:v:0", "0:a:0"]
    assert option(args, "-f") == "hls"
    assert option(args, "-hls_time") == "2"
    assert option(args, "-hls_playlist_type") == "vod"
    assert option(args, "-hls_segment_type") == "fmp4"
    assert option(args, "-hls_fmp4_init_filename") == "init.mp4"
    assert option(args, "-hls_segment_filename") == "/work/package/hls/720p/seg_%05d.m4s"
    assert option(args, "-hls_flags") == "independent_segments"
    assert "/work/package/hls/720p/index.m3u8" in args


def test_a_rendition_without_audio_maps_only_its_video() -> None:
    args = hls_args("ffmpeg", SOURCE, Path("/p"), has_audio=False)
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "-map"] == ["0:v:0"]


def test_the_luma_scan_decodes_one_window_as_small_grey_frames_on_stdout() -> None:
    args = luma_scan_args("ffmpeg", SOURCE, 650, 2000)

    assert_opens_only_a_local_mp4(args)
    before_input = args[: args.index("-i")]
    assert (option(before_input, "-ss"), option(before_input, "-t")) == ("0.650", "2.000")
    assert "fps=2" in option(args, "-filter_complex")
    assert "scale=32:32" in option(args, "-filter_complex")
    assert "format=gray" in option(args, "-filter_complex")
    assert option(args, "-f") == "rawvideo"
    assert "pipe:1" in args


def test_the_poster_command_writes_one_full_size_jpeg_at_the_instant() -> None:
    args = poster_args("ffmpeg", SOURCE, 1650, Path("/p/poster.jpg"))

    assert_opens_only_a_local_mp4(args)
    assert option(args[: args.index("-i")], "-ss") == "1.650"
    assert (option(args, "-frames:v"), option(args, "-q:v")) == ("1", "3")
    assert "scale" not in " ".join(args)
    assert "/p/poster.jpg" in args


def test_the_sprite_command_tiles_keyframes_only() -> None:
    layout = SpriteLayout(intervalSeconds=4, tiles=12, columns=10, rows=2, tileWidth=160, tileHeight=90)

    args = sprite_args("ffmpeg", SOURCE, layout, Path("/p/thumbnails/sprite.jpg"))

    assert_opens_only_a_local_mp4(args)
    assert option(args[: args.index("-i")], "-skip_frame") == "nokey"
    graph = option(args, "-filter_complex")
    assert "fps=1/4:eof_action=pass" in graph
    assert "scale=160:90" in graph
    assert "tile=10x2" in graph
    assert option(args, "-frames:v") == "1"


# --- failure messages -----------------------------------------------------------------------------------------------


def test_a_failure_message_keeps_what_failed_and_the_end_of_the_detail() -> None:
    assert failure_message("the poster cannot be drawn") == "the poster cannot be drawn"
    assert failure_message("x", "Invalid data found") == "x: Invalid data found"
    long = failure_message("rendition 720p cannot be remuxed", "A" * 1000 + "the real reason")
    assert len(long) == ERROR_MESSAGE_CHARS
    assert long.startswith("rendition 720p cannot be remuxed: AAA")
    assert long.endswith("the real reason")
