"""DynamoDB adapter for the usage table: one record per owner (`ownerId` key), written with the owner's new job.

Creating a job under the quotas is one transaction: the usage record, put on the condition that its version is still
the one read (or that there is none yet), and the job, put on the condition that its ID is new. A request that loses
the race to another one re-reads and decides again, so concurrent requests are admitted one after another and never
together past a limit; a refused request writes nothing. The record's `expiresAt` (TTL) is when nothing in it counts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from functions.common.clients import dynamodb_resource
from functions.common.jobs_table import JobAlreadyExists, to_dynamo
from functions.contracts.jobs import JobRecord

# Every lost race means another request was admitted, so after a few dozen rounds the owner is at a limit and the
# re-read refuses; conflicts DynamoDB reports as TransactionConflict are tried again after a random wait (full jitter).
TRANSACTION_ATTEMPTS = 40
CONFLICT_BACKOFF_SECONDS = 0.02
CONFLICT_BACKOFF_CAP_SECONDS = 0.5


class UsageBusy(RuntimeError):
    """The owner's usage kept changing under this request (every attempt lost the race)."""


def _cancellation_codes(err: ClientError) -> list[str]:
    return [str(reason.get("Code") or "None") for reason in err.response.get("CancellationReasons") or []]


class UsageTable:
    """Usage records (plain dicts in the table's shape: `ownerId`, `version`, `openUploads`, `hourStart`,
    `jobsThisHour`, `storedByDay`, `expiresAt`)."""

    def __init__(self, table_name: str, jobs_table_name: str, dynamodb: Any = None) -> None:
        self._table = (dynamodb or dynamodb_resource()).Table(table_name)
        self._jobs_table_name = jobs_table_name

    def get(self, owner_id: str) -> dict[str, Any] | None:
        return self._table.get_item(Key={"ownerId": owner_id}, ConsistentRead=True).get("Item")

    def create_job(self, job: JobRecord, next_usage: Callable[[dict[str, Any] | None], dict[str, Any]]) -> None:
        """Put `job` with the owner's usage record as `next_usage(record read)` makes it, atomically; whatever
        `next_usage` raises (a refusal) propagates with nothing written. UsageBusy if every attempt lost the race."""
        client = self._table.meta.client
        for attempt in range(TRANSACTION_ATTEMPTS):
            before = self.get(job.ownerId)
            after = next_usage(before)
            if before is None:
                guard: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(ownerId)"}
            else:
                guard = {
                    "ConditionExpression": "#version = :version",
                    "ExpressionAttributeNames": {"#version": "version"},
                    "ExpressionAttributeValues": {":version": before["version"]},
                }
            items = [
                {"Put": {"TableName": self._table.name, "Item": to_dynamo(after), **guard}},
                {
                    "Put": {
                        "TableName": self._jobs_table_name,
                        "Item": to_dynamo(job.to_item()),
                        "ConditionExpression": "attribute_not_exists(jobId)",
                    }
                },
            ]
            try:
                client.transact_write_items(TransactItems=items)
                return
            except ClientError as err:
                if err.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                codes = [*_cancellation_codes(err), "None", "None"]
                if codes[1] == "ConditionalCheckFailed":
                    raise JobAlreadyExists(job.jobId) from err
                if codes[0] == "ConditionalCheckFailed":
                    continue  # another request was admitted meanwhile: re-read and decide again
                if "TransactionConflict" not in codes:
                    raise
            backoff = min(CONFLICT_BACKOFF_CAP_SECONDS, CONFLICT_BACKOFF_SECONDS * 2**attempt)
            time.sleep(random.uniform(0, backoff))
        raise UsageBusy(job.ownerId)

    def update(self, owner_id: str, next_usage: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        """Replace the owner's record with `next_usage(record read)`, conditionally on its version; nothing when there
        is no record or `next_usage` returns None. UsageBusy if every attempt lost the race."""
        for _ in range(TRANSACTION_ATTEMPTS):
            before = self.get(owner_id)
            after = next_usage(before) if before is not None else None
            if after is None:
                return
            try:
                self._table.put_item(
                    Item=to_dynamo(after),
                    ConditionExpression="#version = :version",
                    ExpressionAttributeNames={"#version": "version"},
                    ExpressionAttributeValues={":version": before["version"]},
                )
                return
            except ClientError as err:
                if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        raise UsageBusy(owner_id)
