"""Lambda entry point of a transcoder: SQS batch in, one rendition encoded per record, partial failures out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import aws_client
from functions.common.event_bus import EventPublisher
from functions.common.observability import logger, metrics, tracer
from functions.contracts.fanout import FanOutQueueRecord
from functions.transcode.adapters import BusEvents, FfmpegTools, S3MediaStore
from functions.transcode.service import Outcome, RenditionTranscoder, remove_stale_work_dirs
from functions.transcode.settings import TranscodeSettings

# Records whose body is not a fan-out message fail validation here, are retried, and end in the DLQ. A batch whose
# records all failed is answered like any other (every id listed) rather than raised, so the invocation itself succeeds.
processor = BatchProcessor(event_type=EventType.SQS, model=FanOutQueueRecord, raise_on_entire_batch_failure=False)

OUTCOME_METRICS = {
    Outcome.COMPLETED: "RenditionsCompleted",
    Outcome.REANNOUNCED: "RenditionsReannounced",
    Outcome.FAILED: "RenditionsFailed",
    Outcome.DROPPED: "MessagesDropped",
}


@tracer.capture_method
def transcode_record(
    record: FanOutQueueRecord, rendition: str, transcoder: RenditionTranscoder, remaining_ms: Callable[[], int]
) -> str:
    """Encode this function's rendition of one message; raising marks the record for redelivery."""
    message = record.body
    receive_count = record.attributes.ApproximateReceiveCount
    with logger.append_context_keys(jobId=message.jobId, rendition=rendition, receiveCount=receive_count):
        tracer.put_annotation("jobId", message.jobId)
        try:
            result = transcoder.transcode(message, remaining_ms)
        except Exception:
            # Logged here, with the jobId, then re-raised: the batch processor returns the record to the queue.
            logger.exception("transcode interrupted; the message will be delivered again")
            metrics.add_metric(name="TranscodeRetries", unit=MetricUnit.Count, value=1)
            raise
        metrics.add_metric(name=OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
        if result.outcome is Outcome.COMPLETED and result.stored is not None:
            metrics.add_metric(name="EncodeSeconds", unit=MetricUnit.Seconds, value=result.encode_seconds)
            metrics.add_metric(name="OutputBytes", unit=MetricUnit.Bytes, value=result.stored.bytes)
        return result.outcome.value


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = TranscodeSettings.from_env()
    transcoder = RenditionTranscoder(
        S3MediaStore(aws_client("s3"), settings.outputs_bucket),
        FfmpegTools(),
        BusEvents(EventPublisher(settings.event_bus_name)),
        settings,
    )
    rendition = settings.rendition.name
    metrics.add_dimension(name="rendition", value=rendition)
    remove_stale_work_dirs(settings.work_root)

    def record_handler(record: FanOutQueueRecord) -> str:
        return transcode_record(record, rendition, transcoder, context.get_remaining_time_in_millis)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
