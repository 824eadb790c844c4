"""Lambda entry point of the audio function: SQS batch in, the unit of each record made, partial failures out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.audio.adapters import FfmpegTools, PillowWaveform, S3MediaStore
from functions.audio.service import WORK_DIR_PREFIX, AudioProcessor
from functions.audio.settings import AudioSettings
from functions.common.clients import aws_client
from functions.common.event_bus import EventPublisher
from functions.common.job_gate import DynamoJobGate
from functions.common.observability import logger, metrics, tracer
from functions.common.unit_adapters import BusEvents
from functions.common.unit_batch import FanOutBatch
from functions.common.unit_worker import Outcome
from functions.contracts.fanout import FanOutQueueRecord

batch = FanOutBatch(
    outcomes={
        Outcome.COMPLETED: "UnitsCompleted",
        Outcome.REANNOUNCED: "UnitsReannounced",
        Outcome.FAILED: "UnitsFailed",
        Outcome.DROPPED: "UnitsDropped",
    },
    retries="AudioRetries",
    seconds="ProcessingSeconds",
    work="audio unit",
)


@tracer.capture_method
def process_record(record: FanOutQueueRecord, audio: AudioProcessor, remaining_ms: Callable[[], int]) -> str:
    """Make the units of one message; raising marks the record for redelivery."""
    units = [unit.name for unit in record.body.renditions]
    return batch.make_units(record, lambda message: audio.process(message, remaining_ms), units=units)


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
        gate=DynamoJobGate(settings.jobs_table_name),
    )

    def record_handler(record: FanOutQueueRecord) -> str:
        return process_record(record, audio, context.get_remaining_time_in_millis)

    return batch.process(event, context, record_handler, work_root=settings.work_root, work_dir_prefix=WORK_DIR_PREFIX)
