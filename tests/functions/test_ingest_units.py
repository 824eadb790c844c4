"""Ingest's pure parts: rendition planning, engine choice, limits, probe summary, notification parsing, settings."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from functions.common import job_state
from functions.common.renditions import DEFAULT_RENDITIONS, Rendition, renditions_to_json
from functions.ingest.engine import (
    Engine,
    EngineSetting,
    LambdaCapacity,
    choose_engine,
    estimated_encode_seconds,
    lambda_capacity,
    lambda_vcpus,
    route,
)
from functions.ingest.fanout import accepted_detail, fanout_message
from functions.ingest.limits import Limits, check_media, check_size
from functions.ingest.notifications import (
    Ignored,
    IngestQueueRecord,
    S3Notification,
    S3NotificationRecord,
    S3TestEvent,
    Upload,
    upload_from_record,
)
from functions.ingest.planning import plan_renditions, queued_names
from functions.ingest.probe import (
    ALLOWED_FORMATS,
    FORMAT_WHITELIST,
    classify_probe_failure,
    decode_tail_args,
    ffprobe_args,
    last_frame_seconds,
    summarize,
    tool_failure_detail,
)
from functions.ingest.rejections import RejectionCode, UploadRejected
from functions.ingest.settings import IngestSettings, SettingsError
from tests.functions.conftest import FIXTURES

LADDER = tuple(DEFAULT_RENDITIONS)  # 720p (3000/128), 1080p (6000/160)


def _sizes(plan: list[dict[str, Any]]) -> dict[str, tuple[str, int | None, int | None]]:
    return {item["name"]: (item["status"], item["width"], item["height"]) for item in plan}


# --------------------------------------------------------------------------------------------------------------
# Rendition planning
# --------------------------------------------------------------------------------------------------------------


def test_full_hd_source_gets_every_rendition_with_its_bitrates() -> None:
    assert plan_renditions(1920, 1080, LADDER) == [
        {
            "name": "720p",
            "status": "QUEUED",
            "width": 1280,
            "height": 720,
            "maxVideoBitrateKbps": 3000,
            "audioBitrateKbps": 128,
        },
        {
            "name": "1080p",
            "status": "QUEUED",
            "width": 1920,
            "height": 1080,
            "maxVideoBitrateKbps": 6000,
            "audioBitrateKbps": 160,
        },
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ((3840, 2160), {"720p": ("QUEUED", 1280, 720), "1080p": ("QUEUED", 1920, 1080)}),
        ((1280, 720), {"720p": ("QUEUED", 1280, 720), "1080p": ("SKIPPED", None, None)}),
        ((1080, 1920), {"720p": ("QUEUED", 720, 1280), "1080p": ("QUEUED", 1080, 1920)}),
        ((720, 1280), {"720p": ("QUEUED", 720, 1280), "1080p": ("SKIPPED", None, None)}),
        ((1080, 1080), {"720p": ("QUEUED", 720, 720), "1080p": ("QUEUED", 1080, 1080)}),
        ((2560, 1080), {"720p": ("QUEUED", 1706, 720), "1080p": ("QUEUED", 2560, 1080)}),
        ((1440, 1080), {"720p": ("QUEUED", 960, 720), "1080p": ("QUEUED", 1440, 1080)}),
        ((1281, 721), {"720p": ("QUEUED", 1280, 720), "1080p": ("SKIPPED", None, None)}),
        ((721, 1281), {"720p": ("QUEUED", 720, 1280), "1080p": ("SKIPPED", None, None)}),
    ],
    ids=["4k", "720p", "portrait-1080", "portrait-720", "square", "ultrawide", "4:3", "odd", "odd-portrait"],
)
def test_rendition_height_applies_to_the_short_side(
    source: tuple[int, int], expected: dict[str, tuple[str, int | None, int | None]]
) -> None:
    assert _sizes(plan_renditions(*source, LADDER)) == expected


def test_skipped_rendition_says_why() -> None:
    skipped = plan_renditions(1280, 720, LADDER)[1]

    assert skipped == {
        "name": "1080p",
        "status": "SKIPPED",
        "width": None,
        "height": None,
        "maxVideoBitrateKbps": 6000,
        "audioBitrateKbps": 160,
        "reason": "source is 720p; no upscaling",
    }


@pytest.mark.parametrize(
    ("source", "expected_720p"),
    [((854, 480), (854, 480)), ((640, 480), (640, 480)), ((479, 271), (478, 270)), ((271, 479), (270, 478))],
    ids=["480p", "4:3-480p", "odd", "odd-portrait"],
)
def test_source_below_the_ladder_keeps_the_lowest_rendition_at_its_own_size(
    source: tuple[int, int], expected_720p: tuple[int, int]
) -> None:
    plan = plan_renditions(*source, LADDER)

    lowest, highest = plan
    assert (lowest["status"], lowest["width"], lowest["height"]) == ("QUEUED", *expected_720p)
    assert lowest["reason"].startswith(f"source is {min(source)}p, below every rendition")
    assert (lowest["maxVideoBitrateKbps"], lowest["audioBitrateKbps"]) == (3000, 128)
    assert (highest["status"], highest["reason"]) == ("SKIPPED", f"source is {min(source)}p; no upscaling")


def test_partial_ladder_is_skipped_only_above_the_source() -> None:
    ladder = (
        Rendition(name="360p", height=360, maxVideoBitrateKbps=800, audioBitrateKbps=96),
        Rendition(name="720p", height=720, maxVideoBitrateKbps=3000, audioBitrateKbps=128),
        Rendition(name="1080p", height=1080, maxVideoBitrateKbps=6000, audioBitrateKbps=160),
    )

    plan = plan_renditions(1280, 720, ladder)

    assert _sizes(plan) == {
        "360p": ("QUEUED", 640, 360),
        "720p": ("QUEUED", 1280, 720),
        "1080p": ("SKIPPED", None, None),
    }
    assert [item["name"] for item in plan] == ["360p", "720p", "1080p"]
    assert "reason" not in plan[0] and "reason" not in plan[1]
    assert queued_names(plan) == ["360p", "720p"]


@pytest.mark.parametrize("width", [2, 3, 97, 320, 641, 853, 1279, 1280, 1919, 1920, 2161, 3840])
@pytest.mark.parametrize("height", [2, 5, 181, 240, 479, 480, 719, 720, 1079, 1080, 1920, 2160])
def test_every_plan_is_even_oriented_and_never_upscaled(width: int, height: int) -> None:
    plan = plan_renditions(width, height, LADDER)

    queued = [item for item in plan if item["status"] == "QUEUED"]
    assert queued, "a valid source always gets at least one rendition"
    for item in queued:
        assert item["width"] % 2 == 0 and item["height"] % 2 == 0
        # Orientation is never flipped (a near-square frame may round to square).
        assert not (item["width"] > item["height"] and width < height)
        assert not (item["width"] < item["height"] and width > height)
        assert min(item["width"], item["height"]) <= max(2, min(width, height))
        aspect, planned_aspect = width / height, item["width"] / item["height"]
        assert abs(planned_aspect - aspect) / aspect < 0.05 or min(item["width"], item["height"]) < 16


def test_plan_refuses_an_empty_frame() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_renditions(0, 1080, LADDER)


# --------------------------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "duration_ms", "expected"),
    [
        (EngineSetting.AUTO, 599_999, Engine.LAMBDA),
        (EngineSetting.AUTO, 600_000, Engine.LAMBDA),
        (EngineSetting.AUTO, 600_001, Engine.MEDIACONVERT),
        (EngineSetting.LAMBDA, 7_200_000, Engine.LAMBDA),
        (EngineSetting.MEDIACONVERT, 1_000, Engine.MEDIACONVERT),
    ],
)
def test_engine_choice(setting: EngineSetting, duration_ms: int, expected: Engine) -> None:
    assert choose_engine(setting, duration_ms=duration_ms, threshold_seconds=600) is expected


def test_lambda_vcpus_follow_memory() -> None:
    assert lambda_vcpus(1769) == 1.0
    assert lambda_vcpus(3538) == 2.0
    assert lambda_vcpus(10_240) == pytest.approx(5.79, abs=0.01)


def _planned(*sizes: tuple[int, int], skipped: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    items = [{"status": "QUEUED", "width": w, "height": h} for w, h in sizes]
    if skipped:
        items.append({"status": "SKIPPED", "width": skipped[0], "height": skipped[1]})
    return items


def test_the_estimate_is_source_plus_biggest_queued_rendition_over_the_throughput() -> None:
    # 10 s at 25 fps of a 2 Mpx source to a 1 Mpx rendition: 250 frames x 3 Mpx at 75 Mpx/s.
    planned = _planned((1000, 1000), (500, 500), skipped=(4000, 4000))
    estimate = estimated_encode_seconds(
        duration_ms=10_000, frame_rate=25.0, source_pixels=2_000_000, planned=planned, megapixels_per_second=75.0
    )
    assert estimate == pytest.approx(10.0)
    fallback = estimated_encode_seconds(
        duration_ms=10_000, frame_rate=None, source_pixels=2_000_000, planned=planned, megapixels_per_second=75.0
    )
    assert fallback == pytest.approx(12.0)  # 30 fps assumed
    nothing = estimated_encode_seconds(
        duration_ms=10_000, frame_rate=25.0, source_pixels=2_000_000, planned=[], megapixels_per_second=75.0
    )
    assert nothing == 0.0


CAPACITY = lambda_capacity(megapixels_per_vcpu_second=45, memory_mb=3538, timeout_seconds=900, reserve_seconds=30)


@pytest.mark.parametrize(
    ("setting", "duration_ms", "estimate", "expected"),
    [
        (EngineSetting.AUTO, 60_000, 870.0, Engine.LAMBDA),  # exactly the budget still fits
        (EngineSetting.AUTO, 60_000, 870.1, Engine.MEDIACONVERT),  # short but heavy (e.g. 4K60): the ceiling
        (EngineSetting.AUTO, 600_001, 10.0, Engine.MEDIACONVERT),  # over the threshold
        (EngineSetting.LAMBDA, 600_001, 870.0, Engine.LAMBDA),
        (EngineSetting.MEDIACONVERT, 1_000, 1.0, Engine.MEDIACONVERT),
        (EngineSetting.MEDIACONVERT, 1_000, 5000.0, Engine.MEDIACONVERT),
    ],
)
def test_routing_never_sends_lambda_more_than_its_budget(
    setting: EngineSetting, duration_ms: int, estimate: float, expected: Engine
) -> None:
    routed = route(
        setting, duration_ms=duration_ms, threshold_seconds=600, estimate_seconds=estimate, capacity=CAPACITY
    )
    assert routed is expected


def test_a_stack_fixed_on_lambda_rejects_what_lambda_cannot_finish() -> None:
    probe = {"durationMs": 600_000}
    with pytest.raises(UploadRejected) as raised:
        route(
            EngineSetting.LAMBDA,
            duration_ms=600_000,
            threshold_seconds=600,
            estimate_seconds=1234.4,
            capacity=CAPACITY,
            probe=probe,
        )
    assert raised.value.code is RejectionCode.DURATION_TOO_LONG
    assert raised.value.message == (
        "the video would take about 1234 s to encode; this service encodes at most 870 s of work per rendition"
    )
    assert raised.value.probe == probe


# --------------------------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------------------------

LIMITS = Limits(max_upload_bytes=1000, max_duration_seconds=60, max_width=3840, max_height=2160)


def _probe(**changes: Any) -> dict[str, Any]:
    return {"durationMs": 10_000, "width": 1920, "height": 1080, **changes}


@pytest.mark.parametrize(("size", "code"), [(0, RejectionCode.EMPTY_UPLOAD), (1001, RejectionCode.UPLOAD_TOO_LARGE)])
def test_size_limits_reject(size: int, code: RejectionCode) -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_size(size, LIMITS)
    assert rejected.value.code is code


def test_size_at_the_limit_passes() -> None:
    check_size(1000, LIMITS)


def test_duration_limit_is_inclusive_and_keeps_the_probe() -> None:
    check_media(_probe(durationMs=60_000), LIMITS)
    probe = _probe(durationMs=60_001)

    with pytest.raises(UploadRejected) as rejected:
        check_media(probe, LIMITS)

    assert (rejected.value.code, rejected.value.probe) == (RejectionCode.DURATION_TOO_LONG, probe)
    assert "60 s" in rejected.value.message


@pytest.mark.parametrize("size", [(3840, 2160), (2160, 3840), (1080, 1920)])
def test_resolution_limit_ignores_orientation(size: tuple[int, int]) -> None:
    check_media(_probe(width=size[0], height=size[1]), LIMITS)


@pytest.mark.parametrize("size", [(4096, 2160), (3840, 2200), (2200, 3840), (2160, 4096)])
def test_resolution_beyond_the_box_rejects(size: tuple[int, int]) -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_media(_probe(width=size[0], height=size[1]), LIMITS)
    assert rejected.value.code is RejectionCode.RESOLUTION_TOO_HIGH
    assert f"{size[0]}x{size[1]}" in rejected.value.message


# --------------------------------------------------------------------------------------------------------------
# Probe summary (ffprobe JSON in, the job's probe out)
# --------------------------------------------------------------------------------------------------------------


def _ffprobe_json(**video_changes: Any) -> dict[str, Any]:
    video = {
        "index": 0,
        "codec_name": "h264",
        "codec_type": "video",
        "width": 1920,
        "height": 1080,
        "sample_aspect_ratio": "1:1",
        "avg_frame_rate": "30000/1001",
        "r_frame_rate": "30000/1001",
        "start_time": "0.000000",
        "duration": "12.012000",
        "disposition": {"default": 1, "attached_pic": 0},
    }
    video.update(video_changes)
    audio = {"index": 1, "codec_name": "aac", "codec_type": "audio", "duration": "12.000000"}
    return {
        "streams": [video, audio],
        "format": {
            "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
            "start_time": "0.000000",
            "duration": "12.034000",
            "bit_rate": "4500000",
        },
    }


def test_summary_has_the_contract_shape() -> None:
    media = summarize(_ffprobe_json(), size_bytes=6_750_000)

    assert media.probe == {
        "durationMs": 12_034,
        "width": 1920,
        "height": 1080,
        "codedWidth": 1920,
        "codedHeight": 1080,
        "rotation": 0,
        "videoCodec": "h264",
        "audioCodec": "aac",
        "hasAudio": True,
        "frameRate": 29.97,
        "formatName": "mov,mp4,m4a,3gp,3g2,mj2",
        "bitRate": 4_500_000,
        "sizeBytes": 6_750_000,
    }
    assert (media.video_stream_index, media.video_end_seconds) == (0, pytest.approx(12.012))


@pytest.mark.parametrize(
    ("side_data", "tags", "rotation", "display"),
    [
        ([{"side_data_type": "Display Matrix", "rotation": 90}], {}, 90, (1080, 1920)),
        ([{"side_data_type": "Display Matrix", "rotation": -90}], {}, 270, (1080, 1920)),
        ([{"side_data_type": "Display Matrix", "rotation": 180}], {}, 180, (1920, 1080)),
        ([{"side_data_type": "Display Matrix", "rotation": -270.0}], {}, 90, (1080, 1920)),
        ([], {"rotate": "90"}, 270, (1080, 1920)),
        ([], {"rotate": "180"}, 180, (1920, 1080)),
        ([{"side_data_type": "Content light level metadata"}], {}, 0, (1920, 1080)),
    ],
    ids=["matrix-90", "matrix-minus-90", "matrix-180", "matrix-minus-270", "legacy-tag-90", "legacy-tag-180", "none"],
)
def test_rotation_is_read_and_the_display_size_follows_it(
    side_data: list[dict[str, Any]], tags: dict[str, str], rotation: int, display: tuple[int, int]
) -> None:
    probe = summarize(_ffprobe_json(side_data_list=side_data, tags=tags), size_bytes=1).probe

    assert (probe["rotation"], probe["width"], probe["height"]) == (rotation, *display)
    assert (probe["codedWidth"], probe["codedHeight"]) == (1920, 1080)


def test_anamorphic_source_is_displayed_at_its_aspect_ratio() -> None:
    probe = summarize(_ffprobe_json(width=720, height=480, sample_aspect_ratio="8:9"), size_bytes=1).probe

    assert (probe["width"], probe["height"], probe["codedWidth"]) == (640, 480, 720)


def test_cover_art_is_not_a_video_stream() -> None:
    raw = _ffprobe_json(codec_name="mjpeg", disposition={"attached_pic": 1})

    with pytest.raises(UploadRejected) as rejected:
        summarize(raw, size_bytes=1)

    assert rejected.value.code is RejectionCode.NO_VIDEO_STREAM


def test_video_after_cover_art_is_found() -> None:
    raw = _ffprobe_json(codec_name="mjpeg", disposition={"attached_pic": 1})
    raw["streams"].append({**copy.deepcopy(_ffprobe_json()["streams"][0]), "index": 2, "codec_name": "hevc"})

    media = summarize(raw, size_bytes=1)

    assert (media.video_stream_index, media.probe["videoCodec"]) == (2, "hevc")


def test_audio_only_has_no_video_stream() -> None:
    raw = _ffprobe_json()
    raw["streams"] = raw["streams"][1:]

    with pytest.raises(UploadRejected) as rejected:
        summarize(raw, size_bytes=1)

    assert rejected.value.code is RejectionCode.NO_VIDEO_STREAM


@pytest.mark.parametrize("format_name", ["hls", "concat", "dash", "image2", "png_pipe", "tty", "lavfi", ""])
def test_format_outside_the_allow_list_is_unsupported(format_name: str) -> None:
    raw = _ffprobe_json()
    raw["format"]["format_name"] = format_name

    with pytest.raises(UploadRejected) as rejected:
        summarize(raw, size_bytes=1)

    assert rejected.value.code is RejectionCode.UNSUPPORTED_FORMAT


@pytest.mark.parametrize(
    ("video_changes", "format_changes"),
    [
        ({"duration": None}, {"duration": None}),
        ({"duration": "N/A"}, {"duration": "0.000000"}),
        ({"duration": "nan"}, {"duration": "inf"}),
        ({"width": 0}, {}),
        ({"height": None}, {}),
    ],
    ids=["no-duration", "zero-duration", "not-finite", "zero-width", "no-height"],
)
def test_unreadable_duration_or_size_is_corrupt(video_changes: dict[str, Any], format_changes: dict[str, Any]) -> None:
    raw = _ffprobe_json(**video_changes)
    raw["format"].update(format_changes)

    with pytest.raises(UploadRejected) as rejected:
        summarize(raw, size_bytes=1)

    assert rejected.value.code is RejectionCode.CORRUPT_MEDIA


def test_stream_duration_stands_in_for_a_missing_container_duration() -> None:
    raw = _ffprobe_json()
    del raw["format"]["duration"], raw["format"]["bit_rate"]

    probe = summarize(raw, size_bytes=1).probe

    assert (probe["durationMs"], probe["bitRate"]) == (12_012, None)


def test_frame_rate_falls_back_to_the_stream_rate() -> None:
    assert summarize(_ffprobe_json(avg_frame_rate="0/0", r_frame_rate="25/1"), size_bytes=1).probe["frameRate"] == 25
    assert summarize(_ffprobe_json(avg_frame_rate="0/0", r_frame_rate="0/0"), size_bytes=1).probe["frameRate"] == 0


def test_video_end_counts_from_the_stream_start() -> None:
    """MPEG-TS timestamps start where the broadcast clock was, not at zero."""
    raw = _ffprobe_json(start_time="1.400000", duration=None)
    raw["format"].update(format_name="mpegts", start_time="1.400000", duration="4.000000")

    media = summarize(raw, size_bytes=1)

    assert media.video_end_seconds == pytest.approx(5.4)


# --------------------------------------------------------------------------------------------------------------
# ffprobe failures and command lines
# --------------------------------------------------------------------------------------------------------------

HLS_REFUSED = """[hls @ 0x982b340] [debug] Format hls probed with size=2048 and score=100
[hls @ 0x982b340] [error] Format not on whitelist 'mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv'
[error] file:/tmp/ingest-x/source: Invalid argument"""
MP4_WITHOUT_INDEX = """[mov @ 0x1] [debug] Format mov,mp4,m4a,3gp,3g2,mj2 probed with size=2048 and score=100
[mov @ 0x1] [error] moov atom not found
[error] file:/tmp/ingest-x/source: Invalid data found when processing input"""
NOTHING_RECOGNISED = "[error] file:/tmp/ingest-x/source: Invalid data found when processing input"
GUESSED = """[mpegts @ 0x1] [debug] Format mpegts probed with size=2048 and score=2
[error] file:/tmp/ingest-x/source: Invalid data found when processing input"""


@pytest.mark.parametrize(
    ("stderr", "code", "says"),
    [
        (HLS_REFUSED, RejectionCode.UNSUPPORTED_FORMAT, "hls"),
        (MP4_WITHOUT_INDEX, RejectionCode.CORRUPT_MEDIA, "truncated"),
        (NOTHING_RECOGNISED, RejectionCode.UNSUPPORTED_FORMAT, "not a video"),
        (GUESSED, RejectionCode.UNSUPPORTED_FORMAT, "not a video"),
    ],
    ids=["playlist", "truncated", "text", "low-score-guess"],
)
def test_probe_failure_is_classified(stderr: str, code: RejectionCode, says: str) -> None:
    rejection = classify_probe_failure(stderr)

    assert rejection.code is code
    assert says in rejection.message
    assert "/tmp" not in rejection.message
    assert rejection.detail  # the log keeps ffprobe's own words


def test_whitelist_holds_containers_only() -> None:
    demuxers = set(FORMAT_WHITELIST.split(","))
    assert {"mov", "mp4", "matroska", "webm", "avi", "mpegts", "flv"} <= demuxers
    assert not demuxers & {"hls", "applehttp", "dash", "concat", "image2", "tty", "lavfi", "data", "subfile"}
    assert not any(name.endswith("_pipe") for name in demuxers)
    assert set(ALLOWED_FORMATS) == {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpegts", "flv"}


@pytest.mark.parametrize(
    "args",
    [ffprobe_args(Path("/tmp/x/source")), decode_tail_args(Path("/tmp/x/source"), stream_index=0, from_seconds=1.5)],
    ids=["probe", "decode-tail"],
)
def test_media_tools_read_only_the_local_file_with_allowed_demuxers(args: list[str]) -> None:
    assert args[args.index("-protocol_whitelist") + 1] == "file"
    assert args[args.index("-format_whitelist") + 1] == FORMAT_WHITELIST
    assert args[-1] == "file:/tmp/x/source"
    assert "-f" not in args  # the demuxer is found by probing content, then checked against the whitelist


@pytest.mark.parametrize(
    ("output", "last"),
    [
        pytest.param(
            json.dumps(
                {
                    "frames": [
                        {"best_effort_timestamp_time": "3.900000", "side_data_list": [{}]},
                        {"best_effort_timestamp_time": "3.966667", "side_data_list": [{"side_data_type": "SEI"}]},
                    ]
                }
            ),
            3.966667,
            id="side-data-on-every-frame",
        ),
        pytest.param(
            json.dumps({"frames": [{"best_effort_timestamp_time": "N/A", "pts_time": "1.5"}, {"pkt_dts_time": "1.6"}]}),
            1.6,
            id="falls-back-to-pts-then-dts",
        ),
        pytest.param(json.dumps({"frames": [{"best_effort_timestamp_time": "N/A"}]}), None, id="no-time-at-all"),
        pytest.param(json.dumps({"frames": []}), None, id="no-frames"),
        pytest.param(json.dumps({}), None, id="nothing-decoded"),
        pytest.param("", None, id="empty-output"),
        pytest.param('{"frames": [', None, id="cut-off-output"),
        pytest.param("[1, 2]", None, id="not-an-object"),
    ],
)
def test_last_frame_time_is_read_from_the_tail_decode(output: str, last: float | None) -> None:
    assert last_frame_seconds(output) == last


def test_a_silent_tool_failure_still_says_how_the_tool_ended() -> None:
    killed = subprocess.CompletedProcess(["/opt/bin/ffprobe", "-i", "x"], returncode=-11, stdout="", stderr="")
    failed = subprocess.CompletedProcess(["ffprobe"], returncode=1, stdout="", stderr="[error] Invalid data\n")

    assert tool_failure_detail(killed) == "ffprobe killed by signal 11, no error output; stdout began ''"
    assert tool_failure_detail(failed) == "ffprobe exited 1: [error] Invalid data"


# --------------------------------------------------------------------------------------------------------------
# Notifications
# --------------------------------------------------------------------------------------------------------------


def _fixture_record() -> dict[str, Any]:
    return json.loads((FIXTURES / "ingest_s3_event.json").read_text())["Records"][0]


def _s3_record(**object_changes: Any) -> S3NotificationRecord:
    notification = json.loads(_fixture_record()["body"])
    notification["Records"][0]["s3"]["object"].update(object_changes)
    return S3Notification.model_validate(notification).Records[0]


def test_fixture_parses_as_an_ingest_queue_record() -> None:
    record = IngestQueueRecord.model_validate(_fixture_record())

    assert isinstance(record.body, S3Notification)
    assert record.body.Records[0].s3.object_.key == "uploads/01JD2Y5V7Q8ZK3M4N5P6R7S8T9/source"
    assert record.attributes.ApproximateReceiveCount == "1"


def test_s3_test_event_parses_as_such() -> None:
    record = IngestQueueRecord.model_validate(
        json.loads((FIXTURES / "ingest_s3_test_event.json").read_text())["Records"][0]
    )

    assert isinstance(record.body, S3TestEvent)


def test_emulated_s3_notification_without_identity_fields_parses() -> None:
    """The local cloud's S3 sends only eventVersion, eventSource, awsRegion, eventTime, eventName and s3."""
    body = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-24T02:30:00.000Z",
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "ingest",
                    "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
                    "object": {"key": quote_plus("uploads/J1/source"), "size": 3, "eTag": "abc"},
                },
            }
        ]
    }
    record = IngestQueueRecord.model_validate({**_fixture_record(), "body": json.dumps(body)})

    assert upload_from_record(record.body.Records[0], uploads_bucket="uploads") == Upload(
        job_id="J1", bucket="uploads", key="uploads/J1/source", etag="abc"
    )


