"""Builders for the webhooks tests: completed jobs in the jobs table, job outcome events as the bus rule queues them."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from functions.common import job_state
from functions.common.jobs_table import JobsTable
from functions.contracts.events import JobOutcome
from functions.contracts.jobs import JobRecord, JobSource, JobStatus
from functions.webhooks import handler
from tests.functions.conftest import FIXTURES
from tests.functions.playback_samples import complete_playback

OUTCOME_EVENT = json.loads((FIXTURES / "webhooks_job_outcome_event.json").read_text())
"""`Job Completed` as the rule's SQS target delivers it; `outcome_event` makes others from it."""


@pytest.fixture(autouse=True)
def fresh_webhooks() -> Iterator[None]:
    """Each test builds the handler's dependencies from its own environment, inside its own moto."""
    handler.dependencies.cache_clear()
    yield
    handler.dependencies.cache_clear()


def completed_job(job_id: str, owner_id: str, now_ms: int) -> JobRecord:
    """A job that finished its one rendition and was packaged, as the tracker leaves it, written to the jobs table."""
    job = job_state.new_job(
        job_id=job_id,
        owner_id=owner_id,
        source=JobSource(filename="clip.mp4", contentType="video/mp4", size=1234),
        now=now_ms - 60_000,
        upload_deadline=now_ms + 600_000,
        retention_seconds=86_400,
    )
    validating = job_state.begin_validation(job, now=now_ms - 50_000, deadline=now_ms + 600_000)
    assert validating is not None
    planned = [{"name": "720p", "status": "QUEUED", "height": 720}]
    probe = {"durationMs": 4000, "width": 1280, "height": 720}
    processing = job_state.begin_processing(
        validating, media_type="video", engine="lambda", probe=probe, planned=planned, now=now_ms
    )
    assert processing is not None
    output = {
        "bucket": "test-outputs",
        "key": f"outputs/{job_id}/720p.mp4",
        "width": 1280,
        "height": 720,
        "durationMs": 4000,
        "bytes": 98765,
        "contentType": "video/mp4",
    }
    asking = job_state.complete_rendition(processing, name="720p", output=output, now=now_ms)
    assert asking is not None and asking.playback is not None  # the video job waits for its package
    completed = complete_playback(asking, now=now_ms)
    assert completed.status == JobStatus.COMPLETED
    JobsTable("jobs").create(completed)
    return completed


def outcome_event(job: JobRecord | None = None, detail_type: str = "Job Completed", **changes: Any) -> dict[str, Any]:
    """The fixture's event with a fresh id: `detail-type`, the detail of `job` (when given), and any other changes."""
    event = copy.deepcopy(OUTCOME_EVENT)
    event["id"] = str(uuid.uuid4())
    event["detail-type"] = detail_type
    if job is not None:
        event["detail"] = JobOutcome.of(job).to_detail()
    return {**event, **changes}
