"""Lambda entry point of a transcoder: SQS batch in, one rendition encoded per record, partial failures out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import aws_client
from functions.common.event_bus import EventPublisher
from functions.common.job_gate import DynamoJobGate
from functions.common.observability import logger, metrics, tracer
from functions.common.unit_adapters import BusEvents
from functions.common.unit_batch import RENDITION_OUTCOME_METRICS, FanOutBatch
from functions.contracts.fanout import FanOutQueueRecord
from functions.transcode.adapters import FfmpegTools, S3MediaStore
from functions.transcode.service import WORK_DIR_PREFIX, RenditionTranscoder
from functions.transcode.settings import TranscodeSettings

batch = FanOutBatch(
    outcomes=RENDITION_OUTCOME_METRICS, retries="TranscodeRetries", seconds="EncodeSeconds", work="transcode"
)


@tracer.capture_method
def transcode_record(
    record: FanOutQueueRecord, rendition: str, transcoder: RenditionTranscoder, remaining_ms: Callable[[], int]
) -> str:
    """Encode this function's rendition of one message; raising marks the record for redelivery."""
    return batch.make_units(record, lambda message: [transcoder.transcode(message, remaining_ms)], rendition=rendition)


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
        gate=DynamoJobGate(settings.jobs_table_name),
    )
    rendition = settings.rendition.name
    metrics.add_dimension(name="rendition", value=rendition)

    def record_handler(record: FanOutQueueRecord) -> str:
        return transcode_record(record, rendition, transcoder, context.get_remaining_time_in_millis)

    return batch.process(event, context, record_handler, work_root=settings.work_root, work_dir_prefix=WORK_DIR_PREFIX)
