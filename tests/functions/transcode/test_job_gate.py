"""The transcoder and the job gate: work of a canceled job, or of an attempt the job moved on from, is dropped without
an event or an output; a cancel during the encode kills ffmpeg; the attempt names every event and the stored file."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.common.clients import aws_client
from functions.common.event_bus import EventPublisher
from functions.common.job_gate import WorkWithdrawn
from functions.common.media_tools import ffmpeg_path
from functions.common.unit_adapters import BusEvents
from functions.contracts.fanout import FanOutMessage
from functions.transcode.adapters import FfmpegTools, S3MediaStore, run_ffmpeg
from functions.transcode.service import RenditionTranscoder
from functions.transcode.settings import TranscodeSettings
from tests.functions.conftest import REGION
from tests.functions.job_gate_samples import (
    WithdrawingGate,
    cancel,
    ensure_running,
    move_to_next_attempt,
    withdrawals_reported,
)
from tests.functions.transcode.conftest import JOB_ID, OUTPUTS, Harness, fan_out_message, planned
from tests.media_samples import make_video

KEY = f"outputs/{JOB_ID}/720p.mp4"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of 320x180 video: the least an encode needs."""
    return make_video(tmp_path_factory.mktemp("gate") / "clip.mp4", width=320, height=180, seconds=1, audio=False)


class WatchedTools(FfmpegTools):
    """ffmpeg as the function runs it, noting how each encode ended."""

    def __init__(self) -> None:
        self.encodes: list[str] = []

    def run_ffmpeg(self, args: list[str], *, timeout_seconds: float, on_progress_line: Callable[[str], None]) -> None:
        try:
            super().run_ffmpeg(args, timeout_seconds=timeout_seconds, on_progress_line=on_progress_line)
        except WorkWithdrawn:
            self.encodes.append("withdrawn")
            raise
        self.encodes.append("finished")


def output_keys() -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=OUTPUTS)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_a_canceled_jobs_message_is_dropped_without_an_event_or_an_output(
    harness: Harness, clip: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a queued message of a job its owner canceled since
    message = fan_out_message(JOB_ID, clip, [planned("720p", 320, 180)])
    ensure_running(JOB_ID)
    cancel(JOB_ID)

    # WHEN it is delivered
    response = harness.invoke(message)

    # THEN the record succeeds (no retry, no DLQ), nothing is announced or written, and the drop is logged and counted
    assert response == {"batchItemFailures": []}
    assert harness.events.drain() == []
    assert output_keys() == []
    assert withdrawals_reported(caplog.records, capsys.readouterr().out) == (["the job was deleted"], 1.0)


def test_work_of_an_earlier_attempt_is_dropped_once_the_job_runs_the_next(harness: Harness, clip: Path) -> None:
    # GIVEN the first attempt's message, still queued when its owner retried the job
    message = fan_out_message(JOB_ID, clip, [planned("720p", 320, 180)])
    ensure_running(JOB_ID)
    move_to_next_attempt(JOB_ID)

    # WHEN it is delivered
    response = harness.invoke(message)

    # THEN it is dropped: the second attempt makes its own rendition
    assert response == {"batchItemFailures": []}
    assert harness.events.drain() == []
    assert output_keys() == []


@pytest.mark.media
def test_a_later_attempt_names_itself_and_never_reuses_an_earlier_attempts_rendition(
    harness: Harness, clip: Path
) -> None:
    # GIVEN the second attempt's message, and the rendition the first attempt stored at the same key
    message = fan_out_message(JOB_ID, clip, [planned("720p", 320, 180)]) | {"attempt": 2}
    first = {"job-id": JOB_ID, "rendition": "720p", "width": "320", "height": "180", "duration-ms": "1000"}
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=OUTPUTS, Key=KEY, Body=b"the first attempt's", Metadata=first)

    # WHEN it is delivered
    assert harness.invoke(message) == {"batchItemFailures": []}

    # THEN the rendition was made again (not announced from the first attempt's), and says which attempt made it
    events = harness.events.drain()
    assert {"detail-type": "Rendition Progress", "percent": 0} in [
        {"detail-type": e["detail-type"], "percent": e["detail"].get("percent")} for e in events
    ]
    assert {e["detail"]["attempt"] for e in events} == {2}
    assert [e["detail"]["key"] for e in events if e["detail-type"] == "Rendition Completed"] == [KEY]
    assert s3.head_object(Bucket=OUTPUTS, Key=KEY)["Metadata"]["attempt"] == "2"


@pytest.mark.media
def test_a_job_canceled_mid_encode_stops_it_and_stores_nothing(harness: Harness, clip: Path) -> None:
    # GIVEN a transcoder whose gate says yes before the download, then no: the owner canceled during the encode
    message = FanOutMessage.model_validate(fan_out_message(JOB_ID, clip, [planned("720p", 320, 180)]))
    settings = dataclasses.replace(TranscodeSettings.from_env(), gate_check_seconds=0)
    gate, tools = WithdrawingGate(open_checks=1), WatchedTools()
    bus = BusEvents(EventPublisher(settings.event_bus_name))
    transcoder = RenditionTranscoder(S3MediaStore(aws_client("s3"), OUTPUTS), tools, bus, settings, gate=gate)

    # WHEN it transcodes
    with pytest.raises(WorkWithdrawn):
        transcoder.transcode(message, lambda: 300_000)

    # THEN the gate was asked twice (before the download, then from ffmpeg's progress, which stopped the encode),
    # nothing was stored and no outcome announced, and the encode's working directory is gone
    assert gate.checks == [(JOB_ID, 1), (JOB_ID, 1)]
    assert tools.encodes == ["withdrawn"]
    assert output_keys() == []
    assert [e["detail-type"] for e in harness.events.drain()] == ["Rendition Progress"]  # the start, when still wanted
    assert list(harness.work.iterdir()) == []


def test_withdrawal_from_a_progress_line_kills_a_running_ffmpeg() -> None:
    # GIVEN an encode that would never end by itself (an endless test pattern) and a generous deadline
    args = [ffmpeg_path(), "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=10"]
    args += ["-progress", "pipe:1", "-f", "null", "-"]
    lines: list[str] = []

    def withdrawn_at_first_line(line: str) -> Any:
        lines.append(line)
        raise WorkWithdrawn(JOB_ID, 1, "the job is CANCELED")

    # WHEN the progress callback says the work was withdrawn
    # THEN that is what the run raises (not the deadline's FfmpegTimedOut): ffmpeg was killed at once
    with pytest.raises(WorkWithdrawn):
        run_ffmpeg(args, timeout_seconds=600, on_progress_line=withdrawn_at_first_line)
    assert len(lines) == 1