@pytest.mark.parametrize(
    "key", ["uploads/01JD2Y5V7Q8ZK3M4N5P6R7S8T9/source", "uploads%2F01JD2Y5V7Q8ZK3M4N5P6R7S8T9%2Fsource"]
)
def test_upload_key_is_decoded_and_names_the_job(key: str) -> None:
    upload = upload_from_record(_s3_record(key=key), uploads_bucket="test-uploads")

    assert upload == Upload(
        job_id="01JD2Y5V7Q8ZK3M4N5P6R7S8T9",
        bucket="test-uploads",
        key="uploads/01JD2Y5V7Q8ZK3M4N5P6R7S8T9/source",
        etag="d41d8cd98f00b204e9800998ecf8427e",
    )


@pytest.mark.parametrize(
    "key",
    [
        "uploads/J1/source/",
        "uploads/J1/source.mp4",
        "uploads/J1/other",
        "uploads/../source",
        "uploads/a/b/source",
        "uploads/J%201/source",
        "uploads/-J1/source",
        "prefix/uploads/J1/source",
        "",
    ],
)
def test_other_keys_are_ignored(key: str) -> None:
    assert isinstance(upload_from_record(_s3_record(key=key), uploads_bucket="test-uploads"), Ignored)


def test_other_bucket_and_other_events_are_ignored() -> None:
    record = _s3_record()
    assert isinstance(upload_from_record(record, uploads_bucket="another-bucket"), Ignored)
    removed = record.model_copy(update={"eventName": "ObjectRemoved:Delete"})
    assert isinstance(upload_from_record(removed, uploads_bucket="test-uploads"), Ignored)


