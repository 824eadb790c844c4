"""Progress: ffmpeg's `-progress` lines as a few milestones, announced without ever stopping the encode."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.event_bus import EventPublisher, EventPublishFailed
from functions.common.job_gate import OpenGate
from functions.common.unit_adapters import BusEvents
from functions.contracts.events import DetailType, EventDetail
from functions.contracts.fanout import FanOutMessage
from functions.transcode.adapters import FfmpegTools, S3MediaStore
from functions.transcode.service import ProgressMilestones, RenditionTranscoder, out_time_us
from functions.transcode.settings import TranscodeSettings
from tests.functions.transcode.conftest import BASE_ENV, PLAN


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


class RefusingPublisher(EventPublisher):
    def __init__(self) -> None:
        self.attempts: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: DetailType | str, detail: EventDetail) -> None:
        self.attempts.append((str(detail_type), detail.to_detail()))
        raise EventPublishFailed("ThrottlingException")


def test_a_refused_progress_event_does_not_stop_the_encode() -> None:
    publisher = RefusingPublisher()
    settings = TranscodeSettings.from_env(BASE_ENV)
    transcoder = RenditionTranscoder(
        S3MediaStore(None, "outputs"), FfmpegTools(), BusEvents(publisher), settings, gate=OpenGate()
    )
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
