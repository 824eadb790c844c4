"""Lambda entry point of the images function: SQS batch in, the units of each record made, partial failures out."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import aws_client
from functions.common.event_bus import EventPublisher
from functions.common.job_gate import DynamoJobGate
from functions.common.observability import logger, metrics, tracer
from functions.common.unit_adapters import BusEvents
from functions.common.unit_batch import RENDITION_OUTCOME_METRICS, FanOutBatch
from functions.contracts.fanout import FanOutQueueRecord
from functions.images.adapters import PillowCodec, S3ImageStore
from functions.images.service import WORK_DIR_PREFIX, ImageUnitWorker
from functions.images.settings import ImagesSettings

batch = FanOutBatch(
    outcomes=RENDITION_OUTCOME_METRICS, retries="ImageRetries", seconds="ImageSeconds", work="image unit"
)


@tracer.capture_method
def process_record(record: FanOutQueueRecord, worker: ImageUnitWorker) -> str:
    """Make the units of one message; raising marks the record for redelivery."""
    return batch.make_units(record, worker.process)


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
        gate=DynamoJobGate(settings.jobs_table_name),
    )

    def record_handler(record: FanOutQueueRecord) -> str:
        return process_record(record, worker)

    return batch.process(event, context, record_handler, work_root=settings.work_root, work_dir_prefix=WORK_DIR_PREFIX)
