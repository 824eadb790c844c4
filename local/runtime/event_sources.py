"""Emulated event sources: SQS event source mappings, asynchronous deliveries (EventBridge, S3, SNS to Lambda)
and schedule rules, all read from the deployment and all driven through the moto server.

Service-side time (visibility after a failed batch, async retry back-off, event age, schedules) runs on a
compressed local clock; a function's own timeout is never compressed.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from local.engine.deployment import AsyncDelivery, AsyncInvokePolicy, DeclaredResource
from local.engine.emulator import Emulator
from local.permissions import enforcement
from local.runtime.clock import LocalClock
from local.runtime.workers import FunctionError, FunctionRuntime

log = logging.getLogger("local.events")

AwsError = (ClientError, BotoCoreError)
RECEIVE_WAIT_SECONDS = 1
IN_FLIGHT_MARGIN_SECONDS = 30
"""How long a poller waits for a message (in process: `Emulator.message_waiting`) before it looks at `stopping` again;
when one is there it receives it over HTTP, waiting as long again should another poller have taken it first."""


@dataclass
class SourceStats:
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    dead_lettered: int = 0


def is_s3_test_event(shape: str, event: Any) -> bool:
    """moto queues an `s3:TestEvent` when a notification is configured; for a Lambda target AWS sends none."""
    return shape == "s3" and isinstance(event, dict) and event.get("Event") == "s3:TestEvent"


def _sqs_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attributes to the shape Lambda's SQS records carry."""
    converted = {}
    for name, value in attributes.items():
        record: dict[str, Any] = {"dataType": value["DataType"], "stringListValues": [], "binaryListValues": []}
        if "StringValue" in value:
            record["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            record["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        converted[name] = record
    return converted


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": _sqs_message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(response: Any, batch_ids: list[str]) -> list[str]:
    """ReportBatchItemFailures: the ids to retry; a malformed response fails the whole batch, as in Lambda."""
    if response is None or (isinstance(response, dict) and not response.get("batchItemFailures")):
        return []
    if not isinstance(response, dict) or not isinstance(response["batchItemFailures"], list):
        return batch_ids
    failed = []
    for item in response["batchItemFailures"]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in batch_ids:
            return batch_ids
        failed.append(identifier)
    return failed


class _Loop:
    """A background loop that stops promptly when asked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = SourceStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _spawn(self, target: Callable[[], None], count: int = 1) -> None:
        for index in range(count):
            thread = threading.Thread(target=self._guarded(target), name=f"{self.name}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    target()
                except AwsError as err:
                    if self._stop.is_set():
                        return
                    log.warning("%s: %s", self.name, err)
                    self._stop.wait(1.0)

        return run

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=RECEIVE_WAIT_SECONDS + 5)


class SqsEventSource(_Loop):
    """An SQS event source mapping: batches of up to `batch_size`, partial failures, visibility, redrive.

    Redrive to the DLQ is moto's own: a message received more than maxReceiveCount times moves on receive.
    """

    def __init__(
        self, mapping: DeclaredResource, queue_url: str, runtime: FunctionRuntime, emulator: Emulator, clock: LocalClock
    ) -> None:
        super().__init__(f"esm-{mapping.name}")
        inputs = mapping.inputs
        self.queue_arn: str = inputs["eventSourceArn"]
        self.queue_url = queue_url
        self.batch_size = int(inputs.get("batchSize") or 10)
        self.window_seconds = float(inputs.get("maximumBatchingWindowInSeconds") or 0)
        self.partial_failures = "ReportBatchItemFailures" in (inputs.get("functionResponseTypes") or [])
        self.enabled = inputs.get("enabled", True) is not False
        scaling = inputs.get("scalingConfig") or {}
        self.concurrency = int(scaling.get("maximumConcurrency") or runtime.concurrency)
        self._runtime = runtime
        self._aws = emulator
        self._clock = clock
        self._visibility = 30

    def start(self) -> None:
        if not self.enabled:
            return
        attributes = self._aws.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
        )["Attributes"]
        self._visibility = int(attributes["VisibilityTimeout"])
        self._spawn(self._poll_once, min(self.concurrency, self._runtime.concurrency))

    def _poller(self) -> Any:
        """Lambda polls with the function's execution role: its policy decides whether the mapping works at all."""
        return self._aws.client("sqs", self._runtime.spec.credentials or None)

    def _receive_batch(self) -> list[dict[str, Any]]:
        sqs = self._poller()
        messages: list[dict[str, Any]] = []
        window_ends = time.monotonic() + self.window_seconds * self._clock.scale
        if not self._aws.message_waiting(self.queue_url, RECEIVE_WAIT_SECONDS):
            return messages
        while len(messages) < self.batch_size and not self.stopping:
            batch = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else RECEIVE_WAIT_SECONDS,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(batch)
            if not batch or time.monotonic() >= window_ends:
                break
        return messages

    def _poll_once(self) -> None:
        messages = self._receive_batch()
        if not messages:
            return
        self.stats.received += len(messages)
        event = {"Records": [sqs_record(m, self.queue_arn, self._aws.region) for m in messages]}
        ids = [m["MessageId"] for m in messages]
        try:
            response = self._runtime.invoke(event)
        except FunctionError as err:
            log.warning("%s: batch of %d failed: %s", self.name, len(messages), err)
            failed = ids
        else:
            failed = failed_message_ids(response, ids) if self.partial_failures else []
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        self._settle(succeeded, [m for m in messages if m["MessageId"] in failed])

    def _settle(self, succeeded: list[dict[str, Any]], failed: list[dict[str, Any]]) -> None:
        self.stats.succeeded += len(succeeded)
        self.stats.failed += len(failed)
        for chunk in _chunks(succeeded, 10):
            self._poller().delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        # A failed message stays invisible for the queue's visibility timeout, on the local clock: the local cloud's
        # own doing (Lambda just lets the timeout run), so with its own credentials.
        visibility = math.ceil(self._clock.seconds(self._visibility))
        for chunk in _chunks(failed, 10):
            self._aws.client("sqs").change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": visibility}
                    for i, m in enumerate(chunk)
                ],
            )


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _json_path(document: Any, path: str) -> Any:
    """The subset of JSONPath EventBridge's InputPath uses: `$`, `$.a.b`."""
    value = document
    for part in [p for p in path.removeprefix("$").split(".") if p]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


