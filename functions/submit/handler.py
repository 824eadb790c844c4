"""Submit Lambda entry point: the `mediaconvert` queue's SQS batch of fan-out messages in, partial failures out.

Each record asks for the pipeline job's one MediaConvert job (functions/submit/submission.py says how it stays
one). Records that are not fan-out messages fail validation and, after their retries, land in the DLQ; AWS errors
raise, so SQS redelivers the record and the retry finds what the failed attempt recorded.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.events import EventPublisher
from functions.common.jobs_table import JobsTable
from functions.submit.mediaconvert import MediaConvertJobs
from functions.submit.messages import SubmitQueueRecord
from functions.submit.settings import SubmitSettings
from functions.submit.source import ValidatedSources
from functions.submit.submission import JobSubmitter, Outcome

logger = Logger()
metrics = Metrics()
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.SQS, model=SubmitQueueRecord, raise_on_entire_batch_failure=False)

OUTCOME_METRICS = {
    Outcome.SUBMITTED: "MediaConvertJobsSubmitted",
    Outcome.ALREADY_SUBMITTED: "DuplicateSubmissionsSkipped",
    Outcome.DUPLICATE_JOB: "DuplicateMediaConvertJobs",
    Outcome.NOT_APPLICABLE: "SubmissionsNotApplicable",
    Outcome.REFUSED: "MediaConvertJobsRefused",
    Outcome.JOB_NOT_FOUND: "SubmissionsForUnknownJobs",
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def mediaconvert_client() -> Any:
    """boto3's MediaConvert client for the function's region; AWS_ENDPOINT_URL_MEDIACONVERT overrides the endpoint."""
    return boto3.client("mediaconvert")


def build_submitter(settings: SubmitSettings) -> JobSubmitter:
    return JobSubmitter(
        settings=settings,
        jobs=JobsTable(settings.jobs_table_name),
        mediaconvert=MediaConvertJobs(mediaconvert_client()),
        sources=ValidatedSources(boto3.client("s3")),
        events=EventPublisher(settings.event_bus_name, boto3.client("events")),
        clock=now_ms,
    )


@tracer.capture_method
def submit_record(record: SubmitQueueRecord, submitter: JobSubmitter) -> str:
    """One fan-out message; raising marks the record for redelivery."""
    message = record.body
    with logger.append_context_keys(jobId=message.jobId):
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
    settings = SubmitSettings.from_env()
    # Powertools reads the namespace at import; a host that imports before configuring (the local cloud) sets it here.
    metrics.namespace = settings.metrics_namespace
    submitter = build_submitter(settings)

    def record_handler(record: SubmitQueueRecord) -> str:
        return submit_record(record, submitter)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
