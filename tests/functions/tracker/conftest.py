"""Builders for the tracker's tests: jobs in each open state, its events from the fixtures, what it logged."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from functions.common import job_state
from functions.common.clock import now_ms
from functions.common.jobs_table import JobsTable
from functions.contracts.events import DetailType, EventDetail, PackagingCompleted, PackagingFailed
from functions.contracts.jobs import ErrorInfo, JobRecord, JobStatus
from functions.contracts.playback import PlaybackPackage
from functions.tracker import handler as tracker_handler
from functions.tracker import service
from tests.fixtures import MEDIACONVERT_FIXTURES
from tests.functions.conftest import FIXTURES, REGION, CapturedEvents, FakeLambdaContext
from tests.functions.playback_samples import package_for

NOW = 1_795_000_000_000
HOUR_MS = 3_600_000
FIXTURE_JOB_ID = "01JDEMO0000000000000000000"
"""The job the MediaConvert fixtures name in their output paths."""
PIPELINE_FIXTURE_JOB_ID = "01JTRACKER0000000000000000"
"""The job the pipeline fixtures (`tests/functions/fixtures/tracker_*.json`) name."""
DEFAULT_PLAN = (("720p", "QUEUED"), ("1080p", "QUEUED"))
PROBE = {"durationMs": 10_000, "width": 1920, "height": 1080}

IMAGE_PROBE = {"durationMs": 0, "width": 4000, "height": 3000, "frames": 1, "mode": "RGB", "sizeBytes": 2_000_000}
IMAGE_UNITS: tuple[dict[str, Any], ...] = (
    {
        "name": "thumb-webp",
        "status": "QUEUED",
        "kind": "image",
        "format": "webp",
        "width": 320,
        "height": 240,
        "watermark": False,
    },
    {
        "name": "thumb-jpeg",
        "status": "QUEUED",
        "kind": "image",
        "format": "jpeg",
        "width": 320,
        "height": 240,
        "watermark": False,
    },
    {
        "name": "large-webp",
        "status": "QUEUED",
        "kind": "image",
        "format": "webp",
        "width": 1280,
        "height": 960,
        "watermark": True,
    },
    {
        "name": "large-jpeg",
        "status": "QUEUED",
        "kind": "image",
        "format": "jpeg",
        "width": 1280,
        "height": 960,
        "watermark": True,
    },
    {"name": "metadata", "status": "QUEUED", "kind": "metadata"},
)
"""An image job's plan as ingest makes it from the default derivatives: four derivatives and the metadata unit."""
IMAGE_METADATA = {
    "format": "JPEG",
    "width": 4000,
    "height": 3000,
    "frames": 1,
    "mode": "RGB",
    "hasIccProfile": True,
    "cameraMake": "Canon",
    "cameraModel": "EOS 5D",
    "capturedAt": "2026:05:04 10:11:12",
}
"""What the images function's metadata unit reads from that image."""

AUDIO_PROBE = {
    "durationMs": 5_000,
    "audioCodec": "mp3",
    "hasAudio": True,
    "channels": 2,
    "sampleRate": 44_100,
    "formatName": "mp3",
    "sizeBytes": 80_000,
}
AUDIO_UNITS: tuple[dict[str, Any], ...] = (
    {"name": "audio", "status": "QUEUED", "kind": "audio", "format": "m4a", "audioBitrateKbps": 128},
    {"name": "waveform", "status": "QUEUED", "kind": "waveform", "format": "png", "width": 1800, "height": 280},
)
"""An audio job's plan: the loudness-normalised AAC rendition and the waveform PNG."""


TOPIC_ARN = f"arn:aws:sns:{REGION}:123456789012:validated"
"""The fan-out topic the tracker publishes a stitch to (`fanout_topic` creates it in moto)."""


@pytest.fixture(autouse=True)
def fresh_tracker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test builds the handler's service from its own environment, inside its own moto."""
    monkeypatch.setenv("VALIDATED_TOPIC_ARN", TOPIC_ARN)
    tracker_handler.tracker.cache_clear()
    yield
    tracker_handler.tracker.cache_clear()