def test_notification_without_records_is_not_a_notification() -> None:
    with pytest.raises(ValueError, match="Records"):
        IngestQueueRecord.model_validate({**_fixture_record(), "body": json.dumps({"hello": "world"})})


# --------------------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------------------

ENV = {
    "JOBS_TABLE_NAME": "jobs",
    "EVENT_BUS_NAME": "bus",
    "UPLOADS_BUCKET": "uploads",
    "VALIDATED_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:validated",
    "MAX_UPLOAD_BYTES": "5000000000",
    "MAX_DURATION_SECONDS": "3600",
    "MAX_WIDTH": "3840",
    "MAX_HEIGHT": "2160",
    "MEDIACONVERT_THRESHOLD_SECONDS": "600",
    "PROCESSING_DEADLINE_SECONDS": "7200",
    "TRANSCODE_TIMEOUT_SECONDS": "900",
    "TRANSCODE_MEMORY_MB": "3538",
    "LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND": "45",
}


def test_settings_from_the_environment() -> None:
    ladder = [{"name": "1080p", "height": 1080, "maxVideoBitrateKbps": 6000, "audioBitrateKbps": 160},
              {"name": "480p", "height": 480, "maxVideoBitrateKbps": 1200, "audioBitrateKbps": 96}]  # fmt: skip

    settings = IngestSettings.from_env({**ENV, "ENGINE": "mediaconvert", "RENDITIONS": json.dumps(ladder)})

    assert settings.limits == Limits(
        max_upload_bytes=5_000_000_000, max_duration_seconds=3600, max_width=3840, max_height=2160
    )
    assert settings.engine is EngineSetting.MEDIACONVERT
    assert [r.name for r in settings.renditions] == ["480p", "1080p"]
    assert (settings.mediaconvert_threshold_seconds, settings.processing_deadline_seconds) == (600, 7200)
    # Two vCPUs at 3,538 MB; the transcoder keeps 30 s of its 900 s back for the upload.
    assert settings.lambda_capacity == LambdaCapacity(megapixels_per_second=90.0, budget_seconds=870.0)
    assert settings.metrics_namespace == "MediaPipeline"
    assert IngestSettings.from_env({**ENV, "POWERTOOLS_METRICS_NAMESPACE": "Other"}).metrics_namespace == "Other"


