"""Ingest Lambda entry point: the ingest queue's SQS batch of S3 notifications in, partial batch failures out.

A bad upload never fails a record (the job is REJECTED instead); notifications that are not uploads are logged
and dropped; a body that is not a notification fails validation and, after its retries, lands in the DLQ; AWS
errors raise, so SQS redelivers the record and the service finishes what the failed attempt started.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.events import EventPublisher
from functions.common.jobs_table import JobsTable
from functions.ingest.fanout import FanoutPublisher
from functions.ingest.notifications import Ignored, IngestQueueRecord, S3TestEvent, upload_from_record
from functions.ingest.service import IngestResult, Outcome, UploadIngest
from functions.ingest.settings import IngestSettings
from functions.ingest.storage import SourceStore

logger = Logger()
metrics = Metrics()
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.SQS, model=IngestQueueRecord)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def build_ingest(settings: IngestSettings) -> UploadIngest:
    """The service with real AWS clients (boto3 honours AWS_ENDPOINT_URL for the local cloud)."""
    return UploadIngest(
        settings=settings,
        jobs=JobsTable(settings.jobs_table_name),
        store=SourceStore(boto3.client("s3")),
        fanout=FanoutPublisher(settings.validated_topic_arn, boto3.client("sns")),
        events=EventPublisher(settings.event_bus_name, boto3.client("events")),
        clock=now_ms,
    )


@tracer.capture_method
def ingest_record(record: IngestQueueRecord, ingest: UploadIngest, uploads_bucket: str) -> list[str]:
    """Every notification in one SQS message; returns their outcomes. Raising marks the record for redelivery."""
    notification = record.body
    if isinstance(notification, S3TestEvent):
        logger.info("S3 test event acknowledged", extra={"bucket": notification.Bucket})
        metrics.add_metric(name="NotificationsIgnored", unit=MetricUnit.Count, value=1)
        return ["TEST_EVENT"]
    redelivered = int(record.attributes.ApproximateReceiveCount) > 1
    outcomes: list[str] = []
    for entry in notification.Records:
        upload = upload_from_record(entry, uploads_bucket=uploads_bucket)
        if isinstance(upload, Ignored):
            logger.warning(f"notification ignored: {upload.reason}", extra={"messageId": record.messageId})
            metrics.add_metric(name="NotificationsIgnored", unit=MetricUnit.Count, value=1)
            outcomes.append("IGNORED")
            continue
        with logger.append_context_keys(jobId=upload.job_id):
            tracer.put_annotation("jobId", upload.job_id)
            result = ingest.ingest(upload, redelivered=redelivered)
            _record_metrics(result)
            logger.info("upload handled", extra={"outcome": result.outcome.value, "status": result.status})
        outcomes.append(result.outcome.value)
    return outcomes


def _record_metrics(result: IngestResult) -> None:
    if result.outcome is Outcome.ACCEPTED:
        metrics.add_metric(name="UploadsAccepted", unit=MetricUnit.Count, value=1)
        if result.duration_ms is not None:
            metrics.add_metric(name="SourceDurationSeconds", unit=MetricUnit.Seconds, value=result.duration_ms / 1000)
    elif result.outcome is Outcome.REJECTED:
        metrics.add_metric(name="UploadsRejected", unit=MetricUnit.Count, value=1)
        # One metric per reason, so an alarm or a dashboard can split them without a shared dimension.
        with single_metric(name="UploadsRejectedByCode", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="code", value=result.code or "UNKNOWN")
    elif result.outcome is Outcome.REANNOUNCED:
        metrics.add_metric(name="UploadsReannounced", unit=MetricUnit.Count, value=1)
    elif result.outcome is Outcome.DUPLICATE:
        metrics.add_metric(name="DuplicateNotifications", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="UploadsForUnknownJobs", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = IngestSettings.from_env()
    # Powertools reads the namespace when the module is imported; a host that imports first and configures after
    # (the local cloud, tests) would otherwise fail the flush.
    metrics.namespace = settings.metrics_namespace
    # Built per invocation: validating an upload takes seconds, a few ms of client setup do not matter.
    ingest = build_ingest(settings)

    def record_handler(record: IngestQueueRecord) -> list[str]:
        return ingest_record(record, ingest, settings.uploads_bucket)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