@pytest.fixture
def fanout_topic(aws: None) -> Callable[[], list[dict[str, Any]]]:
    """The validated topic with a raw-delivery queue subscribed: returns what was published to it so far."""
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="validated")["TopicArn"]
    assert topic_arn == TOPIC_ARN
    queue_url = sqs.create_queue(QueueName="published")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    published: list[dict[str, Any]] = []

    def drain() -> list[dict[str, Any]]:
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return published
            for message in batch:
                published.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return drain


@pytest.fixture
def table(jobs_table: Any, event_bus: CapturedEvents) -> JobsTable:
    return JobsTable("jobs", boto3.resource("dynamodb", region_name=REGION))


@pytest.fixture
def logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The handler's structured log lines."""
    stream = io.StringIO()
    previous = tracker_handler.logger.registered_handler.setStream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    tracker_handler.logger.registered_handler.setStream(previous)


def metrics_in(output: str) -> list[tuple[str, str, float]]:
    """(namespace, metric name, value) for every EMF document printed."""
    found = []
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                found.append((directive["Namespace"], metric["Name"], sum(value) if isinstance(value, list) else value))
    return found


# --- jobs ----------------------------------------------------------------------------------------------------------


def job_in(
    status: str,
    job_id: str = PIPELINE_FIXTURE_JOB_ID,
    *,
    engine: str = "mediaconvert",
    plan: tuple[tuple[str, str], ...] = DEFAULT_PLAN,
    now: int = NOW,
    deadline_in_ms: int = HOUR_MS,
    media_type: str = "video",
    units: tuple[dict[str, Any], ...] | None = None,
    probe: dict[str, Any] = PROBE,
) -> JobRecord:
    """A job as the API and ingest leave it, made by the state machine: AWAITING_UPLOAD, VALIDATING or PROCESSING.

    A video job's renditions come from `plan`; an image or audio job's units are given whole (`units`).
    """
    job = job_state.new_job(
        job_id=job_id,
        owner_id="owner-1",
        source={"filename": "clip.mp4", "contentType": "video/mp4", "size": 1234},
        now=now - 2 * HOUR_MS,
        upload_deadline=now + deadline_in_ms,
        retention_seconds=86_400,
    )
    if status != JobStatus.AWAITING_UPLOAD:
        validating = job_state.begin_validation(job, now=now - HOUR_MS, deadline=now + deadline_in_ms)
        assert validating is not None
        job = validating
    if status == JobStatus.PROCESSING:
        planned = (
            list(units)
            if units is not None
            else [{"name": name, "status": s, "height": int(name.rstrip("p"))} for name, s in plan]
        )
        processing = job_state.begin_processing(
            job, media_type=media_type, engine=engine, probe=probe, planned=planned, now=now
        )
        assert processing is not None
        job = processing
    return job


def create_job(table: JobsTable, job_id: str, *, status: str = JobStatus.PROCESSING, **shape: Any) -> JobRecord:
    """A job made now (the handler reads the real clock), written to the table and read back."""
    table.create(job_in(status, job_id, now=now_ms(), **shape))
    return table.get(job_id)


# --- events --------------------------------------------------------------------------------------------------------


def mediaconvert_event(name: str, job_id: str) -> dict[str, Any]:
    """A MediaConvert fixture for this test's job: userMetadata.jobId and the output paths name it."""
    event = json.loads((MEDIACONVERT_FIXTURES / f"{name}.json").read_text().replace(FIXTURE_JOB_ID, job_id))
    event["detail"]["userMetadata"]["jobId"] = job_id
    return event


def mediaconvert_detail(name: str, job_id: str = PIPELINE_FIXTURE_JOB_ID) -> dict[str, Any]:
    """A MediaConvert fixture's detail naming `job_id` in userMetadata (its output paths keep the demo job)."""
    detail = json.loads((MEDIACONVERT_FIXTURES / f"{name}.json").read_text())["detail"]
    detail["userMetadata"]["jobId"] = job_id
    return detail


def mediaconvert_change(name: str, job_id: str = PIPELINE_FIXTURE_JOB_ID) -> service.JobStateChange:
    return service.parse_job_state_change(mediaconvert_detail(name, job_id))


def pipeline_event(name: str, job_id: str = PIPELINE_FIXTURE_JOB_ID, **detail: Any) -> dict[str, Any]:
    """A pipeline fixture (`tracker_{name}.json`) for this test's job, with `detail` changed."""
    event = json.loads((FIXTURES / f"tracker_{name}.json").read_text().replace(PIPELINE_FIXTURE_JOB_ID, job_id))
    event["detail"].update(detail)
    return event