def test_settings_default_to_auto_and_the_shared_ladder() -> None:
    settings = IngestSettings.from_env(ENV)

    assert (settings.engine, settings.renditions) == (EngineSetting.AUTO, tuple(DEFAULT_RENDITIONS))
    assert IngestSettings.from_env({**ENV, "RENDITIONS": renditions_to_json(LADDER)}).renditions == LADDER


def test_missing_settings_are_named() -> None:
    env = {k: v for k, v in ENV.items() if k not in ("VALIDATED_TOPIC_ARN", "MAX_WIDTH")}

    with pytest.raises(SettingsError, match="VALIDATED_TOPIC_ARN, MAX_WIDTH"):
        IngestSettings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENGINE", "ffmpeg"),
        ("MAX_WIDTH", "0"),
        ("MAX_HEIGHT", "wide"),
        ("MAX_UPLOAD_BYTES", "-5"),
        ("RENDITIONS", "[]"),
        ("TRANSCODE_TIMEOUT_SECONDS", "0"),
        ("LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND", "1.5"),
    ],
)
def test_malformed_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        IngestSettings.from_env({**ENV, name: value})


# --------------------------------------------------------------------------------------------------------------
# Fan-out message
# --------------------------------------------------------------------------------------------------------------


def _processing_job(planned: list[dict[str, Any]]) -> dict[str, Any]:
    job = job_state.new_job(
        job_id="J1", owner_id="owner-1", source={"filename": "a.mp4"}, now=1, upload_deadline=2, retention_seconds=3
    )
    validating = job_state.begin_validation(job, now=2, deadline=10)
    assert validating is not None
    probe = {"durationMs": 1000, "width": 854, "height": 480, "hasAudio": False}
    processing = job_state.begin_processing(
        validating, media_type="video", engine="lambda", probe=probe, planned=planned, now=3
    )
    assert processing is not None
    return processing