class AsyncDeliveryLoop(_Loop):
    """Delivers events from a local delivery queue to a function asynchronously, with retries and a DLQ."""

    def __init__(
        self,
        delivery: AsyncDelivery,
        policy: AsyncInvokePolicy,
        runtime: FunctionRuntime,
        emulator: Emulator,
        clock: LocalClock,
        *,
        refusal: str = "",
    ) -> None:
        super().__init__(f"delivery-{delivery.source}")
        self.delivery = delivery
        self.policy = policy
        self.runtime = runtime
        self.refusal = refusal
        """Why the function's resource policy does not let this source's service invoke it; empty when it does."""
        self.emulator = emulator
        self.clock = clock
        self._slots = threading.Semaphore(self.runtime.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=self.runtime.concurrency, thread_name_prefix=self.name)

    def start(self) -> None:
        self._spawn(self._poll_once)

    def _poll_once(self) -> None:
        if not self._slots.acquire(timeout=RECEIVE_WAIT_SECONDS):
            return
        if not self.emulator.message_waiting(self.delivery.queue_url, RECEIVE_WAIT_SECONDS):
            self._slots.release()
            return
        messages = (
            self.emulator.client("sqs")
            .receive_message(
                QueueUrl=self.delivery.queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
                VisibilityTimeout=self._in_flight_seconds(),
            )
            .get("Messages", [])
        )
        if not messages:
            self._slots.release()
            return
        self.stats.received += 1
        try:
            delivery = self._pool.submit(self._deliver, messages[0])
        except RuntimeError:
            if not self.stopping:
                raise
            # Stopped while receiving: the event stays in flight in its queue (a restart finds it visible again).
            self._slots.release()
            return
        delivery.add_done_callback(self._report_crash)

    def _in_flight_seconds(self) -> int:
        """How long a received event stays invisible: the longest its delivery can take (every attempt at the
        function's timeout, the back-off between them, a margin), not the queue's 12 h. A receive whose answer never
        arrived (the client retried, the poller died) then leaves the event in flight for minutes, not for good;
        Lambda's asynchronous invocation likewise delivers at least once."""
        attempts = self.policy.max_retry_attempts + 1
        backoff = sum(self.clock.seconds(60 * 2 ** (n - 1)) for n in range(1, attempts))
        return math.ceil(attempts * self.runtime.spec.timeout_seconds + backoff + IN_FLIGHT_MARGIN_SECONDS)

    def _report_crash(self, future: Future[None]) -> None:
        """A delivery that raised past its own handling is a defect of the local cloud: say so, loudly."""
        error = None if future.cancelled() else future.exception()
        if error is not None:
            log.error("%s: delivery crashed; the event stays in its local queue", self.name, exc_info=error)

    def event_for(self, body: str) -> Any:
        delivery = self.delivery
        if delivery.shape == "sns":
            envelope = json.loads(body)
            return {
                "Records": [
                    {
                        "EventSource": "aws:sns",
                        "EventVersion": "1.0",
                        "EventSubscriptionArn": f"{envelope.get('TopicArn')}:{uuid.uuid4()}",
                        "Sns": envelope,
                    }
                ]
            }
        if delivery.constant_input is not None:
            return json.loads(delivery.constant_input)
        event = json.loads(body)
        if delivery.input_path:
            return _json_path(event, delivery.input_path)
        return event

    def _deliver(self, message: dict[str, Any]) -> None:
        try:
            event = self.event_for(message["Body"])
            if is_s3_test_event(self.delivery.shape, event):
                log.debug("%s: dropped S3's test event (AWS never sends it to a function)", self.name)
            elif self.refusal:
                self._refuse(event)
            else:
                self._invoke(event)
            self.emulator.client("sqs").delete_message(
                QueueUrl=self.delivery.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        except AwsError as err:
            if not self.stopping:
                log.warning("%s: %s", self.name, err)
        finally:
            self._slots.release()

    def _refuse(self, event: Any) -> None:
        """The service may not invoke the function: no retries; EventBridge sends the event to the target's DLQ."""
        delivery = self.delivery
        self.stats.failed += 1
        enforcement.refuse(
            delivery.service, delivery.source_arn or delivery.source, delivery.function_arn, self.refusal
        )
        if delivery.shape == "eventbridge" and delivery.target_dead_letter_arn and delivery.rule_arn:
            enforcement.send_to_dead_letter_queue(
                delivery.function_arn.split(":")[4],
                self.emulator.region,
                dead_letter_arn=delivery.target_dead_letter_arn,
                rule_arn=delivery.rule_arn,
                target_arn=delivery.function_arn,
                body=json.dumps(event),
                code="NO_PERMISSIONS",
                message=self.refusal,
            )
            self.stats.dead_lettered += 1

    def _invoke(self, event: Any) -> None:
        """Invoke with Lambda's retries, and count the outcome; a failed event goes to the failure destination."""
        error, attempts = self._invoke_with_retries(event)
        if error is None:
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1
            self._send_to_failure_destination(event, error, attempts)

    def _invoke_with_retries(self, event: Any) -> tuple[FunctionError | None, int]:
        """Lambda's asynchronous invocation: retries about a minute apart, then two, within the event's max age."""
        first_seen = time.monotonic()
        max_age = self.clock.seconds(self.policy.max_event_age_seconds)
        error: FunctionError | None = None
        attempts = 0
        for attempt in range(self.policy.max_retry_attempts + 1):
            if attempt:
                if self._stop.wait(self.clock.seconds(60 * 2 ** (attempt - 1))):
                    break
                if time.monotonic() - first_seen > max_age:
                    break
            attempts += 1
            try:
                self.runtime.invoke(event)
            except FunctionError as err:
                error = err
                log.warning("%s: attempt %d failed: %s", self.name, attempts, err)
                continue
            return None, attempts
        return error, attempts

    def _send_to_failure_destination(self, event: Any, error: FunctionError, attempts: int) -> None:
        """The on-failure destination gets an invocation record; else the function's DLQ gets the event."""
        policy = self.policy
        request_id = str(uuid.uuid4())
        if policy.on_failure_arn:
            record = {
                "version": "1.0",
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "requestContext": {
                    "requestId": request_id,
                    "functionArn": f"{self.delivery.function_arn}:$LATEST",
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": attempts,
                },
                "requestPayload": event,
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "responsePayload": error.error,
            }
            self._send(policy.on_failure_arn, json.dumps(record), {})
        elif policy.dead_letter_arn:
            attributes = {
                "RequestID": request_id,
                "ErrorCode": "200",
                "ErrorMessage": str(error.error.get("errorMessage", ""))[:256] or "-",
            }
            self._send(policy.dead_letter_arn, json.dumps(event), attributes)
        else:
            log.warning("%s: event dropped after %d attempts (no destination declared)", self.name, attempts)
            return
        self.stats.dead_lettered += 1

    def _send(self, target_arn: str, body: str, attributes: dict[str, str]) -> None:
        """Lambda sends to a failure destination or DLQ with the function's execution role."""
        message_attributes = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        credentials = self.runtime.spec.credentials or None
        if ":sqs:" in target_arn:
            # Lambda names the queue by its ARN; looking up its URL is the local cloud's own business.
            queue_url = self.emulator.client("sqs").get_queue_url(QueueName=target_arn.rsplit(":", 1)[1])["QueueUrl"]
            sqs = self.emulator.client("sqs", credentials)
            sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageAttributes=message_attributes)
        elif ":sns:" in target_arn:
            sns = self.emulator.client("sns", credentials)
            sns.publish(TopicArn=target_arn, Message=body, MessageAttributes=message_attributes)
        else:
            log.warning("%s: destination %s is not emulated; record dropped", self.name, target_arn)

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)


