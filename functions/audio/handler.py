"""Lambda entry point of the audio function: SQS batch in, the unit of each record made, partial failures out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.audio.adapters import BusEvents, FfmpegTools, PillowWaveform, S3MediaStore
from functions.audio.service import AudioProcessor, Outcome, remove_stale_work_dirs
from functions.audio.settings import AudioSettings
from functions.common.clients import aws_client
from functions.common.event_bus import EventPublisher
from functions.common.observability import logger, metrics, tracer
from functions.contracts.fanout import FanOutQueueRecord

# Records whose body is not a fan-out message fail validation here, are retried, and end in the DLQ. A batch whose
# records all failed is answered like any other (every id listed) rather than raised, so the invocation itself succeeds.
processor = BatchProcessor(event_type=EventType.SQS, model=FanOutQueueRecord, raise_on_entire_batch_failure=False)

OUTCOME_METRICS = {
    Outcome.COMPLETED: "UnitsCompleted",
    Outcome.REANNOUNCED: "UnitsReannounced",
    Outcome.FAILED: "UnitsFailed",
    Outcome.DROPPED: "UnitsDropped",
}


@tracer.capture_method
def process_record(record: FanOutQueueRecord, audio: AudioProcessor, remaining_ms: Callable[[], int]) -> str:
    """Make the units of one message; raising marks the record for redelivery."""
    message = record.body
    receive_count = record.attributes.ApproximateReceiveCount
    units = [unit.name for unit in message.renditions]
    with logger.append_context_keys(jobId=message.jobId, units=units, receiveCount=receive_count):
        tracer.put_annotation("jobId", message.jobId)
        try:
            results = audio.process(message, remaining_ms)
        except Exception:
            # Logged here, with the jobId, then re-raised: the batch processor returns the record to the queue.
            logger.exception("audio unit interrupted; the message will be delivered again")
            metrics.add_metric(name="AudioRetries", unit=MetricUnit.Count, value=1)
            raise
        for result in results:
            metrics.add_metric(name=OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
            if result.outcome is Outcome.COMPLETED and result.stored is not None:
                metrics.add_metric(name="ProcessingSeconds", unit=MetricUnit.Seconds, value=result.seconds)
                metrics.add_metric(name="OutputBytes", unit=MetricUnit.Bytes, value=result.stored.bytes)
        return ",".join(f"{result.unit}:{result.outcome}" for result in results)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = AudioSettings.from_env()
    audio = AudioProcessor(
        S3MediaStore(aws_client("s3"), settings.outputs_bucket),
        FfmpegTools(),
        PillowWaveform(),
        BusEvents(EventPublisher(settings.event_bus_name)),
        settings,
    )
    remove_stale_work_dirs(settings.work_root)

    def record_handler(record: FanOutQueueRecord) -> str:
        return process_record(record, audio, context.get_remaining_time_in_millis)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
