"""The audio function and the job gate: units of a canceled job, or of an attempt the job moved on from, are dropped
without an event or an output; a cancel between the loudness passes stops the unit; the attempt names every event and
the stored file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import boto3
import pytest

from functions.audio.adapters import FfmpegTools, PillowWaveform, S3MediaStore
from functions.audio.service import AudioProcessor
from functions.audio.settings import AudioSettings
from functions.common.clients import aws_client
from functions.common.event_bus import EventPublisher
from functions.common.job_gate import WorkWithdrawn
from functions.common.unit_adapters import BusEvents
from tests.functions.audio.conftest import AUDIO_UNIT, JOB_ID, OUTPUTS, WAVEFORM_UNIT, Harness, job_message, make_tone
from tests.functions.conftest import REGION
from tests.functions.job_gate_samples import (
    WithdrawingGate,
    cancel,
    ensure_running,
    move_to_next_attempt,
    withdrawals_reported,
)

SMALL_WAVEFORM = WAVEFORM_UNIT.model_copy(update={"width": 64, "height": 16})


@pytest.fixture
def tone(harness: Harness) -> Path:
    """One second of a tone: the least both units need."""
    return make_tone(harness.tmp / "tone", "wav", seconds=1.0)


class CountedTools(FfmpegTools):
    """ffmpeg as the function runs it, counting the passes that ran."""

    def __init__(self) -> None:
        self.runs = 0

    def run_ffmpeg(self, args: list[str], *, timeout_seconds: float) -> str:
        self.runs += 1
        return super().run_ffmpeg(args, timeout_seconds=timeout_seconds)


def output_keys() -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=OUTPUTS)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_a_canceled_jobs_units_are_dropped_without_an_event_or_an_output(
    harness: Harness, tone: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN both units of a job its owner canceled while they were queued
    messages = job_message(tone, [AUDIO_UNIT, SMALL_WAVEFORM]).per_unit()
    ensure_running(JOB_ID)
    cancel(JOB_ID)

    # WHEN they are delivered
    response = harness.invoke(*messages)

    # THEN both records succeed, nothing is announced or written, and each drop is logged and counted
    assert response == {"batchItemFailures": []}
    assert harness.events.drain() == []
    assert output_keys() == []
    assert withdrawals_reported(caplog.records, capsys.readouterr().out) == (["the job was deleted"] * 2, 2.0)


def test_units_of_an_earlier_attempt_are_dropped_once_the_job_runs_the_next(harness: Harness, tone: Path) -> None:
    (message,) = job_message(tone, [SMALL_WAVEFORM]).per_unit()
    ensure_running(JOB_ID)
    move_to_next_attempt(JOB_ID)

    assert harness.invoke(message) == {"batchItemFailures": []}

    assert harness.events.drain() == []
    assert output_keys() == []


@pytest.mark.media
def test_a_later_attempt_names_itself_and_never_reuses_an_earlier_attempts_output(harness: Harness, tone: Path) -> None:
    # GIVEN the second attempt's waveform unit, and the waveform the first attempt stored at its key to the same plan
    (message,) = job_message(tone, [SMALL_WAVEFORM]).per_unit()
    message = message.model_copy(update={"attempt": 2})
    key = f"outputs/{JOB_ID}/waveform.png"
    first = {"job-id": JOB_ID, "rendition": "waveform", "plan": "png 64x16", "width": "64", "height": "16"}
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=OUTPUTS, Key=key, Body=b"the first attempt's", ContentType="image/png", Metadata=first)

    # WHEN it is delivered
    assert harness.invoke(message) == {"batchItemFailures": []}

    # THEN the waveform was drawn again and says which attempt made it; every event names the attempt
    events = harness.events.drain()
    assert [(e["detail-type"], e["detail"]["attempt"]) for e in events] == [
        ("Rendition Progress", 2),
        ("Rendition Completed", 2),
    ]
    head = s3.head_object(Bucket=OUTPUTS, Key=key)
    assert head["Metadata"]["attempt"] == "2"
    assert head["ContentLength"] != len(b"the first attempt's")


@pytest.mark.media
def test_a_job_canceled_between_the_loudness_passes_stops_the_unit_and_stores_nothing(
    harness: Harness, tone: Path
) -> None:
    # GIVEN a processor whose gate says yes before the download, then no: the owner canceled during the measurement
    (message,) = job_message(tone, [AUDIO_UNIT]).per_unit()
    settings = dataclasses.replace(AudioSettings.from_env(), gate_check_seconds=0)
    gate, tools = WithdrawingGate(open_checks=1), CountedTools()
    processor = AudioProcessor(
        S3MediaStore(aws_client("s3"), OUTPUTS),
        tools,
        PillowWaveform(),
        BusEvents(EventPublisher(settings.event_bus_name)),
        settings,
        gate=gate,
    )

    # WHEN it makes the unit
    with pytest.raises(WorkWithdrawn):
        processor.process(message, lambda: 300_000)

    # THEN it stopped at the second question, before the encoding pass: nothing stored, no outcome announced
    assert gate.checks == [(JOB_ID, 1), (JOB_ID, 1)]
    assert tools.runs == 1  # the measurement; the encoding pass never started
    assert output_keys() == []
    assert [e["detail-type"] for e in harness.events.drain()] == ["Rendition Progress"]  # the start, when still wanted
    assert list(harness.work.iterdir()) == []
