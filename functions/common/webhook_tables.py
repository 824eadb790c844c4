"""DynamoDB adapters: the endpoints table and the delivery log (one item per attempt, expiring with TTL).

A delivery-log item is keyed by endpoint and attempt (`{webhookId}#{attempt}`), so writing it first, conditionally,
claims the attempt: a duplicate task (a redelivered message, a duplicated bus event) finds the claim and does not
send again. A claim still SENDING after `lease_ms` belongs to an invocation that died, and may be taken over.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from functions.common.clients import dynamodb_resource
from functions.common.jobs_table import from_dynamo, to_dynamo
from functions.contracts.webhooks import MAX_ENDPOINTS_PER_OWNER, Endpoint, EndpointStatus

DELIVERIES_BY_TIME_INDEX = "byAttemptedAt"  # endpointId + attemptedAt: the endpoint's recent attempts
SENDING = "sending"


class EndpointNotFound(LookupError):
    pass


class SecretChangedConcurrently(RuntimeError):
    pass


class AttemptAlreadyClaimed(RuntimeError):
    """Another task holds, or has finished, this attempt; `existing` is its delivery-log item."""

    def __init__(self, existing: dict[str, Any]) -> None:
        super().__init__(f"attempt {existing.get('attemptId')} already claimed")
        self.existing = existing


def _conditional_failed(err: ClientError) -> bool:
    return err.response["Error"]["Code"] == "ConditionalCheckFailedException"


def attempt_id(webhook_id: str, attempt: int) -> str:
    return f"{webhook_id}#{attempt:03d}"


class EndpointsTable:
    def __init__(self, table_name: str, dynamodb: Any = None) -> None:
        self._table = (dynamodb or dynamodb_resource()).Table(table_name)

    def create(self, endpoint: Endpoint) -> None:
        self._table.put_item(Item=to_dynamo(endpoint), ConditionExpression="attribute_not_exists(endpointId)")

    def get(self, owner_id: str, endpoint_id: str) -> Endpoint:
        key = {"ownerId": owner_id, "endpointId": endpoint_id}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        if item is None:
            raise EndpointNotFound(endpoint_id)
        return from_dynamo(item)

    def list_for_owner(self, owner_id: str) -> list[Endpoint]:
        """Every endpoint of one owner (there are at most MAX_ENDPOINTS_PER_OWNER, so one page)."""
        page = self._table.query(
            KeyConditionExpression=Key("ownerId").eq(owner_id),
            ConsistentRead=True,
            Limit=MAX_ENDPOINTS_PER_OWNER * 2,
        )
        return [from_dynamo(item) for item in page["Items"]]

    def delete(self, owner_id: str, endpoint_id: str) -> None:
        try:
            self._table.delete_item(
                Key={"ownerId": owner_id, "endpointId": endpoint_id},
                ConditionExpression="attribute_exists(endpointId)",
            )
        except ClientError as err:
            if _conditional_failed(err):
                raise EndpointNotFound(endpoint_id) from err
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
