"""Tracker Lambda entry point: EventBridge targets invoke it with one event at a time (async, retried, DLQ).

Routes by source and detail type, parses with typed models, and hands a pure transition to JobTracker.
Unknown shapes and unknown jobs are logged and dropped (a retry could not fix them); AWS errors raise so
the target's retry policy and DLQ take over.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from functions.common import events
from functions.common.job_state import Transition
from functions.common.jobs_table import JobNotFound, JobsTable
from functions.tracker import mediaconvert_events as mediaconvert
from functions.tracker.pipeline_events import parse_pipeline_event, pipeline_transition
from functions.tracker.settings import TrackerSettings
from functions.tracker.tracking import JobTracker

SCHEDULE_SOURCE = "aws.events"
SCHEDULE_DETAIL_TYPE = "Scheduled Event"

logger = Logger()
metrics = Metrics()
tracer = Tracer()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Dependencies:
    settings: TrackerSettings
    tracker: JobTracker
    s3: Any


@cache
def dependencies() -> Dependencies:
    """Clients are built once per execution environment, on first use (tests reset with `cache_clear`)."""
    settings = TrackerSettings.from_env()
    # Powertools reads the namespace when the module is imported; a host that imports first and configures after
    # (the local cloud, tests) would otherwise fail the first flush that carries a metric.
    metrics.namespace = settings.metrics_namespace
    tracker = JobTracker(
        table=JobsTable(settings.jobs_table_name),
        publisher=events.EventPublisher(settings.event_bus_name),
        metrics=metrics,
        clock=now_ms,
    )
    return Dependencies(settings=settings, tracker=tracker, s3=boto3.client("s3"))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        envelope = parse(event=event, model=EventBridgeModel)
    except ValidationError as err:
        return _ignored("not an EventBridge event", errors=err.errors(include_url=False))
    deps = dependencies()
    logger.append_keys(eventId=envelope.id, source=envelope.source, detailType=envelope.detail_type)
    if envelope.source == events.SOURCE:
        return _on_pipeline_event(deps, envelope)
    if envelope.source == mediaconvert.SOURCE and envelope.detail_type == mediaconvert.DETAIL_TYPE:
        return _on_mediaconvert_event(deps, envelope)
    if envelope.source == SCHEDULE_SOURCE and envelope.detail_type == SCHEDULE_DETAIL_TYPE:
        return _on_schedule(deps, context)
    return _ignored("no route for this source and detail type")


@tracer.capture_method
def _on_pipeline_event(deps: Dependencies, envelope: EventBridgeModel) -> dict[str, Any]:
    try:
        event = parse_pipeline_event(envelope.detail_type, _detail(envelope))
    except ValidationError as err:
        return _ignored("pipeline event with an unexpected shape", errors=err.errors(include_url=False))
    if event is None:
        return _ignored("pipeline event the tracker does not apply")
    logger.append_keys(jobId=event.job_id, rendition=event.rendition)
    return _apply(deps, event.job_id, pipeline_transition(event, now=now_ms()))


@tracer.capture_method
def _on_mediaconvert_event(deps: Dependencies, envelope: EventBridgeModel) -> dict[str, Any]:
    try:
        change = mediaconvert.parse_job_state_change(_detail(envelope))
    except ValidationError as err:
        return _ignored("MediaConvert event with an unexpected shape", errors=err.errors(include_url=False))
    if not mediaconvert.belongs_to(change, deps.settings.stack_name):
        logger.info("MediaConvert job of another pipeline; ignored", extra={"pipeline": change.user_metadata.pipeline})
        return {"outcome": "ignored", "reason": "another pipeline"}
    job_id = change.job_id
    if job_id is None:
        return _ignored("MediaConvert job of this pipeline without userMetadata.jobId")
    logger.append_keys(jobId=job_id, mediaConvertJobId=change.mediaconvert_job_id, mediaConvertStatus=change.status)
    sizes = _output_sizes(deps, change) if change.status == mediaconvert.MediaConvertStatus.COMPLETE else {}
    transition = mediaconvert.mediaconvert_transition(change, now=now_ms(), sizes=sizes)
    if transition is None:
        logger.info("MediaConvert status changes nothing on the job")
        return {"outcome": "unchanged", "jobId": job_id}
    return _apply(deps, job_id, transition)


@tracer.capture_method
def _on_schedule(deps: Dependencies, context: LambdaContext) -> dict[str, Any]:
    reserve = deps.settings.sweep_reserve_ms
    result = deps.tracker.sweep(
        now=now_ms(),
        max_jobs=deps.settings.sweep_max_jobs,
        has_time=lambda: context.get_remaining_time_in_millis() > reserve,
    )
    return {"outcome": "swept", **asdict(result)}


def _apply(deps: Dependencies, job_id: str, transition: Transition) -> dict[str, Any]:
    try:
        applied = deps.tracker.apply(job_id, transition)
    except JobNotFound:
        logger.warning("event for a job that does not exist; dropped")
        return {"outcome": "job_not_found", "jobId": job_id}
    logger.info(
        "event applied" if applied.changed else "event changed nothing", extra={"status": applied.job["status"]}
    )
    return {
        "outcome": "applied" if applied.changed else "unchanged",
        "jobId": job_id,
        "status": applied.job["status"],
        "announced": applied.announced,
    }


def _output_sizes(deps: Dependencies, change: mediaconvert.JobStateChange) -> dict[tuple[str, str], int]:
    """Byte counts of the outputs in this stack's bucket, read with HEAD; an unreadable output stays unknown."""
    sizes: dict[tuple[str, str], int] = {}
    for output in mediaconvert.rendition_outputs(change):
        if output.bucket != deps.settings.outputs_bucket:
            continue
        try:
            head = deps.s3.head_object(Bucket=output.bucket, Key=output.key)
        except (ClientError, BotoCoreError) as err:
            logger.warning("could not read an output's size", extra={"key": output.key, "error": str(err)})
            continue
        sizes[(output.bucket, output.key)] = int(head["ContentLength"])
    return sizes


def _detail(envelope: EventBridgeModel) -> dict[str, Any]:
    detail = envelope.detail
    return detail if isinstance(detail, dict) else detail.model_dump(by_alias=True)


def _ignored(reason: str, **extra: Any) -> dict[str, Any]:
    logger.warning(f"event ignored: {reason}", extra=extra)
    return {"outcome": "ignored", "reason": reason}
