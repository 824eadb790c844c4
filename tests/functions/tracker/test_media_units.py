"""Image and audio jobs through the tracker: their units settle the job like video renditions, and the metadata unit's
completion puts the image's metadata on the job in the same write, once."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common import job_state
from functions.common.jobs_table import JobsTable
from functions.contracts.events import JobOutcome, RenditionCompleted, parse_rendition_event
from functions.contracts.jobs import ErrorInfo, ImageMetadata, JobRecord
from functions.tracker import handler as tracker_handler
from functions.tracker import service
from tests.functions.conftest import CapturedEvents, FakeLambdaContext
from tests.functions.tracker.conftest import (
    AUDIO_PROBE,
    AUDIO_UNITS,
    IMAGE_METADATA,
    IMAGE_PROBE,
    IMAGE_UNITS,
    NOW,
    create_job,
    job_in,
    outcome_events,
    pipeline_event,
    unit_completed,
    unit_started,
)

# Only the invocations that end a job emit a metric; Powertools warns about the others' empty flush.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

IMAGE = {"media_type": "image", "engine": "lambda", "units": IMAGE_UNITS, "probe": IMAGE_PROBE}
AUDIO = {"media_type": "audio", "engine": "lambda", "units": AUDIO_UNITS, "probe": AUDIO_PROBE}
UNIT = {unit["name"]: unit for unit in (*IMAGE_UNITS, *AUDIO_UNITS)}
DERIVATIVES = [unit["name"] for unit in IMAGE_UNITS if unit["kind"] == "image"]


def handle(event: dict[str, Any], context: FakeLambdaContext) -> str:
    return tracker_handler.handler(event, context)["outcome"]


# --- image jobs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata_at", [0, 2, 4], ids=["metadata-first", "metadata-between", "metadata-last"])
def test_an_image_job_completes_with_its_derivatives_and_its_metadata(
    metadata_at: int, table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN an image job whose five units were fanned out; each worker announces it started
    job_id = f"01JIMAGEDONE{metadata_at}".ljust(26, "0")
    create_job(table, job_id, **IMAGE)
    assert [handle(unit_started(job_id, unit["name"]), lambda_context) for unit in IMAGE_UNITS] == ["applied"] * 5

    # WHEN the units complete in any order, the metadata unit among them (last: the write that ends the job)
    order = [*DERIVATIVES]
    order.insert(metadata_at, "metadata")
    outcomes = [handle(unit_completed(job_id, UNIT[name]), lambda_context) for name in order]

    # THEN every completion applied, the job COMPLETED carrying the image's metadata, announced once
    assert outcomes == ["applied"] * 5
    job = table.get(job_id)
    assert (job.status, job.progress, job.error, job.mediaType, job.engine) == (
        "COMPLETED",
        100,
        None,
        "image",
        "lambda",
    )
    assert job.image == ImageMetadata.model_validate(IMAGE_METADATA)
    assert job.playback is None  # only a video job waits for a playback package
    assert job.version == 5 + 5 + 1  # five starts, five completions (metadata with its unit: one write), bookkeeping
    for name in DERIVATIVES:
        rendition = job.renditions[name]
        unit = UNIT[name]
        extension = "jpg" if unit["format"] == "jpeg" else "webp"
        assert (rendition.status, rendition.kind, rendition.format, rendition.watermark) == (
            "COMPLETED",
            "image",
            unit["format"],
            unit["watermark"],
        )
        assert (rendition.width, rendition.height, rendition.bytes, rendition.engine) == (
            unit["width"],
            unit["height"],
            4_321,
            "images",
        )
        assert (rendition.key, rendition.contentType) == (
            f"outputs/{job_id}/{name}.{extension}",
            f"image/{unit['format']}",
        )
    metadata = job.renditions["metadata"]
    assert (metadata.status, metadata.kind, metadata.key, metadata.contentType) == (
        "COMPLETED",
        "metadata",
        f"outputs/{job_id}/metadata.json",
        "application/json",
    )
    events = event_bus.drain()
    assert outcome_events(events) == [("Job Completed", job_id)]
    assert events[0]["detail"] == JobOutcome.of(job).to_detail()


def test_a_duplicate_metadata_event_changes_nothing(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN an image job whose metadata unit completed while its derivatives still run
    job_id = "01JIMAGEDUPLICATE000000000"
    create_job(table, job_id, **IMAGE)
    metadata_event = unit_completed(job_id, UNIT["metadata"])
    assert handle(metadata_event, lambda_context) == "applied"
    recorded = table.get(job_id)
    assert recorded.image == ImageMetadata.model_validate(IMAGE_METADATA)

    # WHEN the same event is delivered again, and a redelivery reads the image differently
    reread = unit_completed(job_id, UNIT["metadata"], image={**IMAGE_METADATA, "cameraModel": "EOS R5"}, bytes=99)
    outcomes = [handle(metadata_event, lambda_context), handle(reread, lambda_context)]

    # THEN neither wrote anything: the record is the one the first completion left
    assert outcomes == ["unchanged", "unchanged"]
    assert table.get(job_id) == recorded
    assert event_bus.drain() == []

    # AND once the job completed, a late duplicate neither reopens it nor announces it again
    for name in DERIVATIVES:
        handle(unit_completed(job_id, UNIT[name]), lambda_context)
    completed = table.get(job_id)
    assert completed.status == "COMPLETED"
    assert outcome_events(event_bus.drain()) == [("Job Completed", job_id)]
    assert handle(metadata_event, lambda_context) == "unchanged"
    assert table.get(job_id) == completed
    assert event_bus.drain() == []


@pytest.mark.parametrize(
    ("failed", "error"),
    [
        ("large-jpeg", ErrorInfo(code="IMAGE_PROCESSING_FAILED", message="cannot write mode CMYK as JPEG")),
        ("thumb-webp", ErrorInfo(code="SOURCE_REPLACED", message="the upload changed while it was being processed")),
        ("metadata", ErrorInfo(code="IMAGE_PROCESSING_FAILED", message="image file is truncated")),
    ],
)
def test_a_failed_image_unit_fails_the_job_with_its_reason(
    failed: str, error: ErrorInfo, table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN an image job; one unit fails, the others complete
    job_id = f"01JIMAGEFAIL{failed.replace('-', '')}".upper().ljust(26, "0")
    create_job(table, job_id, **IMAGE)
    failure = pipeline_event("rendition_failed", job_id, rendition=failed, engine="images", error=error.model_dump())

    # WHEN the failure arrives first, then every other unit's completion
    assert handle(failure, lambda_context) == "applied"
    assert table.get(job_id).status == "PROCESSING"  # the other units are still open
    for unit in IMAGE_UNITS:
        if unit["name"] != failed:
            assert handle(unit_completed(job_id, unit), lambda_context) == "applied"

    # THEN the job FAILED with the unit's code and reason, the others' outputs kept, announced once
    job = table.get(job_id)
    assert job.status == "FAILED"
    assert job.error == ErrorInfo(code=error.code, message=f"{failed}: {error.message}")
    assert job.renditions[failed].status == "FAILED"
    assert job.renditions[failed].error == error
    assert {r.status for n, r in job.renditions.items() if n != failed} == {"COMPLETED"}
    expected_image = None if failed == "metadata" else ImageMetadata.model_validate(IMAGE_METADATA)
    assert job.image == expected_image
    events = event_bus.drain()
    assert outcome_events(events) == [("Job Failed", job_id)]
    assert events[0]["detail"]["error"] == {"code": error.code, "message": f"{failed}: {error.message}"}


# --- audio jobs ----------------------------------------------------------------------------------------------------


def test_an_audio_job_completes_with_its_rendition_and_waveform(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN an audio job: its AAC rendition and its waveform run apart
    job_id = "01JAUDIODONE00000000000000"
    create_job(table, job_id, **AUDIO)

    # WHEN each starts and completes, the whole stream delivered twice
    stream = [
        unit_started(job_id, "audio"),
        unit_started(job_id, "waveform"),
        unit_completed(job_id, UNIT["waveform"]),
        unit_completed(job_id, UNIT["audio"]),
    ]
    outcomes = [handle(event, lambda_context) for event in stream + stream]

    # THEN the job COMPLETED once, with both outputs, its probe untouched and no image metadata
    assert outcomes == ["applied"] * 4 + ["unchanged"] * 4
    job = table.get(job_id)
    assert (job.status, job.progress, job.error, job.image, job.playback) == ("COMPLETED", 100, None, None, None)
    audio, waveform = job.renditions["audio"], job.renditions["waveform"]
    assert (audio.kind, audio.format, audio.key, audio.contentType, audio.durationMs, audio.engine) == (
        "audio",
        "m4a",
        f"outputs/{job_id}/audio.m4a",
        "audio/mp4",
        5_000,
        "audio",
    )
    assert (waveform.kind, waveform.key, waveform.contentType, waveform.width, waveform.height) == (
        "waveform",
        f"outputs/{job_id}/waveform.png",
        "image/png",
        1800,
        280,
    )
    assert job.probe is not None
    assert job.probe.model_dump(exclude_unset=True) == AUDIO_PROBE
    assert outcome_events(event_bus.drain()) == [("Job Completed", job_id)]


def test_a_failed_audio_unit_fails_the_job_with_its_reason(
    table: JobsTable, event_bus: CapturedEvents, lambda_context: FakeLambdaContext
) -> None:
    job_id = "01JAUDIOFAIL00000000000000"
    create_job(table, job_id, **AUDIO)
    error = {"code": "AUDIO_PROCESSING_FAILED", "message": "ffmpeg exited with status 1"}

    handle(unit_completed(job_id, UNIT["waveform"]), lambda_context)
    handle(pipeline_event("rendition_failed", job_id, rendition="audio", engine="audio", error=error), lambda_context)

    job = table.get(job_id)
    assert job.status == "FAILED"
    assert job.error == ErrorInfo(code="AUDIO_PROCESSING_FAILED", message="audio: ffmpeg exited with status 1")
    assert job.renditions["waveform"].status == "COMPLETED"
    assert outcome_events(event_bus.drain()) == [("Job Failed", job_id)]


# --- the mapping, without AWS --------------------------------------------------------------------------------------


def completed(job_id: str, name: str, **detail: Any) -> RenditionCompleted:
    event = parse_rendition_event("Rendition Completed", unit_completed(job_id, UNIT[name], **detail)["detail"])
    assert isinstance(event, RenditionCompleted)
    return event


def image_job() -> JobRecord:
    return job_in("PROCESSING", "01JIMAGEPURE00000000000000", **IMAGE)


def test_the_metadata_units_event_carries_the_metadata_and_only_it_does() -> None:
    job = image_job()
    assert completed(job.jobId, "metadata").image == ImageMetadata.model_validate(IMAGE_METADATA)
    assert completed(job.jobId, "thumb-webp").image is None
    assert "image" not in completed(job.jobId, "thumb-webp").to_detail()


def test_metadata_and_completion_are_one_change() -> None:
    # GIVEN an image job whose four derivatives are done
    job = image_job()
    for name in DERIVATIVES:
        job = service.rendition_transition(completed(job.jobId, name), now=NOW + 1)(job) or job
    assert job.status == "PROCESSING"

    # WHEN the metadata unit's completion is applied
    after = service.rendition_transition(completed(job.jobId, "metadata"), now=NOW + 2)(job)

    # THEN one change records the metadata and completes the unit, which completes the job
    assert after is not None
    assert after.image == ImageMetadata.model_validate(IMAGE_METADATA)
    assert (after.status, after.renditions["metadata"].status, after.updatedAt) == ("COMPLETED", "COMPLETED", NOW + 2)


def test_metadata_is_not_recorded_from_a_unit_that_is_not_the_metadata_unit() -> None:
    job = image_job()

    after = service.rendition_transition(completed(job.jobId, "thumb-webp", image=IMAGE_METADATA), now=NOW + 1)(job)

    assert after is not None
    assert after.renditions["thumb-webp"].status == "COMPLETED"
    assert after.image is None


def test_metadata_for_a_unit_that_cannot_complete_is_not_recorded() -> None:
    # GIVEN an image job that already failed (its deadline passed), and one with no such unit
    failed = job_state.fail_job(image_job(), code="PROCESSING_TIMEOUT", message="late", now=NOW + 1)
    assert failed is not None
    video = job_in("PROCESSING", "01JVIDEOPURE00000000000000", engine="lambda")

    # WHEN a metadata unit's completion arrives for each
    event = completed(failed.jobId, "metadata")

    # THEN neither changes
    assert service.rendition_transition(event, now=NOW + 2)(failed) is None
    assert service.rendition_transition(event, now=NOW + 2)(video) is None
