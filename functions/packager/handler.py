"""Lambda entry point of the packager: SQS batch of `Packaging Requested` events in, one package per record, partial
failures out.

The queue is fed by a rule on the custom bus, so each body is the EventBridge event as JSON (source `media-pipeline`,
detail-type `Packaging Requested`, detail `PackagingRequested`). A body that is not such an event is logged and
dropped: it would never parse, so retrying it would only park it in the DLQ later. A record whose packaging raised
(S3 or the bus unavailable, ffmpeg stopped at the deadline, too little time left) is returned to the queue; one whose
job was canceled or moved to another attempt meanwhile is dropped (`WorkWithdrawn`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import aws_client
from functions.common.event_bus import EventPublisher
from functions.common.job_gate import DynamoJobGate, WorkWithdrawn, drop_withdrawn
from functions.common.observability import logger, metrics, tracer
from functions.common.unit_adapters import BusEvents
from functions.common.unit_worker import Outcome, remove_stale_work_dirs
from functions.contracts.events import SOURCE, DetailType, PackagingRequested
from functions.packager.adapters import FfmpegTools, S3PlaybackStore
from functions.packager.service import WORK_DIR_PREFIX, PlaybackPackager
from functions.packager.settings import PackagerSettings

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

OUTCOME_METRICS = {Outcome.COMPLETED: "PackagesCompleted", Outcome.FAILED: "PackagesFailed"}
DROPPED_METRIC = "MessagesDropped"
RETRIES_METRIC = "PackagingRetries"
SECONDS_METRIC = "PackagingSeconds"
BYTES_METRIC = "PackageBytes"


def packaging_request(body: str) -> PackagingRequested | None:
    """The request an SQS body carries: an EventBridge event from the pipeline, `Packaging Requested`. None (logged)
    for anything else."""
    try:
        envelope = parse(event=body, model=EventBridgeModel)
    except ValidationError as err:
        logger.error("message is not an EventBridge event; dropped", extra={"errors": err.error_count()})
        return None
    if envelope.source != SOURCE or envelope.detail_type != DetailType.PACKAGING_REQUESTED:
        logger.error(
            "message is not a packaging request; dropped",
            extra={"source": envelope.source, "detailType": envelope.detail_type},
        )
        return None
    try:
        return PackagingRequested.model_validate(envelope.detail)
    except ValidationError as err:
        logger.error("packaging request does not have the documented shape; dropped", extra={"errors": err.errors()})
        return None


@tracer.capture_method
def package_record(record: SQSRecord, packager: PlaybackPackager, remaining_ms: Callable[[], int]) -> str:
    """Package the job one record asks for; raising marks the record for redelivery."""
    request = packaging_request(record.body)
    if request is None:
        metrics.add_metric(name=DROPPED_METRIC, unit=MetricUnit.Count, value=1)
        return "dropped"
    receive_count = record.attributes.approximate_receive_count
    with logger.append_context_keys(jobId=request.job_id, attempt=request.attempt, receiveCount=receive_count):
        tracer.put_annotation("jobId", request.job_id)
        try:
            result = packager.package(request, remaining_ms)
        except WorkWithdrawn as withdrawn:
            return drop_withdrawn(withdrawn)
        except Exception:
            # Logged here, with the jobId, then re-raised: the batch processor returns the record to the queue.
            logger.exception("packaging interrupted; the message will be delivered again")
            metrics.add_metric(name=RETRIES_METRIC, unit=MetricUnit.Count, value=1)
            raise
        metrics.add_metric(name=OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
        if result.outcome is Outcome.COMPLETED:
            metrics.add_metric(name=SECONDS_METRIC, unit=MetricUnit.Seconds, value=result.seconds)
            metrics.add_metric(name=BYTES_METRIC, unit=MetricUnit.Bytes, value=result.bytes)
        return result.outcome.value


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = PackagerSettings.from_env()
    packager = PlaybackPackager(
        S3PlaybackStore(aws_client("s3"), settings.outputs_bucket),
        FfmpegTools(),
        BusEvents(EventPublisher(settings.event_bus_name)),
        settings,
        gate=DynamoJobGate(settings.jobs_table_name),
    )
    # Directories an invocation stopped at its timeout could not remove; at the start of one, none is in use.
    remove_stale_work_dirs(settings.work_root, WORK_DIR_PREFIX)

    def record_handler(record: SQSRecord) -> str:
        return package_record(record, packager, context.get_remaining_time_in_millis)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
