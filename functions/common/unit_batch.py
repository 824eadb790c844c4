"""The Powertools wiring the unit functions' handlers share (transcode, audio, images): an SQS batch of fan-out
messages in, each record's units made, partial failures out, and every unit's outcome counted as a metric.

Records whose body is not a fan-out message fail validation in the batch processor, are retried, and end in the DLQ.
A batch whose records all failed is answered like any other (every id listed) rather than raised, so the invocation
itself succeeds. Work the job gate withdrew (the job was canceled, or moved to another attempt) is dropped: its record
succeeds, logged and counted as `WorkWithdrawn`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.job_gate import WorkWithdrawn, drop_withdrawn
from functions.common.observability import logger, metrics, tracer
from functions.common.unit_worker import Outcome, UnitResult, remove_stale_work_dirs
from functions.contracts.fanout import FanOutMessage, FanOutQueueRecord

RENDITION_OUTCOME_METRICS: Mapping[Outcome, str] = {
    Outcome.COMPLETED: "RenditionsCompleted",
    Outcome.REANNOUNCED: "RenditionsReannounced",
    Outcome.FAILED: "RenditionsFailed",
    Outcome.DROPPED: "MessagesDropped",
}
"""The outcome metrics of the functions whose units are renditions of the job (transcode, images)."""


class FanOutBatch:
    """One unit function's batch wiring: its batch processor, and what it calls its metrics and its work."""

    def __init__(self, *, outcomes: Mapping[Outcome, str], retries: str, seconds: str, work: str) -> None:
        self.processor = BatchProcessor(
            event_type=EventType.SQS, model=FanOutQueueRecord, raise_on_entire_batch_failure=False
        )
        self.outcomes = outcomes
        """One count per unit, by how it ended."""
        self.retries = retries
        """A record returned to the queue (the work raised)."""
        self.seconds = seconds
        """How long a completed unit's work took, as the function measures it."""
        self.work = work
        """`… interrupted; the message will be delivered again`."""

    def process(
        self,
        event: dict[str, Any],
        context: LambdaContext,
        record_handler: Callable[[FanOutQueueRecord], str],
        *,
        work_root: Path,
        work_dir_prefix: str,
    ) -> dict[str, Any]:
        """Remove the working directories interrupted invocations left, then handle every record; the batch's
        partial failures (the records to deliver again)."""
        remove_stale_work_dirs(work_root, work_dir_prefix)
        return process_partial_response(
            event=event, record_handler=record_handler, processor=self.processor, context=context
        )

    def make_units(
        self, record: FanOutQueueRecord, make: Callable[[FanOutMessage], Sequence[UnitResult]], **log_keys: object
    ) -> str:
        """Make the units of one record's message with `make`, in the log context of its job (and `log_keys`), and
        count how each ended; raising marks the record for redelivery, withdrawn work is dropped."""
        message = record.body
        receive_count = record.attributes.ApproximateReceiveCount
        with logger.append_context_keys(
            jobId=message.jobId, attempt=message.attempt, **log_keys, receiveCount=receive_count
        ):
            tracer.put_annotation("jobId", message.jobId)
            try:
                results = make(message)
            except WorkWithdrawn as withdrawn:
                return drop_withdrawn(withdrawn)
            except Exception:
                # Logged here, with the jobId, then re-raised: the batch processor returns the record to the queue.
                logger.exception(f"{self.work} interrupted; the message will be delivered again")
                metrics.add_metric(name=self.retries, unit=MetricUnit.Count, value=1)
                raise
            for result in results:
                metrics.add_metric(name=self.outcomes[result.outcome], unit=MetricUnit.Count, value=1)
                if result.outcome is Outcome.COMPLETED and result.stored is not None:
                    metrics.add_metric(name=self.seconds, unit=MetricUnit.Seconds, value=result.seconds)
                    metrics.add_metric(name="OutputBytes", unit=MetricUnit.Bytes, value=result.stored.bytes)
            return ",".join(f"{result.unit}:{result.outcome.value}" for result in results)