def pipeline_detail(name: str, **changes: Any) -> dict[str, Any]:
    return pipeline_event(name, **changes)["detail"]


def completed_1080p(job_id: str) -> dict[str, Any]:
    return pipeline_event(
        "rendition_completed",
        job_id,
        rendition="1080p",
        key=f"outputs/{job_id}/1080p.mp4",
        width=1920,
        height=1080,
        bytes=2_097_152,
    )


def unit_completed(job_id: str, unit: dict[str, Any], **detail: Any) -> dict[str, Any]:
    """`Rendition Completed` of one image or audio unit, as the images or audio function announces it."""
    extension = {"jpeg": "jpg", None: "json"}.get(unit.get("format"), unit.get("format"))
    name = unit["name"]
    image = unit["kind"] in ("image", "metadata")
    fields: dict[str, Any] = {
        "rendition": name,
        "engine": "images" if image else "audio",
        "key": f"outputs/{job_id}/{name}.{extension}",
        "width": unit.get("width"),
        "height": unit.get("height"),
        "durationMs": 5_000 if unit["kind"] == "audio" else None,
        "bytes": 4_321,
        "contentType": {"jpeg": "image/jpeg", "webp": "image/webp", "m4a": "audio/mp4", "png": "image/png"}.get(
            unit.get("format"), "application/json"
        ),
    }
    if unit["kind"] == "metadata":
        fields["image"] = IMAGE_METADATA
    return pipeline_event("rendition_completed", job_id, **{**fields, **detail})


def unit_started(job_id: str, name: str) -> dict[str, Any]:
    """`Rendition Progress` 0: the unit's worker picked it up."""
    return pipeline_event("rendition_progress", job_id, rendition=name, percent=0)


def bus_event(detail_type: DetailType, detail: EventDetail) -> dict[str, Any]:
    """An event another function put on the custom bus, as the tracker's rule delivers it (the fixtures' envelope)."""
    event = json.loads((FIXTURES / "tracker_rendition_completed.json").read_text())
    event["id"] = f"{detail_type.lower().replace(' ', '-')}-{detail.to_detail()['jobId']}"
    event["detail-type"] = str(detail_type)
    event["detail"] = detail.to_detail()
    return event


def packaging_completed(job: JobRecord, package: PlaybackPackage | None = None) -> dict[str, Any]:
    """`Packaging Completed` as the packager puts it for a job waiting for its package (by default the package the
    packager makes of the job's completed video renditions)."""
    package = package or package_for(job)
    return bus_event(
        DetailType.PACKAGING_COMPLETED, PackagingCompleted(job_id=job.jobId, owner_id=job.ownerId, package=package)
    )


def packaging_failed(job_id: str, message: str = "rendition 720p cannot be remuxed") -> dict[str, Any]:
    """`Packaging Failed` as the packager puts it when a retry would fail the same way."""
    error = ErrorInfo(code="PACKAGING_FAILED", message=message)
    return bus_event(DetailType.PACKAGING_FAILED, PackagingFailed(job_id=job_id, owner_id="owner-1", error=error))


def packaging_requests(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The details of the `Packaging Requested` events among those captured on the bus."""
    return [e["detail"] for e in events if e["detail-type"] == DetailType.PACKAGING_REQUESTED]


def scheduled_event() -> dict[str, Any]:
    return json.loads((FIXTURES / "tracker_scheduled_event.json").read_text())


def outcome_events(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(detail type, job) of every event the tracker put: outcomes and packaging requests, in order."""
    return [(e["detail-type"], e["detail"]["jobId"]) for e in events]


def interleave(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[JobRecord], None]) -> None:
    """Another writer's turn: each rendition event's transition first runs `meanwhile` on the job the tracker read."""
    real_transition = service.rendition_transition

    def transition_after(event: Any, *, now: int) -> Callable[[JobRecord], JobRecord | None]:
        transition = real_transition(event, now=now)

        def interleaved(job: JobRecord) -> JobRecord | None:
            meanwhile(job)
            return transition(job)

        return interleaved

    monkeypatch.setattr(service, "rendition_transition", transition_after)


@dataclass
class ShortOnTimeContext(FakeLambdaContext):
    remaining_ms: int = 5_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
