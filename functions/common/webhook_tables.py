"""DynamoDB adapters: the endpoints table and the delivery log (one item per attempt, expiring with TTL).

The cap on an owner's endpoints is kept by a counter item beside them (`endpointId` `#count`, never an endpoint id):
creating an endpoint is one transaction that raises the count only while it is below the cap and puts the endpoint;
deleting one removes it and lowers the count in one transaction. A count-then-create would let concurrent
registrations all see room and all create. An owner without a counter (endpoints made before it existed) gets one
from a consistent count of their endpoints the first time a create or delete needs it; nothing can change the set
meanwhile, since every create and delete needs the counter.

A delivery-log item is keyed by endpoint and attempt (`{webhookId}#{attempt}`), so writing it first, conditionally,
claims the attempt: a duplicate task (a redelivered message, a duplicated bus event) finds the claim and does not
send again. A claim still SENDING after `lease_ms` belongs to an invocation that died, and may be taken over.
"""

from __future__ import annotations

import random
import time
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from functions.common.clients import dynamodb_resource
from functions.common.jobs_table import from_dynamo, to_dynamo
from functions.contracts.webhooks import MAX_ENDPOINTS_PER_OWNER, Endpoint, EndpointStatus

DELIVERIES_BY_TIME_INDEX = "byAttemptedAt"  # endpointId + attemptedAt: the endpoint's recent attempts
SENDING = "sending"
COUNTER_ID = "#count"  # the endpointId of an owner's counter item; `#` is never in an endpoint id
COUNT = "endpointCount"
# Concurrent transactions on one owner's counter are refused with TransactionConflict; each is tried again after a
# random wait (full jitter) that doubles up to the cap, so 20 at once settle in a few hundred milliseconds.
TRANSACTION_ATTEMPTS = 10
CONFLICT_BACKOFF_SECONDS = 0.02
CONFLICT_BACKOFF_CAP_SECONDS = 0.5


class EndpointNotFound(LookupError):
    pass


class TooManyEndpoints(RuntimeError):
    """The owner already has as many endpoints as the cap allows."""


class EndpointsBusy(RuntimeError):
    """The owner's endpoints kept changing under this request (every transaction attempt met a conflict)."""


class SecretChangedConcurrently(RuntimeError):
    pass


class AttemptAlreadyClaimed(RuntimeError):
    """Another task holds, or has finished, this attempt; `existing` is its delivery-log item."""

    def __init__(self, existing: dict[str, Any]) -> None:
        super().__init__(f"attempt {existing.get('attemptId')} already claimed")
        self.existing = existing


def _conditional_failed(err: ClientError) -> bool:
    return err.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _cancellation_codes(err: ClientError) -> list[str]:
    """Each transaction item's reason (`None`, `ConditionalCheckFailed`, `TransactionConflict`, ...)."""
    return [str(reason.get("Code") or "None") for reason in err.response.get("CancellationReasons") or []]


def attempt_id(webhook_id: str, attempt: int) -> str:
    return f"{webhook_id}#{attempt:03d}"


