"""The fan-in of a segment-parallel rendition: every part's `Segment Completed` is noted on the job, and the one write
that notes the last part asks for the stitch, which the tracker publishes to the fan-out topic exactly once."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.common import job_state
from functions.common.clock import now_ms
from functions.common.jobs_table import JobsTable
from functions.contracts.events import DetailType, SegmentCompleted
from functions.contracts.jobs import JobRecord, RenditionStatus
from functions.contracts.media import SegmentPart
from functions.tracker import handler as tracker_handler
from tests.functions.conftest import CapturedEvents, FakeLambdaContext
from tests.functions.tracker.conftest import NOW, bus_event, job_in, outcome_events, pipeline_event

COUNT, SECONDS = 3, 4
SEGMENTED = {"count": COUNT, "seconds": SECONDS, "audio": True}
LADDER = (
    {"name": "720p", "status": "QUEUED", "width": 1280, "height": 720, "segments": SEGMENTED},
    {"name": "1080p", "status": "QUEUED", "width": 1920, "height": 1080, "segments": SEGMENTED},
)
PROBE = {"durationMs": 10_500, "width": 1920, "height": 1080, "hasAudio": True, "frameRate": 30.0}


def segmented_job(job_id: str, *, now: int = NOW) -> JobRecord:
    job = job_in("PROCESSING", job_id, engine="lambda", units=LADDER, probe=PROBE, now=now)
    job.source.bucket, job.source.key, job.source.etag = "test-uploads", f"uploads/{job_id}/source", "abc123"
    return job


def part_event(job_id: str, rendition: str, part: SegmentPart, index: int = 0, *, attempt: int = 1) -> dict[str, Any]:
    detail = SegmentCompleted(
        job_id=job_id, owner_id="owner-1", rendition=rendition, part=part, index=index, attempt=attempt
    )
    event = bus_event(DetailType.SEGMENT_COMPLETED, detail)
    event["id"] = f"segment-{rendition}-{part}-{index}-{job_id}"
    return event


def parts(job_id: str, rendition: str) -> list[dict[str, Any]]:
    videos = [part_event(job_id, rendition, SegmentPart.VIDEO, i) for i in range(COUNT)]
    return [*videos, part_event(job_id, rendition, SegmentPart.AUDIO)]


def record(job: JobRecord, event: dict[str, Any]) -> JobRecord | None:
    detail = event["detail"]
    return job_state.record_segment(
        job, name=detail["rendition"], part=SegmentPart(detail["part"]), index=detail["index"], now=NOW, attempt=1
    )


# --- the state machine ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(range(COUNT + 1)))[::5])
def test_the_last_part_in_any_order_asks_for_the_stitch_once(order: tuple[int, ...]) -> None:
    job = segmented_job("01JSEGMENTS000000000000000")
    events = parts(job.jobId, "720p")
    asked = []
    for position in order:
        changed = record(job, events[position])
        assert changed is not None
        asked.append(job_state.stitch_requested(job, changed))
        job = changed
        # a repeated part changes nothing
        assert record(job, events[position]) is None
    assert asked == [[]] * COUNT + [["720p"]]
    rendition = job.renditions["720p"]
    assert rendition.segments is not None
    assert rendition.segments.done == [0, 1, 2]
    assert rendition.status == RenditionStatus.PROCESSING
    assert rendition.progress == 80  # four parts of five: the stitch is still to come
    assert job.renditions["1080p"].status == RenditionStatus.QUEUED
    assert job_state.awaiting_stitch_request(job) == ["720p"]
    marked = job_state.mark_stitch_requested(job, name="720p", now=NOW)
    assert marked is not None
    assert job_state.awaiting_stitch_request(marked) == []


def test_parts_of_another_attempt_or_beyond_the_plan_change_nothing() -> None:
    job = segmented_job("01JSEGMENTS000000000000001")
    assert job_state.record_segment(job, name="720p", part=SegmentPart.VIDEO, index=0, now=NOW, attempt=2) is None
    assert job_state.record_segment(job, name="720p", part=SegmentPart.VIDEO, index=COUNT, now=NOW) is None
    assert job_state.record_segment(job, name="720p", part=SegmentPart.STITCH, index=0, now=NOW) is None
    assert job_state.record_segment(job, name="4k", part=SegmentPart.VIDEO, index=0, now=NOW) is None
    whole = job_in("PROCESSING", "01JSEGMENTS000000000000002", engine="lambda", plan=(("720p", "QUEUED"),))
    assert job_state.record_segment(whole, name="720p", part=SegmentPart.VIDEO, index=0, now=NOW) is None


# --- the tracker ---------------------------------------------------------------------------------------------------


def test_the_stitch_is_published_once_to_the_renditions_queue(
    table: JobsTable,
    event_bus: CapturedEvents,
    fanout_topic: Callable[[], list[dict[str, Any]]],
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a segmented job, and every part of its 720p rendition landing, some twice
    job_id = "01JSEGMENTS000000000000003"
    table.create(segmented_job(job_id, now=now_ms()))
    events = parts(job_id, "720p")
    results = [tracker_handler.handler(event, lambda_context) for event in [*events, events[0], events[-1]]]

    # THEN the write that recorded the last part published the stitch, once, for that rendition only
    assert [r["announced"] for r in results] == [None] * COUNT + ["Stitch Requested", None, None]
    (stitch,) = fanout_topic()
    assert stitch["segment"] == {"part": "stitch", "index": 0, "count": COUNT, "seconds": SECONDS}
    assert [r["name"] for r in stitch["renditions"]] == ["720p"]
    assert stitch["source"] == {"bucket": "test-uploads", "key": f"uploads/{job_id}/source", "etag": "abc123"}
    segments = table.get(job_id).renditions["720p"].segments
    assert segments is not None and segments.stitch is not None
    assert segments.stitch.requestedBy == events[-1]["id"]
    assert segments.stitch.requestPublishedAt is not None
    assert event_bus.drain() == []

    # WHEN the stitch's Rendition Completed arrives, and the 1080p rendition is made the same way
    tracker_handler.handler(pipeline_event("rendition_completed", job_id), lambda_context)
    for event in parts(job_id, "1080p"):
        tracker_handler.handler(event, lambda_context)
    assert [s["renditions"][0]["name"] for s in fanout_topic()[1:]] == ["1080p"]
    tracker_handler.handler(
        pipeline_event(
            "rendition_completed", job_id, rendition="1080p", key=f"outputs/{job_id}/1080p.mp4", width=1920, height=1080
        ),
        lambda_context,
    )

    # THEN the job asks for its playback package, as an unsegmented one does
    assert outcome_events(event_bus.drain()) == [("Packaging Requested", job_id)]
    assert table.get(job_id).renditions["720p"].status == RenditionStatus.COMPLETED


def test_a_stitch_whose_publish_failed_is_published_by_the_retry_of_the_event_that_asked(
    table: JobsTable,
    fanout_topic: Callable[[], list[dict[str, Any]]],
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN every part but the last recorded, and the fan-out topic unreachable when the last one lands
    job_id = "01JSEGMENTS000000000000004"
    table.create(segmented_job(job_id, now=now_ms()))
    *earlier, last = parts(job_id, "720p")
    for event in earlier:
        tracker_handler.handler(event, lambda_context)
    monkeypatch.setenv("VALIDATED_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:unreachable")
    tracker_handler.tracker.cache_clear()
    with pytest.raises(ClientError):
        tracker_handler.handler(last, lambda_context)
    assert job_state.awaiting_stitch_request(table.get(job_id)) == ["720p"]

    # WHEN another part's event is delivered again, then EventBridge retries the one that asked
    monkeypatch.setenv("VALIDATED_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:validated")
    tracker_handler.tracker.cache_clear()
    other = tracker_handler.handler(earlier[0], lambda_context)
    assert fanout_topic() == []
    retried = tracker_handler.handler(last, lambda_context)
    again = tracker_handler.handler(last, lambda_context)

    # THEN only the retry of the event that asked published it, once
    assert other["announced"] is None
    assert (retried["announced"], again["announced"]) == ("Stitch Requested", None)
    assert len(fanout_topic()) == 1
    assert job_state.awaiting_stitch_request(table.get(job_id)) == []
