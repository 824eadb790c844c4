"""The images function and the job gate, against moto: units of a canceled job, or of an attempt the job moved on
from, are dropped without an event or an output; the attempt names every event and the stored file (test_service.py
has a cancel while a unit is made)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functions.images import media
from tests.functions.images.conftest import JOB_ID, METADATA_UNIT, OUTPUTS, Harness, image_unit
from tests.functions.job_gate_samples import cancel, ensure_running, move_to_next_attempt, withdrawals_reported

THUMB_UNIT = image_unit("thumb", (200, 150), "webp", watermark=False)


@pytest.fixture
def photo(harness: Harness) -> Path:
    return media.small_png(harness.tmp / "photo.png")


def test_a_canceled_jobs_units_are_dropped_without_an_event_or_an_output(
    harness: Harness, photo: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN two units of a job its owner canceled while they were queued
    upload = harness.upload(photo)
    ensure_running(JOB_ID)
    cancel(JOB_ID)

    # WHEN they are delivered
    response = harness.invoke(*upload.messages([THUMB_UNIT, METADATA_UNIT]))

    # THEN both records succeed, nothing is announced or written, and each drop is logged and counted
    assert response == {"batchItemFailures": []}
    assert harness.events.drain() == []
    assert harness.output_keys() == []
    assert withdrawals_reported(caplog.records, capsys.readouterr().out) == (["the job was deleted"] * 2, 2.0)


def test_units_of_an_earlier_attempt_are_dropped_once_the_job_runs_the_next(harness: Harness, photo: Path) -> None:
    upload = harness.upload(photo)
    ensure_running(JOB_ID)
    move_to_next_attempt(JOB_ID)

    assert harness.invoke(upload.message(THUMB_UNIT)) == {"batchItemFailures": []}

    assert harness.events.drain() == []
    assert harness.output_keys() == []


def test_a_later_attempt_names_itself_and_never_reuses_an_earlier_attempts_output(
    harness: Harness, photo: Path
) -> None:
    # GIVEN the second attempt's unit, and the derivative the first attempt stored at its key
    upload = harness.upload(photo)
    key = f"outputs/{JOB_ID}/thumb-webp.webp"
    first = {"job-id": JOB_ID, "rendition": "thumb-webp", "width": "200", "height": "150"}
    harness.s3.put_object(Bucket=OUTPUTS, Key=key, Body=b"the first attempt's", Metadata=first)

    # WHEN it is delivered
    assert harness.invoke(upload.message(THUMB_UNIT) | {"attempt": 2}) == {"batchItemFailures": []}

    # THEN the derivative was made again and says which attempt made it; every event names the attempt
    events = harness.events.drain()
    assert [(e["detail-type"], e["detail"]["attempt"]) for e in events] == [
        ("Rendition Progress", 2),
        ("Rendition Completed", 2),
    ]
    assert harness.s3.head_object(Bucket=OUTPUTS, Key=key)["Metadata"]["attempt"] == "2"
    assert harness.output_image(key).size == (200, 150)
