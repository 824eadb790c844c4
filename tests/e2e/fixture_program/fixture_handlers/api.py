"""HTTP API handler of the fixture program (payload format 2.0)."""

import json
import os
import uuid

import boto3

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
s3 = boto3.client("s3")


def _response(status: int, body: dict) -> dict:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def handler(event: dict, context: object) -> dict:
    route = event["routeKey"]
    if route == "GET /health":
        return _response(200, {"ok": True, "remainingMs": context.get_remaining_time_in_millis()})
    owner = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    if route == "POST /uploads":
        item_id = uuid.uuid4().hex
        table.put_item(Item={"id": item_id, "owner": owner, "status": "AWAITING"})
        form = s3.generate_presigned_post(
            os.environ["BUCKET"],
            f"uploads/{item_id}/source",
            Conditions=[["content-length-range", 1, 1024]],
            ExpiresIn=300,
        )
        return _response(201, {"id": item_id, "upload": form})
    if route == "GET /items/{itemId}":
        item = table.get_item(Key={"id": event["pathParameters"]["itemId"]}).get("Item")
        if not item or item["owner"] != owner:
            return _response(404, {"error": "not found"})
        return _response(200, json.loads(json.dumps(item, default=int)))
    raise RuntimeError(f"route {route} fails on purpose")