class EndpointsTable:
    def __init__(self, table_name: str, dynamodb: Any = None) -> None:
        self._table = (dynamodb or dynamodb_resource()).Table(table_name)

    def create(self, endpoint: Endpoint, *, limit: int = MAX_ENDPOINTS_PER_OWNER) -> None:
        """Store a new endpoint and count it, atomically; TooManyEndpoints when its owner already has `limit`."""
        owner_id = endpoint["ownerId"]
        count_it = self._count_change(owner_id, "+", "#count < :limit", {":limit": limit})
        put = {
            "Put": {
                "TableName": self._table.name,
                "Item": to_dynamo(endpoint),
                "ConditionExpression": "attribute_not_exists(endpointId)",
            }
        }
        failed = self._transact(owner_id, [count_it, put])
        if failed == "counter":
            raise TooManyEndpoints(owner_id)
        # failed == "item": the endpoint exists already, i.e. this very transaction committed and its answer was lost
        # (endpoint ids are ULIDs): the create happened once.

    def get(self, owner_id: str, endpoint_id: str) -> Endpoint:
        key = {"ownerId": owner_id, "endpointId": endpoint_id}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item") if endpoint_id != COUNTER_ID else None
        if item is None:
            raise EndpointNotFound(endpoint_id)
        return from_dynamo(item)

    def list_for_owner(self, owner_id: str) -> list[Endpoint]:
        """Every endpoint of one owner (at most MAX_ENDPOINTS_PER_OWNER and the counter, so one page)."""
        page = self._table.query(
            KeyConditionExpression=Key("ownerId").eq(owner_id),
            ConsistentRead=True,
            Limit=MAX_ENDPOINTS_PER_OWNER * 2,
        )
        return [from_dynamo(item) for item in page["Items"] if item["endpointId"] != COUNTER_ID]

    def delete(self, owner_id: str, endpoint_id: str) -> None:
        """Remove an endpoint and uncount it, atomically; EndpointNotFound when the owner has no such endpoint."""
        if endpoint_id == COUNTER_ID:
            raise EndpointNotFound(endpoint_id)
        uncount = self._count_change(owner_id, "-", "attribute_exists(#count)", {})
        remove = {
            "Delete": {
                "TableName": self._table.name,
                "Key": {"ownerId": owner_id, "endpointId": endpoint_id},
                "ConditionExpression": "attribute_exists(endpointId)",
            }
        }
        if self._transact(owner_id, [uncount, remove]) == "item":
            raise EndpointNotFound(endpoint_id)

    def _count_change(self, owner_id: str, sign: str, condition: str, values: dict[str, Any]) -> dict[str, Any]:
        """The counter item's part of a transaction: add or take one, under `condition`."""
        return {
            "Update": {
                "TableName": self._table.name,
                "Key": {"ownerId": owner_id, "endpointId": COUNTER_ID},
                "UpdateExpression": f"SET #count = #count {sign} :one",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#count": COUNT},
                "ExpressionAttributeValues": {":one": 1, **values},
                # On a failed condition the answer carries the counter, if there is one: a missing counter is not a
                # full one.
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _transact(self, owner_id: str, items: list[dict[str, Any]]) -> str | None:
        """Run [counter change, endpoint change] as one transaction; which condition failed ("counter", "item"),
        or None when it was applied. Starts a missing counter and retries conflicts; EndpointsBusy if they persist."""
        client = self._table.meta.client
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                client.transact_write_items(TransactItems=items)
                return None
            except ClientError as err:
                if err.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                codes = [*_cancellation_codes(err), "None", "None"]
                if codes[0] == "ConditionalCheckFailed":
                    counter = (err.response.get("CancellationReasons") or [{}])[0].get("Item")
                    if counter:
                        return "counter"
                    self._start_counter(owner_id)
                    continue
                if codes[1] == "ConditionalCheckFailed":
                    return "item"
                if "TransactionConflict" not in codes:
                    raise
            backoff = min(CONFLICT_BACKOFF_CAP_SECONDS, CONFLICT_BACKOFF_SECONDS * 2**attempt)
            time.sleep(random.uniform(0, backoff))
        raise EndpointsBusy(owner_id)

    def _start_counter(self, owner_id: str) -> None:
        """Give an owner without a counter one, from a consistent count of their endpoints (another request's
        counter, created meanwhile, wins: it counted the same endpoints)."""
        count, start = 0, None
        while True:
            page = self._table.query(
                KeyConditionExpression=Key("ownerId").eq(owner_id),
                ConsistentRead=True,
                Select="COUNT",
                **({"ExclusiveStartKey": start} if start else {}),
            )
            count += int(page["Count"])
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        try:
            self._table.put_item(
                Item={"ownerId": owner_id, "endpointId": COUNTER_ID, COUNT: count},
                ConditionExpression="attribute_not_exists(endpointId)",
            )
        except ClientError as err:
            if not _conditional_failed(err):
                raise

    def rotate_secret(self, before: Endpoint, after: Endpoint) -> None:
        """Store `after`'s secrets if the endpoint still has the secret `before` had (two rotations never both win)."""
        try:
            self._table.update_item(
                Key={"ownerId": before["ownerId"], "endpointId": before["endpointId"]},
                UpdateExpression=(
                    "SET #secret = :secret, previousSecret = :previous, "
                    "previousSecretExpiresAt = :expires, updatedAt = :now"
                ),
                ConditionExpression="#secret = :expected",
                ExpressionAttributeNames={"#secret": "secret"},
                ExpressionAttributeValues={
                    ":secret": after["secret"],
                    ":previous": after["previousSecret"],
                    ":expires": after["previousSecretExpiresAt"],
                    ":now": after["updatedAt"],
                    ":expected": before["secret"],
                },
            )
        except ClientError as err:
            if _conditional_failed(err):
                raise SecretChangedConcurrently(before["endpointId"]) from err
            raise

    def disable(self, owner_id: str, endpoint_id: str, *, reason: str, now_ms: int) -> None:
        """Stop deliveries to an endpoint that is gone; a no-op when it was deleted meanwhile."""
        try:
            self._table.update_item(
                Key={"ownerId": owner_id, "endpointId": endpoint_id},
                UpdateExpression="SET #status = :disabled, disabledReason = :reason, updatedAt = :now",
                ConditionExpression="attribute_exists(endpointId)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":disabled": str(EndpointStatus.DISABLED),
                    ":reason": reason,
                    ":now": now_ms,
                },
            )
        except ClientError as err:
            if not _conditional_failed(err):
                raise


class DeliveryLog:
    def __init__(self, table_name: str, dynamodb: Any = None) -> None:
        self._table = (dynamodb or dynamodb_resource()).Table(table_name)

    def claim(self, entry: dict[str, Any], *, lease_ms: int) -> None:
        """Record an attempt as SENDING unless it is already claimed (and not abandoned)."""
        try:
            self._table.put_item(
                Item=to_dynamo({**entry, "outcome": SENDING}),
                ConditionExpression="attribute_not_exists(attemptId) OR (#outcome = :sending AND #at < :stale)",
                ExpressionAttributeNames={"#outcome": "outcome", "#at": "attemptedAt"},
                ExpressionAttributeValues={":sending": SENDING, ":stale": entry["attemptedAt"] - lease_ms},
            )
        except ClientError as err:
            if not _conditional_failed(err):
                raise
            key = {"endpointId": entry["endpointId"], "attemptId": entry["attemptId"]}
            existing = self._table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
            raise AttemptAlreadyClaimed(from_dynamo(existing) or {"attemptId": entry["attemptId"]}) from err

    def finish(self, entry: dict[str, Any]) -> None:
        self._table.put_item(Item=to_dynamo(entry))

    def recent(self, endpoint_id: str, limit: int) -> list[dict[str, Any]]:
        """The endpoint's latest attempts, newest first."""
        page = self._table.query(
            IndexName=DELIVERIES_BY_TIME_INDEX,
            KeyConditionExpression=Key("endpointId").eq(endpoint_id),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [from_dynamo(item) for item in page["Items"]]