def test_fanout_lists_queued_renditions_in_plan_order() -> None:
    job = _processing_job(plan_renditions(854, 480, LADDER))

    message = fanout_message(job, bucket="uploads", key="uploads/J1/source", etag="abc")

    assert message.attributes == {
        "mediaType": {"DataType": "String", "StringValue": "video"},
        "engine": {"DataType": "String", "StringValue": "lambda"},
        "renditions": {"DataType": "String.Array", "StringValue": '["720p"]'},
    }
    assert message.body == {
        "jobId": "J1",
        "ownerId": "owner-1",
        "engine": "lambda",
        "source": {"bucket": "uploads", "key": "uploads/J1/source", "etag": "abc"},
        "probe": {"durationMs": 1000, "width": 854, "height": 480, "hasAudio": False},
        "renditions": [
            {"name": "720p", "width": 854, "height": 480, "maxVideoBitrateKbps": 3000, "audioBitrateKbps": 128}
        ],
    }
    assert accepted_detail(job) == {"jobId": "J1", "ownerId": "owner-1", "engine": "lambda", "renditions": ["720p"]}


def test_fanout_without_an_etag_names_bucket_and_key_only() -> None:
    job = _processing_job(plan_renditions(1920, 1080, LADDER))

    message = fanout_message(job, bucket="uploads", key="uploads/J1/source", etag=None)

    assert message.body["source"] == {"bucket": "uploads", "key": "uploads/J1/source"}
    assert json.loads(message.attributes["renditions"]["StringValue"]) == ["720p", "1080p"]
