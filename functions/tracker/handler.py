"""Tracker Lambda entry point: EventBridge targets invoke it with one event at a time (async, retried, DLQ).

Routes by source and detail type, parses with typed models and hands the event to JobTracker. Unknown shapes are
logged and dropped (a retry could not fix them); AWS errors raise so the target's retry policy and DLQ take over.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import aws_client
from functions.common.clock import now_ms
from functions.common.event_bus import EventPublisher
from functions.common.fanout_topic import SnsFanOut
from functions.common.jobs_table import JobsTable
from functions.common.observability import logger, metrics, tracer
from functions.contracts.events import (
    SOURCE,
    DetailType,
    JobDeletionRequested,
    parse_packaging_event,
    parse_rendition_event,
    parse_segment_event,
)
from functions.tracker.adapters import MediaConvertCanceller, S3JobFiles, S3Outputs
from functions.tracker.service import (
    MEDIACONVERT_DETAIL_TYPE,
    MEDIACONVERT_SOURCE,
    JobTracker,
    Result,
    ignored,
    parse_job_state_change,
)
from functions.tracker.settings import TrackerSettings

SCHEDULE_SOURCE = "aws.events"
SCHEDULE_DETAIL_TYPE = "Scheduled Event"


@cache
def tracker() -> JobTracker:
    """Settings, clients and the service, built once per execution environment (tests reset with `cache_clear`)."""
    settings = TrackerSettings.from_env()
    return JobTracker(
        settings=settings,
        jobs=JobsTable(settings.jobs_table_name),
        publisher=EventPublisher(settings.event_bus_name),
        fanout=SnsFanOut(settings.validated_topic_arn, aws_client("sns")),
        outputs=S3Outputs(),
        files=S3JobFiles(settings.uploads_bucket, settings.outputs_bucket),
        mediaconvert=MediaConvertCanceller(),
        metrics=metrics,
        clock=now_ms,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> Result:
    try:
        envelope = parse(event=event, model=EventBridgeModel)
    except ValidationError as err:
        return ignored("not an EventBridge event", errors=err.errors(include_url=False))
    service = tracker()
    logger.append_keys(eventId=envelope.id, source=envelope.source, detailType=envelope.detail_type)
    if envelope.source == SOURCE:
        return _on_pipeline_event(service, envelope)
    if envelope.source == MEDIACONVERT_SOURCE and envelope.detail_type == MEDIACONVERT_DETAIL_TYPE:
        return _on_mediaconvert_event(service, envelope)
    if envelope.source == SCHEDULE_SOURCE and envelope.detail_type == SCHEDULE_DETAIL_TYPE:
        return _on_schedule(service, context)
    return ignored("no route for this source and detail type")


@tracer.capture_method
def _on_pipeline_event(service: JobTracker, envelope: EventBridgeModel) -> Result:
    if envelope.detail_type == DetailType.JOB_DELETION_REQUESTED:
        try:
            deletion = JobDeletionRequested.model_validate(_detail(envelope))
        except ValidationError as err:
            return ignored("deletion request with an unexpected shape", errors=err.errors(include_url=False))
        return service.on_deletion_requested(deletion, event_id=envelope.id)
    try:
        packaging = parse_packaging_event(envelope.detail_type, _detail(envelope))
        segment = parse_segment_event(envelope.detail_type, _detail(envelope))
        event = parse_rendition_event(envelope.detail_type, _detail(envelope))
    except ValidationError as err:
        return ignored("pipeline event with an unexpected shape", errors=err.errors(include_url=False))
    if segment is not None:
        return service.on_segment_event(segment, event_id=envelope.id)
    if packaging is not None:
        return service.on_packaging_event(packaging, event_id=envelope.id)
    if event is None:
        return ignored("pipeline event the tracker does not apply")
    return service.on_rendition_event(event, event_id=envelope.id)


@tracer.capture_method
def _on_mediaconvert_event(service: JobTracker, envelope: EventBridgeModel) -> Result:
    try:
        change = parse_job_state_change(_detail(envelope))
    except ValidationError as err:
        return ignored("MediaConvert event with an unexpected shape", errors=err.errors(include_url=False))
    return service.on_mediaconvert_change(change, event_id=envelope.id)


@tracer.capture_method
def _on_schedule(service: JobTracker, context: LambdaContext) -> Result:
    return service.sweep(remaining_ms=context.get_remaining_time_in_millis)


def _detail(envelope: EventBridgeModel) -> dict[str, Any]:
    detail = envelope.detail
    return detail if isinstance(detail, dict) else detail.model_dump(by_alias=True)
