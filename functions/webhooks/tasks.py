"""Delivery tasks: one SQS message per (job outcome, endpoint, attempt), and the queue adapter that moves them.

Fan-out turns one job event into one task per subscribed endpoint, so an endpoint's failures and waits only ever
hold its own messages. A retry is a new task (attempt + 1, `notBefore` its due time); a task that arrives early is
hidden again with ChangeMessageVisibility (schedule.py explains the limits).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import boto3
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

TASK_KIND = "webhook-delivery"
SQS_BATCH = 10


class TaskEnqueueFailed(RuntimeError):
    pass


class DeliveryTask(BaseModel):
    """One attempt to deliver one job outcome to one endpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    kind: Literal["webhook-delivery"] = TASK_KIND
    webhook_id: str = Field(min_length=1, max_length=100, pattern=r"^msg_[A-Za-z0-9_]+$")
    endpoint_id: str = Field(min_length=1, max_length=100)
    owner_id: str = Field(min_length=1, max_length=1000)
    job_id: str = Field(min_length=1, max_length=100)
    event_type: str = Field(min_length=1, max_length=50)
    occurred_at: str = Field(min_length=1, max_length=50)
    attempt: int = Field(ge=1, le=1000)
    not_before: int = Field(ge=0)
    """Epoch ms before which the attempt is not made."""

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def next_attempt(self, due_ms: int) -> DeliveryTask:
        return self.model_copy(update={"attempt": self.attempt + 1, "not_before": due_ms})


def is_task(message: Any) -> bool:
    return isinstance(message, dict) and message.get("kind") == TASK_KIND


class TaskQueue:
    def __init__(self, queue_url: str, dead_letter_queue_url: str, sqs: Any = None) -> None:
        self._queue_url = queue_url
        self._dlq_url = dead_letter_queue_url
        self._sqs = sqs or boto3.client("sqs")

    def send(self, tasks: Sequence[DeliveryTask], delay_seconds: int = 0) -> None:
        for start in range(0, len(tasks), SQS_BATCH):
            chunk = tasks[start : start + SQS_BATCH]
            entries = [
                {"Id": str(index), "MessageBody": task.to_json(), "DelaySeconds": delay_seconds}
                for index, task in enumerate(chunk)
            ]
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            if response.get("Failed"):
                codes = sorted({failure.get("Code", "?") for failure in response["Failed"]})
                raise TaskEnqueueFailed(f"{len(response['Failed'])} of {len(chunk)} tasks not queued: {codes}")

    def defer(self, receipt_handle: str, seconds: int) -> None:
        """Hide a received task for `seconds` more (it comes back then, one receive later)."""
        self._sqs.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

    def dead_letter(self, task: DeliveryTask, reason: str) -> None:
        """Park a task whose schedule ended; redriving it to the queue makes one more attempt."""
        self._sqs.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=task.to_json(),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:256]}},
        )


def parse_task(message: dict[str, Any]) -> DeliveryTask:
    return DeliveryTask.model_validate(message)


def task_message(task: DeliveryTask) -> dict[str, Any]:
    return json.loads(task.to_json())
