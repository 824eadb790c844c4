"""Ingest Lambda entry point: the ingest queue's SQS batch of S3 notifications in, partial batch failures out.

A bad upload never fails a record (the job is REJECTED instead); notifications that are not uploads are logged
and dropped; a body that is not a notification fails validation and, after its retries, lands in the DLQ; AWS
errors raise, so SQS redelivers the record and the service finishes what the failed attempt started.

The notification models declare only what ingest reads. Powertools' `S3Model` requires fields (`userIdentity`,
`requestParameters`, the bucket's `ownerIdentity`, ...) that the local cloud's emulated S3 does not send, and
ingest has no use for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser import BaseModel
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, Json

from functions.common.clients import aws_client
from functions.common.clock import now_ms
from functions.common.event_bus import EventPublisher
from functions.common.fanout_topic import SnsFanOut
from functions.common.jobs_table import JobsTable
from functions.common.observability import logger, metrics, tracer
from functions.contracts.jobs import RerunMessage
from functions.ingest.adapters import Ffprobe, PillowImages, S3Source
from functions.ingest.service import IngestResult, Outcome, Upload, UploadIngest
from functions.ingest.settings import IngestSettings

# The key the presigned POST is bound to (docs/CONTRACTS.md "Keys"); job IDs are generated, never client-chosen.
UPLOAD_KEY = re.compile(r"uploads/(?P<job_id>[A-Za-z0-9][A-Za-z0-9_-]{0,127})/source")


class S3TestEvent(BaseModel):
    """Sent once when the bucket notification is configured; acknowledged and ignored."""

    Event: Literal["s3:TestEvent"]
    Bucket: str | None = None


class NotifiedBucket(BaseModel):
    name: str


class NotifiedObject(BaseModel):
    key: str
    """URL-encoded, as S3 sends it (spaces as `+`)."""
    size: int | None = None
    eTag: str | None = None


class NotifiedEntity(BaseModel):
    bucket: NotifiedBucket
    object_: NotifiedObject = Field(alias="object")


class S3NotificationRecord(BaseModel):
    eventSource: str
    eventName: str
    s3: NotifiedEntity


class S3Notification(BaseModel):
    Records: list[S3NotificationRecord]


class IngestQueueRecord(SqsRecordModel):
    """An SQS record of the ingest queue: an S3 notification, S3's test event, or the api's request to re-run a job
    (`POST /jobs/{id}/retry` or `/reprocess`). A body of no such shape fails validation and ends in the DLQ."""

    body: Json[S3Notification | S3TestEvent | RerunMessage]  # type: ignore[assignment]


@dataclass(frozen=True)
class Ignored:
    """A notification ingest does not act on (and does not retry), with the reason for the log."""

    reason: str


def upload_from_record(record: S3NotificationRecord, *, uploads_bucket: str) -> Upload | Ignored:
    """The upload a notification announces, or why it is ignored (another event type, bucket or key)."""
    if record.eventSource != "aws:s3" or not record.eventName.startswith("ObjectCreated:"):
        return Ignored(f"not an object-created notification ({record.eventSource} {record.eventName})")
    bucket = record.s3.bucket.name
    if bucket != uploads_bucket:
        return Ignored(f"object in bucket {bucket!r}, not the uploads bucket")
    key = unquote_plus(record.s3.object_.key)
    match = UPLOAD_KEY.fullmatch(key)
    if match is None:
        return Ignored(f"key {key[:200]!r} is not uploads/{{jobId}}/source")
    return Upload(job_id=match.group("job_id"), bucket=bucket, key=key, etag=record.s3.object_.eTag or None)


processor = BatchProcessor(event_type=EventType.SQS, model=IngestQueueRecord)


def build_ingest(settings: IngestSettings) -> UploadIngest:
    """The service on the real adapters (boto3 honours AWS_ENDPOINT_URL for the local cloud)."""
    return UploadIngest(
        rules=settings,
        jobs=JobsTable(settings.jobs_table_name),
        store=S3Source(aws_client("s3")),
        images=PillowImages(),
        media=Ffprobe(),
        fanout=SnsFanOut(settings.validated_topic_arn, aws_client("sns")),
        events=EventPublisher(settings.event_bus_name),
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
    if isinstance(notification, RerunMessage):
        request = notification.rerun
        with logger.append_context_keys(jobId=request.jobId, attempt=request.attempt):
            tracer.put_annotation("jobId", request.jobId)
            result = ingest.rerun(request, redelivered=redelivered)
            _record_metrics(result)
            logger.info("re-run handled", extra={"outcome": result.outcome.value, "status": result.status})
        return [result.outcome.value]
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
        with single_metric(name="UploadsAcceptedByMediaType", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="mediaType", value=result.media_type or "video")
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
    # Read per invocation (a few microseconds); the AWS clients behind the service are made once per sandbox.
    settings = IngestSettings.from_env()
    ingest = build_ingest(settings)

    def record_handler(record: IngestQueueRecord) -> list[str]:
        return ingest_record(record, ingest, settings.uploads_bucket)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
