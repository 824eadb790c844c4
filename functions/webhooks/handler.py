"""Webhooks Lambda entry point: the delivery queue's SQS batch in, partial batch failures out.

The queue carries two kinds of message: job outcome events (from the rule on the custom bus), which fan out into
one delivery task per subscribed endpoint, and those tasks. A batch's HTTP attempts run concurrently in worker
threads, each bounded by the delivery timeout, so a slow or dead endpoint holds up nobody else's delivery; every
AWS call stays on the event loop's thread. A task that is not due yet is hidden again and reported as a failed
record, which keeps it in the queue.
"""

from __future__ import annotations

import asyncio
import json
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from functions.common.clock import now_ms
from functions.common.download_links import DownloadLinks
from functions.common.jobs_table import JobsTable
from functions.common.observability import logger, metrics, tracer
from functions.common.playback_links import PlaybackLinks
from functions.common.ssrf import AddressPolicy
from functions.common.webhook_tables import DeliveryLog, EndpointsTable
from functions.contracts.events import SOURCE
from functions.contracts.webhooks import event_type_for
from functions.webhooks.adapters import SqsTaskQueue, Transport
from functions.webhooks.service import (
    MAX_CONCURRENT_ATTEMPTS,
    DeliveryTask,
    JobOutcome,
    Outcome,
    Skipped,
    TaskNotDue,
    WebhookService,
    is_task,
)
from functions.webhooks.settings import WebhooksSettings

# A batch of only not-yet-due tasks fails every record on purpose: that is not an invocation error.
processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# A claimed attempt still SENDING after this long was abandoned by an invocation that died: Lambda ends every
# invocation at the function timeout (60 s, components/webhooks.py), so no live attempt is older. A task that meets a
# younger claim comes back when it runs out (WebhookService._resume).
CLAIM_LEASE_MS = 90_000
# A thread per attempt of a batch, so none waits for a slot behind a slow endpoint (asyncio's default executor has
# as few as five threads on a small Lambda).
attempts = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_ATTEMPTS, thread_name_prefix="webhook-attempt")


class MalformedMessage(ValueError):
    """A queue message that is neither a delivery task nor a job outcome event; after its retries, the DLQ."""


@dataclass(frozen=True)
class Dependencies:
    service: WebhookService
    transport: Transport


@cache
def dependencies() -> Dependencies:
    """Settings, clients and the service, built once per execution environment (tests reset with `cache_clear`)."""
    settings = WebhooksSettings.from_env()
    service = WebhookService(
        endpoints=EndpointsTable(settings.endpoints_table),
        log=DeliveryLog(settings.deliveries_table),
        jobs=JobsTable(settings.jobs_table),
        queue=SqsTaskQueue(settings.queue_url, settings.dead_letter_queue_url),
        download_url=DownloadLinks(settings.outputs_bucket, settings.download_url_ttl_seconds).url,
        sign_playback=PlaybackLinks.from_env().signed,
        schedule=settings.schedule,
        clock_ms=now_ms,
        rng=random.SystemRandom(),
        log_retention_seconds=settings.log_retention_days * 86_400,
        lease_ms=CLAIM_LEASE_MS,
    )
    policy = AddressPolicy(allowed=settings.allowed_networks, allowed_ports=settings.allowed_ports)
    transport = Transport(policy=policy, timeout_seconds=settings.timeout_seconds)
    return Dependencies(service=service, transport=transport)


async def handle_record(record: SQSRecord) -> str:
    """One message: a task is attempted, an event fanned out. Raising reports the record as failed."""
    deps = dependencies()
    try:
        try:
            message = json.loads(record.body)
        except ValueError as err:
            raise MalformedMessage("message body is not JSON") from err
        if is_task(message):
            return await _attempt(deps, DeliveryTask.model_validate(message), record.receipt_handle)
        return _fan_out(deps, message)
    except (MalformedMessage, ValidationError) as err:
        logger.error(f"message cannot be handled: {err}", extra={"messageId": record.message_id})
        raise
    except (ClientError, BotoCoreError) as err:
        logger.warning(f"AWS call failed; the message is retried: {err}", extra={"messageId": record.message_id})
        raise


async def _attempt(deps: Dependencies, task: DeliveryTask, receipt_handle: str) -> str:
    keys = {"jobId": task.job_id, "endpointId": task.endpoint_id, "webhookId": task.webhook_id, "attempt": task.attempt}
    try:
        step = deps.service.prepare(task, receipt_handle)
    except TaskNotDue as not_due:
        logger.debug("task not due yet; hidden again", extra={**keys, "seconds": not_due.seconds})
        raise
    if isinstance(step, Skipped):
        logger.info(f"task skipped: {step.reason}", extra=keys)
        metrics.add_metric(name="WebhookTasksSkipped", unit=MetricUnit.Count, value=1)
        return "skipped"
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(attempts, deps.transport.post, step.url, step.body, step.headers)
    entry = deps.service.finish(step, result)
    _record(entry, keys, result.detail)
    return str(entry["outcome"])


def _record(entry: dict[str, Any], keys: dict[str, Any], detail: str | None) -> None:
    """One log line and the metrics of a finished attempt; the line has the details the delivery log leaves out."""
    outcome = Outcome(entry["outcome"])
    extra = {**keys, "outcome": outcome, "statusCode": entry.get("statusCode"), "durationMs": entry.get("durationMs")}
    if detail:
        extra["detail"] = detail
    if outcome is Outcome.DELIVERED:
        logger.info("webhook delivered", extra=extra)
        metrics.add_metric(name="WebhooksDelivered", unit=MetricUnit.Count, value=1)
        return
    logger.warning(f"webhook attempt failed: {entry.get('error')}", extra=extra)
    metrics.add_metric(name="WebhookAttemptsFailed", unit=MetricUnit.Count, value=1)
    if outcome is Outcome.DEAD_LETTERED:
        metrics.add_metric(name="WebhooksDeadLettered", unit=MetricUnit.Count, value=1)
    elif outcome is Outcome.ENDPOINT_DISABLED:
        metrics.add_metric(name="WebhookEndpointsDisabled", unit=MetricUnit.Count, value=1)


def _fan_out(deps: Dependencies, message: Any) -> str:
    try:
        envelope = parse(event=message, model=EventBridgeModel)
    except ValidationError as err:
        raise MalformedMessage("message is neither a delivery task nor an EventBridge event") from err
    event_type = event_type_for(envelope.detail_type)
    detail = envelope.detail if isinstance(envelope.detail, dict) else {}
    job_id, owner_id = detail.get("jobId"), detail.get("ownerId")
    if envelope.source != SOURCE or event_type is None:
        logger.warning("event webhooks do not announce; dropped", extra={"detailType": envelope.detail_type})
        return "ignored"
    if not (isinstance(job_id, str) and job_id and isinstance(owner_id, str) and owner_id):
        raise MalformedMessage(f"{envelope.detail_type} without jobId and ownerId")
    occurred_at = envelope.time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    attempt = detail.get("attempt", 1)
    job_attempt = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 1 else 1
    tasks = deps.service.fan_out(JobOutcome(job_id, owner_id, event_type, occurred_at, job_attempt))
    logger.info("job outcome fanned out", extra={"jobId": job_id, "eventType": event_type, "tasks": len(tasks)})
    metrics.add_metric(name="WebhookTasksQueued", unit=MetricUnit.Count, value=len(tasks))
    return f"{len(tasks)} tasks"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    dependencies()  # a misconfigured function fails the invocation, rather than every record quietly
    return async_process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
