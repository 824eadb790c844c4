"""The ffmpeg command the transcoder builds, checked argument by argument without running ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.common.renditions import Rendition
from functions.contracts.fanout import EncodePlan, FanOutMessage, PlannedRendition, plan_for
from functions.contracts.jobs import Probe
from functions.contracts.media import DEMUXER_WHITELIST
from functions.transcode.service import EncoderSettings, keyframe_interval, transcode_args

SOURCE = Path("/tmp/transcode-x/source")
OUTPUT = Path("/tmp/transcode-x/720p.mp4")
PLAN_720P = EncodePlan(name="720p", width=1280, height=720, maxVideoBitrateKbps=3000, audioBitrateKbps=128)
MP4_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"


def probe(**overrides: object) -> Probe:
    fields: dict[str, object] = {
        "durationMs": 2000,
        "hasAudio": True,
        "rotation": 0,
        "frameRate": 30.0,
        "width": 1920,
        "height": 1080,
        "formatName": MP4_DEMUXER,
    }
    return Probe(**(fields | overrides))


def args_for(
    source_probe: Probe | None = None, plan: EncodePlan = PLAN_720P, encoder: EncoderSettings | None = None
) -> list[str]:
    return transcode_args(
        "ffmpeg",
        SOURCE,
        OUTPUT,
        plan=plan,
        probe=source_probe or probe(),
        encoder=encoder or EncoderSettings(preset="veryfast", crf=23, threads=2),
    )


def option(args: list[str], name: str) -> str:
    """The value following `name`; fails when the option is missing or repeated."""
    positions = [i for i, arg in enumerate(args) if arg == name]
    assert len(positions) == 1, f"{name} appears {len(positions)} times in {args}"
    return args[positions[0] + 1]


def maps(args: list[str]) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == "-map"]


def test_typical_command_is_exactly_the_documented_one() -> None:
    # GIVEN a 1080p30 source with audio and the 720p plan WHEN the command is built THEN it is this argv
    assert args_for() == [
        "ffmpeg",
        "-format_whitelist",
        MP4_DEMUXER,
        "-protocol_whitelist",
        "file",
        "-i",
        str(SOURCE),
        "-filter_complex",
        "[0:v:0]scale=1280:720[s0];[s0]setsar=1[s1]",
        "-map",
        "[s1]",
        "-map",
        "0:a:0",
        "-f",
        "mp4",
        "-ac",
        "2",
        "-b:a",
        "128k",
        "-bufsize",
        "6000k",
        "-c:a",
        "aac",
        "-c:v",
        "libx264",
        "-crf",
        "23",
        "-force_key_frames",
        "expr:gte(t,n_forced*2)",
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-map_metadata",
        "-1",
        "-maxrate",
        "3000k",
        "-movflags",
        "+faststart",
        "-pix_fmt",
        "yuv420p",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
        "-sc_threshold",
        "0",
        "-threads",
        "2",
        str(OUTPUT),
        "-nostdin",
        "-loglevel",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        "-y",
    ]


def test_video_is_h264_high_yuv420p_in_a_faststart_mp4() -> None:
    args = args_for()
    assert option(args, "-c:v") == "libx264"
    assert option(args, "-profile:v") == "high"
    assert option(args, "-pix_fmt") == "yuv420p"
    assert option(args, "-movflags") == "+faststart"
    assert option(args, "-f") == "mp4"
    assert args[-8] == str(OUTPUT)


def test_input_is_restricted_to_local_files_and_the_probed_demuxer() -> None:
    args = args_for()
    # Input options must precede -i to apply to the input.
    input_at = args.index("-i")
    assert args[input_at + 1] == str(SOURCE)
    assert args.index("-protocol_whitelist") < input_at
    assert option(args, "-protocol_whitelist") == "file"
    assert option(args, "-format_whitelist") == MP4_DEMUXER


def test_input_without_probed_demuxer_gets_the_default_allow_list() -> None:
    args = args_for(probe(formatName=None))
    assert option(args, "-format_whitelist") == DEMUXER_WHITELIST
    assert "hls" not in DEMUXER_WHITELIST.split(",")
    assert "concat" not in DEMUXER_WHITELIST.split(",")


def test_bitrate_is_capped_per_rendition_under_crf() -> None:
    plan = EncodePlan(name="1080p", width=1920, height=1080, maxVideoBitrateKbps=6000, audioBitrateKbps=160)
    args = args_for(plan=plan, encoder=EncoderSettings(preset="faster", crf=21, threads=4))
    assert option(args, "-maxrate") == "6000k"
    assert option(args, "-bufsize") == "12000k"
    assert option(args, "-crf") == "21"
    assert option(args, "-preset") == "faster"
    assert option(args, "-threads") == "4"
    assert option(args, "-b:a") == "160k"


@pytest.mark.parametrize(
    ("frame_rate", "keyint"),
    [(30.0, 60), (29.97, 60), (25.0, 50), (23.976, 48), (59.94, 120), (12.5, 25), (None, 60), (0.0, 60)],
)
def test_gop_is_two_seconds_of_frames_without_scene_cuts(frame_rate: float | None, keyint: int) -> None:
    assert keyframe_interval(frame_rate) == keyint
    args = args_for(probe(frameRate=frame_rate))
    assert option(args, "-g") == str(keyint)
    assert option(args, "-keyint_min") == str(keyint)
    assert option(args, "-sc_threshold") == "0"
    assert option(args, "-force_key_frames") == "expr:gte(t,n_forced*2)"


def test_scales_to_the_planned_display_size_with_square_pixels() -> None:
    plan = EncodePlan(name="480p", width=270, height=480, maxVideoBitrateKbps=1500, audioBitrateKbps=96)
    args = args_for(probe(rotation=90, width=360, height=640), plan=plan)
    # No transpose: ffmpeg autorotates while decoding, and the plan is already display-oriented.
    assert option(args, "-filter_complex") == "[0:v:0]scale=270:480[s0];[s0]setsar=1[s1]"
    assert "transpose" not in " ".join(args)
    assert "-noautorotate" not in args


def test_maps_first_video_and_first_audio_when_source_has_audio() -> None:
    args = args_for(probe(hasAudio=True))
    assert maps(args) == ["[s1]", "0:a:0"]
    assert option(args, "-c:a") == "aac"
    assert option(args, "-ac") == "2"
    assert "-an" not in args


def test_no_audio_stream_when_source_has_none() -> None:
    args = args_for(probe(hasAudio=False, audioCodec=None))
    assert maps(args) == ["[s1]"]
    assert "-an" in args
    assert not {"-c:a", "-b:a", "-ac"} & set(args)


def test_uploader_metadata_is_dropped_and_progress_goes_to_stdout() -> None:
    args = args_for()
    assert option(args, "-map_metadata") == "-1"
    assert option(args, "-progress") == "pipe:1"
    assert "-nostdin" in args
    assert args[-1] == "-y"


RENDITION_720P = Rendition(name="720p", height=720, maxVideoBitrateKbps=3000, audioBitrateKbps=128)


def message_with(*renditions: PlannedRendition) -> FanOutMessage:
    return FanOutMessage(
        jobId="job-1",
        ownerId="user-1",
        source={"bucket": "b", "key": "uploads/job-1/source"},
        probe=probe(),
        renditions=list(renditions),
    )


def test_plan_is_this_functions_entry_of_the_message() -> None:
    message = message_with(
        PlannedRendition(name="1080p", width=1920, height=1080, maxVideoBitrateKbps=6000, audioBitrateKbps=160),
        PlannedRendition(name="720p", width=1280, height=720, maxVideoBitrateKbps=2500, audioBitrateKbps=96),
    )
    assert plan_for(message, RENDITION_720P) == EncodePlan("720p", 1280, 720, 2500, 96)


def test_plan_is_none_when_the_message_does_not_list_this_rendition() -> None:
    message = message_with(PlannedRendition(name="1080p", width=1920, height=1080))
    assert plan_for(message, RENDITION_720P) is None


def test_plan_takes_missing_bitrates_from_the_function_and_rounds_odd_sizes_down() -> None:
    message = message_with(PlannedRendition(name="720p", width=1281, height=719))
    assert plan_for(message, RENDITION_720P) == EncodePlan("720p", 1280, 718, 3000, 128)
