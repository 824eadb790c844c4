"""The transcoder's pure parts: settings, progress milestones, reading the output back, S3 metadata, stderr tails."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from functions.common.events import DetailType, EventPublisher, EventPublishFailed
from functions.common.renditions import Rendition
from functions.transcode.ffmpeg_runner import FfmpegFailed, FfmpegTimedOut, run_ffmpeg, stderr_tail
from functions.transcode.messages import EncodePlan, FanOutMessage
from functions.transcode.output_check import (
    OutputMedia,
    OutputUnreadable,
    output_problems,
    parse_output_probe,
    stream_rotation,
)
from functions.transcode.progress import ProgressMilestones, out_time_us
from functions.transcode.settings import SettingsError, TranscodeSettings
from functions.transcode.storage import MediaStore, output_key, output_metadata, stored_rendition_from_head
from functions.transcode.transcoder import RenditionTranscoder

BASE_ENV = {
    "RENDITION": '{"name":"720p","height":720,"maxVideoBitrateKbps":3000,"audioBitrateKbps":128}',
    "OUTPUTS_BUCKET": "outputs",
    "EVENT_BUS_NAME": "bus",
}


# --- settings -------------------------------------------------------------------------------------------------


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


# --- progress -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [("out_time_us=1984000\n", 1984000), ("out_time_us=N/A", None), ("out_time_ms=1984000", None), ("frame=60", None)],
)
def test_out_time_us(line: str, expected: int | None) -> None:
    assert out_time_us(line) == expected


def test_progress_reports_each_quarter_once_and_never_100() -> None:
    milestones = ProgressMilestones(duration_ms=4000)
    lines = ["frame=1", "out_time_us=500000", "out_time_us=1000000", "out_time_us=1100000", "out_time_us=N/A"]
    lines += ["out_time_us=3100000", "out_time_us=2000000", "out_time_us=4000000", "progress=end"]
    assert [milestones.feed(line) for line in lines] == [None, None, 25, None, None, 75, None, None, None]


def test_progress_without_a_duration_reports_nothing() -> None:
    assert ProgressMilestones(duration_ms=0).feed("out_time_us=1000000") is None


# --- reading the output back ------------------------------------------------------------------------------------


def ffprobe_report(**video: object) -> dict:
    stream = {"codec_type": "video", "codec_name": "h264", "profile": "High", "pix_fmt": "yuv420p"}
    stream |= {"width": 1280, "height": 720} | video
    audio = {"codec_type": "audio", "codec_name": "aac"}
    return {"streams": [stream, audio], "format": {"duration": "2.021333", "size": "412345"}}


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


PLAN = EncodePlan(name="720p", width=1280, height=720, maxVideoBitrateKbps=3000, audioBitrateKbps=128)


def test_planned_output_has_no_problems() -> None:
    assert output_problems(parse_output_probe(ffprobe_report()), PLAN, expect_audio=True) == []


def test_output_problems_name_each_difference() -> None:
    media = parse_output_probe(ffprobe_report(codec_name="hevc", width=1280, height=718))
    assert output_problems(media, PLAN, expect_audio=False) == [
        "video codec is hevc, expected h264",
        "display size is 1280x718, expected 1280x720",
        "has a aac audio stream, expected none",
    ]


# --- S3 metadata ----------------------------------------------------------------------------------------------


def test_metadata_round_trips_through_head() -> None:
    media = parse_output_probe(ffprobe_report())
    head = {"ContentLength": 412345, "Metadata": output_metadata("job-1", "720p", media)}
    stored = stored_rendition_from_head(head, "outputs", output_key("job-1", "720p"), "job-1", "720p")
    assert stored is not None
    assert (stored.key, stored.width, stored.height, stored.durationMs, stored.bytes) == (
        "outputs/job-1/720p.mp4",
        1280,
        720,
        2021,
        412345,
    )


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"job-id": "job-2", "rendition": "720p", "width": "1280", "height": "720", "duration-ms": "2000"},
        {"job-id": "job-1", "rendition": "1080p", "width": "1280", "height": "720", "duration-ms": "2000"},
        {"job-id": "job-1", "rendition": "720p", "width": "1280", "height": "720"},
    ],
)
def test_head_of_another_jobs_or_incomplete_object_is_not_reused(metadata: dict[str, str]) -> None:
    head = {"ContentLength": 10, "Metadata": metadata}
    assert stored_rendition_from_head(head, "outputs", "outputs/job-1/720p.mp4", "job-1", "720p") is None


# --- running ffmpeg ---------------------------------------------------------------------------------------------


def test_stderr_tail_keeps_the_last_lines_that_fit() -> None:
    text = "\n".join(f"line {i}" for i in range(100)) + "\n\n"
    assert stderr_tail(text, limit=20) == "line 98\nline 99"
    assert stderr_tail("x" * 50, limit=10) == "x" * 10


def test_run_ffmpeg_reports_the_stderr_tail_of_a_failing_command() -> None:
    script = "import sys; print('out_time_us=1'); sys.stderr.write('noise\\nsource: Invalid data\\n'); sys.exit(1)"
    lines: list[str] = []
    with pytest.raises(FfmpegFailed) as raised:
        run_ffmpeg([sys.executable, "-c", script], timeout_seconds=30, on_progress_line=lines.append)
    assert raised.value.stderr_tail == "noise\nsource: Invalid data"
    assert lines == ["out_time_us=1\n"]


def test_run_ffmpeg_kills_a_command_at_the_deadline() -> None:
    with pytest.raises(FfmpegTimedOut):
        run_ffmpeg(["sleep", "30"], timeout_seconds=0.2, on_progress_line=lambda line: None)


# --- S3 and EventBridge adapters ----------------------------------------------------------------------------------


def stubbed_s3() -> tuple[Any, Stubber]:
    client = boto3.client("s3", region_name="us-east-1")
    return client, Stubber(client)


@pytest.mark.parametrize("code", ["404", "403"])
def test_missing_or_forbidden_head_means_nothing_to_reuse(code: str) -> None:
    # A 403 is what S3 answers for a missing key without s3:ListBucket; encoding again is correct, only slower.
    client, stubber = stubbed_s3()
    stubber.add_client_error("head_object", service_error_code=code, http_status_code=int(code))
    with stubber:
        assert MediaStore(client, "outputs").find_output("job-1", "720p") is None
    stubber.assert_no_pending_responses()


def test_other_head_errors_propagate_for_a_retry() -> None:
    client, stubber = stubbed_s3()
    stubber.add_client_error("head_object", service_error_code="SlowDown", http_status_code=503)
    with stubber, pytest.raises(ClientError):
        MediaStore(client, "outputs").find_output("job-1", "720p")


class RefusingPublisher(EventPublisher):
    def __init__(self) -> None:
        self.attempts: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: DetailType | str, detail: dict[str, Any]) -> None:
        self.attempts.append((str(detail_type), detail))
        raise EventPublishFailed("ThrottlingException")


def test_a_refused_progress_event_does_not_stop_the_encode() -> None:
    publisher = RefusingPublisher()
    settings = TranscodeSettings.from_env(BASE_ENV)
    transcoder = RenditionTranscoder(MediaStore(None, "outputs"), publisher, settings)
    message = FanOutMessage.model_validate(
        {
            "jobId": "job-1",
            "ownerId": "user-1",
            "source": {"bucket": "uploads", "key": "uploads/job-1/source"},
            "probe": {"durationMs": 2000, "hasAudio": False},
            "renditions": [],
        }
    )
    transcoder.announce_progress(message, PLAN, 50)
    transcoder.announce_progress(message, PLAN, None)
    assert publisher.attempts == [
        ("Rendition Progress", {"jobId": "job-1", "ownerId": "user-1", "rendition": "720p", "percent": 50})
    ]