_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """Seconds between firings of `rate(...)`; None for cron expressions, which the local clock does not run."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


class ScheduleRunner(_Loop):
    """Fires each enabled `rate(...)` rule on the local clock, sending the Scheduled Event to the rule's targets
    as moto has them (a local delivery queue for Lambda targets, the queue itself for SQS targets)."""

    def __init__(self, rules: list[DeclaredResource], emulator: Emulator, clock: LocalClock) -> None:
        super().__init__("schedules")
        self._aws = emulator
        self._clock = clock
        self.rules = [
            (rule, period)
            for rule in rules
            if rule.state.get("state", "ENABLED") == "ENABLED"
            and (period := rate_seconds(rule.inputs.get("scheduleExpression") or "")) is not None
        ]
        self.fired: dict[str, int] = {}
        self._queue_urls: dict[str, str] = {}

    def start(self) -> None:
        if self.rules:
            self._spawn(self._tick)

    def _tick(self) -> None:
        started = time.monotonic()
        next_fire = {rule.name: started + self._clock.seconds(period) for rule, period in self.rules}
        while not self.stopping:
            now = time.monotonic()
            for rule, period in self.rules:
                if now >= next_fire[rule.name]:
                    self.fire(rule)
                    next_fire[rule.name] = now + self._clock.seconds(period)
            self._stop.wait(max(0.05, min(next_fire.values()) - time.monotonic()))

    def _queue_url(self, queue_arn: str) -> str:
        """A target queue's URL, asked once: on the local clock a `rate(5 minutes)` rule fires every 3 s."""
        if queue_arn not in self._queue_urls:
            sqs = self._aws.client("sqs")
            self._queue_urls[queue_arn] = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        return self._queue_urls[queue_arn]

    def fire(self, rule: DeclaredResource) -> None:
        events = self._aws.client("events")
        bus = rule.state.get("eventBusName", "default")
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": rule.state["arn"].split(":")[4],
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self._aws.region,
            "resources": [rule.state["arn"]],
            "detail": {},
        }
        self.fired[rule.name] = self.fired.get(rule.name, 0) + 1
        for target in events.list_targets_by_rule(Rule=rule.state["name"], EventBusName=bus)["Targets"]:
            if ":sqs:" not in target["Arn"]:
                log.warning("schedule %s: target %s has no local delivery", rule.name, target["Arn"])
                continue
            body = target.get("Input") or json.dumps(event)
            queue_url = self._queue_url(target["Arn"])
            self._aws.client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)
