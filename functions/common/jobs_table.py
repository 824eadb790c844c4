"""DynamoDB adapter for the jobs table: every write is conditional on the version (and status) it read."""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from functions.common.clients import dynamodb_resource
from functions.common.job_history import HISTORY_ATTRIBUTE, appended, history_entry
from functions.contracts.jobs import OPEN_MARKER, JobRecord

# Index names are part of the table's contract with components/tracker.py, which imports them.
OWNER_INDEX = "byOwner"  # ownerId + createdAt: GET /jobs, newest first
OPEN_DEADLINE_INDEX = "openByDeadline"  # openJob + deadlineAt, sparse: the deadline sweep


class JobNotFound(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class JobAlreadyExists(RuntimeError):
    pass


class ConcurrentUpdate(RuntimeError):
    """Another writer kept winning the conditional write; the caller's message is retried by its queue."""


class InvalidCursor(ValueError):
    pass


def to_dynamo(value: Any) -> Any:
    """Floats become Decimals (DynamoDB has no float); None values in maps are kept as NULL."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    """Decimals back to int or float, so the state machine and the API see plain JSON types."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


def encode_cursor(last_key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(from_dynamo(last_key), separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, owner_id: str) -> dict[str, Any]:
    """A cursor is only valid for the owner it was issued to; anything else is a client error."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as err:
        raise InvalidCursor("cursor is not one this API issued") from err
    expected = {"jobId", "ownerId", "createdAt"}
    if not isinstance(key, dict) or set(key) != expected or key.get("ownerId") != owner_id:
        raise InvalidCursor("cursor is not one this API issued")
    if not isinstance(key["jobId"], str) or not isinstance(key["createdAt"], int):
        raise InvalidCursor("cursor is not one this API issued")
    # Values DynamoDB (or boto3's Decimal context) would refuse with an error of its own: an empty key,
    # a boolean where a number belongs, a number beyond 38 digits.
    if not key["jobId"] or isinstance(key["createdAt"], bool) or not 0 <= key["createdAt"] < 10**15:
        raise InvalidCursor("cursor is not one this API issued")
    return key


class JobsTable:
    def __init__(self, table_name: str, dynamodb: Any = None) -> None:
        self._table = (dynamodb or dynamodb_resource()).Table(table_name)
        # Who writes, in the job's history: the function (Powertools' service name, set per function by its component).
        self._writer = os.environ.get("POWERTOOLS_SERVICE_NAME", "unknown")

    def create(self, job: JobRecord) -> None:
        try:
            self._table.put_item(Item=to_dynamo(job.to_item()), ConditionExpression="attribute_not_exists(jobId)")
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise JobAlreadyExists(job.jobId) from err
            raise

    def get(self, job_id: str) -> JobRecord:
        return self._read(job_id)[0]

    def _read(self, job_id: str) -> tuple[JobRecord, list[Any]]:
        """The record and its history (kept beside it in the item, see `job_history`)."""
        item = self._table.get_item(Key={"jobId": job_id}, ConsistentRead=True).get("Item")
        if item is None:
            raise JobNotFound(job_id)
        plain = from_dynamo(item)
        history = plain.pop(HISTORY_ATTRIBUTE, None) or []
        return JobRecord.from_item(plain), history

    def list_for_owner(self, owner_id: str, *, limit: int, cursor: str | None) -> tuple[list[JobRecord], str | None]:
        query: dict[str, Any] = {
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": Key("ownerId").eq(owner_id),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            query["ExclusiveStartKey"] = decode_cursor(cursor, owner_id)
        page = self._table.query(**query)
        last_key = page.get("LastEvaluatedKey")
        jobs = [JobRecord.from_item(from_dynamo(item)) for item in page["Items"]]
        return jobs, encode_cursor(last_key) if last_key else None

    def change(
        self, job_id: str, transition: Callable[[JobRecord], JobRecord | None], *, attempts: int = 5
    ) -> tuple[JobRecord, JobRecord] | None:
        """Read, apply a pure transition, write conditionally; returns (before, after), or None for a no-op."""
        for _ in range(attempts):
            before, history = self._read(job_id)
            after = transition(before)
            if after is None:
                return None
            after = after.model_copy(update={"version": before.version + 1})
            entry = history_entry(before, after, at=int(time.time() * 1000), by=self._writer)
            try:
                self._table.put_item(
                    Item=to_dynamo({**after.to_item(), HISTORY_ATTRIBUTE: appended(history, entry)}),
                    ConditionExpression="#version = :version AND #status = :status",
                    ExpressionAttributeNames={"#version": "version", "#status": "status"},
                    ExpressionAttributeValues={":version": before.version, ":status": str(before.status)},
                )
            except ClientError as err:
                if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue  # someone else wrote first: re-read and decide again
            return before, after
        raise ConcurrentUpdate(f"job {job_id}: {attempts} conditional writes lost to concurrent updates")

    def open_jobs_due(self, now: int) -> Iterator[str]:
        """IDs of jobs still open whose deadline has passed."""
        query: dict[str, Any] = {
            "IndexName": OPEN_DEADLINE_INDEX,
            "KeyConditionExpression": Key("openJob").eq(OPEN_MARKER) & Key("deadlineAt").lte(now),
            "ProjectionExpression": "jobId",
        }
        while True:
            page = self._table.query(**query)
            for item in page["Items"]:
                yield item["jobId"]
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
