"""Lambda entry point of a transcoder: SQS batch in, one rendition encoded per record, partial failures out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.events import EventPublisher
from functions.transcode.messages import TranscodeQueueRecord, plan_for
from functions.transcode.settings import TranscodeSettings
from functions.transcode.storage import MediaStore
from functions.transcode.transcoder import Outcome, RenditionTranscoder, remove_stale_work_dirs

logger = Logger()
metrics = Metrics()
tracer = Tracer()
# Records whose body is not a fan-out message fail validation here, are retried, and end in the DLQ. A batch whose
# records all failed is answered like any other (every id listed) rather than raised, so the invocation itself succeeds.
processor = BatchProcessor(event_type=EventType.SQS, model=TranscodeQueueRecord, raise_on_entire_batch_failure=False)


@tracer.capture_method
def transcode_record(
    record: TranscodeQueueRecord,
    settings: TranscodeSettings,
    transcoder: RenditionTranscoder,
    remaining_ms: Callable[[], int],
) -> str:
    """Encode this function's rendition of one message; raising marks the record for redelivery."""
    message = record.body
    with logger.append_context_keys(jobId=message.jobId, rendition=settings.rendition.name):
        tracer.put_annotation("jobId", message.jobId)
        plan = plan_for(message, settings.rendition)
        if plan is None:
            logger.warning("message does not plan this rendition; dropped", extra={"planned": message.renditions})
            metrics.add_metric(name="MessagesDropped", unit=MetricUnit.Count, value=1)
            return "DROPPED"
        logger.info("transcoding", extra={"receiveCount": record.attributes.ApproximateReceiveCount})
        try:
            result = transcoder.transcode(message, plan, remaining_ms)
        except Exception:
            # Logged here, with the jobId, then re-raised: the batch processor returns the record to the queue.
            logger.exception("transcode interrupted; the message will be delivered again")
            metrics.add_metric(name="TranscodeRetries", unit=MetricUnit.Count, value=1)
            raise
        metrics.add_metric(name=f"Renditions{result.outcome.title()}", unit=MetricUnit.Count, value=1)
        if result.outcome is Outcome.COMPLETED and result.stored is not None:
            metrics.add_metric(name="EncodeSeconds", unit=MetricUnit.Seconds, value=result.encode_seconds)
            metrics.add_metric(name="OutputBytes", unit=MetricUnit.Bytes, value=result.stored.bytes)
        return result.outcome.value


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = TranscodeSettings.from_env()
    # Built per invocation: an encode takes seconds to minutes, so the few ms of a new client do not matter.
    transcoder = RenditionTranscoder(
        MediaStore(boto3.client("s3"), settings.outputs_bucket),
        EventPublisher(settings.event_bus_name, boto3.client("events")),
        settings,
    )
    metrics.add_dimension(name="rendition", value=settings.rendition.name)
    remove_stale_work_dirs(settings.work_root)

    def record_handler(record: TranscodeQueueRecord) -> str:
        return transcode_record(record, settings, transcoder, context.get_remaining_time_in_millis)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
