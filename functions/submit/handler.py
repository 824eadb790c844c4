"""Submit Lambda entry point: the `mediaconvert` queue's SQS batch of fan-out messages in, partial failures out.

Each record asks for the pipeline job's one MediaConvert job (functions/submit/service.py says how it stays one).
Records that are not fan-out messages fail validation and, after their retries, land in the DLQ; AWS errors
raise, so SQS redelivers the record and the retry finds what the failed attempt recorded.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clock import now_ms
from functions.common.event_bus import EventPublisher
from functions.common.job_gate import WORK_WITHDRAWN_METRIC, DynamoJobGate
from functions.common.jobs_table import JobsTable
from functions.common.observability import logger, metrics, tracer
from functions.contracts.fanout import FanOutQueueRecord
from functions.submit.adapters import MediaConvertJobs, ValidatedSources
from functions.submit.service import JobSubmitter, Outcome
from functions.submit.settings import SubmitSettings

processor = BatchProcessor(event_type=EventType.SQS, model=FanOutQueueRecord, raise_on_entire_batch_failure=False)

OUTCOME_METRICS = {
    Outcome.SUBMITTED: "MediaConvertJobsSubmitted",
    Outcome.ALREADY_SUBMITTED: "DuplicateSubmissionsSkipped",
    Outcome.DUPLICATE_JOB: "DuplicateMediaConvertJobs",
    Outcome.NOT_APPLICABLE: "SubmissionsNotApplicable",
    Outcome.REFUSED: "MediaConvertJobsRefused",
    Outcome.JOB_NOT_FOUND: "SubmissionsForUnknownJobs",
    Outcome.WITHDRAWN: WORK_WITHDRAWN_METRIC,
}


def build_submitter(settings: SubmitSettings) -> JobSubmitter:
    return JobSubmitter(
        settings=settings,
        jobs=JobsTable(settings.jobs_table_name),
        mediaconvert=MediaConvertJobs(),
        sources=ValidatedSources(),
        events=EventPublisher(settings.event_bus_name),
        gate=DynamoJobGate(settings.jobs_table_name),
        clock=now_ms,
    )


@tracer.capture_method
def submit_record(record: FanOutQueueRecord, submitter: JobSubmitter) -> str:
    """One fan-out message; raising marks the record for redelivery."""
    message = record.body
    with logger.append_context_keys(jobId=message.jobId, attempt=message.attempt):
        tracer.put_annotation("jobId", message.jobId)
        logger.info("submitting", extra={"receiveCount": record.attributes.ApproximateReceiveCount})
        result = submitter.submit(message)
        metrics.add_metric(name=OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
        logger.info(
            "message handled", extra={"outcome": result.outcome.value, "mediaConvertJobId": result.mediaconvert_job_id}
        )
        return result.outcome.value


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    submitter = build_submitter(SubmitSettings.from_env())

    def record_handler(record: FanOutQueueRecord) -> str:
        return submit_record(record, submitter)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
