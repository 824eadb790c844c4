"""Lambda entry point of the images function: SQS batch in, the units of each record made, partial failures out."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import aws_client
from functions.common.event_bus import EventPublisher
from functions.common.observability import logger, metrics, tracer
from functions.contracts.fanout import FanOutQueueRecord
from functions.images.adapters import BusEvents, PillowCodec, S3ImageStore
from functions.images.service import ImageUnitWorker, Outcome, remove_stale_work_dirs
from functions.images.settings import ImagesSettings

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
def process_record(record: FanOutQueueRecord, worker: ImageUnitWorker) -> str:
    """Make the units of one message; raising marks the record for redelivery."""
    message = record.body
    receive_count = record.attributes.ApproximateReceiveCount
    with logger.append_context_keys(jobId=message.jobId, receiveCount=receive_count):
        tracer.put_annotation("jobId", message.jobId)
        try:
            results = worker.process(message)
        except Exception:
            # Logged here, with the jobId, then re-raised: the batch processor returns the record to the queue.
            logger.exception("image unit interrupted; the message will be delivered again")
            metrics.add_metric(name="ImageRetries", unit=MetricUnit.Count, value=1)
            raise
        for result in results:
            metrics.add_metric(name=OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
            if result.outcome is Outcome.COMPLETED and result.stored is not None:
                metrics.add_metric(name="ImageSeconds", unit=MetricUnit.Seconds, value=result.seconds)
                metrics.add_metric(name="OutputBytes", unit=MetricUnit.Bytes, value=result.stored.bytes)
        return ",".join(f"{result.unit}:{result.outcome.value}" for result in results)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = ImagesSettings.from_env()
    worker = ImageUnitWorker(
        S3ImageStore(aws_client("s3"), settings.outputs_bucket),
        PillowCodec(),
        BusEvents(EventPublisher(settings.event_bus_name)),
        settings,
    )
    remove_stale_work_dirs(settings.work_root)

    def record_handler(record: FanOutQueueRecord) -> str:
        return process_record(record, worker)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
