"""Queue and event handlers of the fixture program: ingest, work, track, sweep."""

import json
import os
import sys
import time
from urllib.parse import unquote_plus

import boto3

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
s3 = boto3.client("s3")
sns = boto3.client("sns")
events = boto3.client("events")


def _bump(item_id: str, attribute: str) -> None:
    table.update_item(
        Key={"id": item_id},
        UpdateExpression="ADD #a :one",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":one": 1},
    )


def ingest(event: dict, context: object) -> dict:
    """S3 notifications from the ingest queue; an object starting with `poison` fails its own record only."""
    failures = []
    for record in event["Records"]:
        for s3_record in json.loads(record["body"]).get("Records", []):
            raw_key = s3_record["s3"]["object"]["key"]
            key = unquote_plus(raw_key)
            item_id = key.split("/")[1]
            _bump(item_id, "ingestAttempts")
            body = s3.get_object(Bucket=s3_record["s3"]["bucket"]["name"], Key=key)["Body"].read().decode()
            if body.startswith("poison"):
                failures.append({"itemIdentifier": record["messageId"]})
                continue
            kind, _, mode = body.partition(" ")
            table.update_item(
                Key={"id": item_id},
                UpdateExpression="SET #s = :s, eventName = :e, rawKey = :k",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": "VALIDATED", ":e": s3_record["eventName"], ":k": raw_key},
            )
            sns.publish(
                TopicArn=os.environ["TOPIC_ARN"],
                Message=json.dumps({"id": item_id, "mode": mode.strip()}),
                MessageAttributes={"kind": {"DataType": "String", "StringValue": kind}},
            )
    return {"batchItemFailures": failures}


def work(event: dict, context: object) -> dict:
    """Routed work; `hang` outlives the function's timeout, `failtrack` makes the tracker fail."""
    for record in event["Records"]:
        message = json.loads(record["body"])
        _bump(message["id"], "workAttempts")
        if message["mode"] == "hang" and record["attributes"]["ApproximateReceiveCount"] == "1":
            time.sleep(context.get_remaining_time_in_millis() / 1000 + 5)
        table.update_item(
            Key={"id": message["id"]},
            UpdateExpression="SET workEnv = :env, workPath = :path",
            ExpressionAttributeValues={":env": sorted(os.environ), ":path": sys.path},
        )
        events.put_events(
            Entries=[
                {
                    "Source": "fixture",
                    "DetailType": "Work Done",
                    "Detail": json.dumps(message),
                    "EventBusName": os.environ["BUS_NAME"],
                }
            ]
        )
    return {"batchItemFailures": []}


def track(event: dict, context: object) -> None:
    item_id = event["detail"]["id"]
    _bump(item_id, "trackAttempts")
    if event["detail"]["mode"] == "failtrack":
        raise RuntimeError("tracker fails on purpose")
    table.update_item(
        Key={"id": item_id},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "DONE"},
    )


def sweep(event: dict, context: object) -> None:
    if event.get("detail-type") != "Scheduled Event":
        raise ValueError(f"unexpected event {event}")
    _bump("sweeps", "count")


def notify(event: dict, context: object) -> None:
    """S3 and SNS invoke this directly: record what arrived, by its key or message."""
    for record in event["Records"]:
        if "s3" in record:
            item_id, what = unquote_plus(record["s3"]["object"]["key"]), record["eventName"]
        else:
            item_id, what = record["Sns"]["Message"], record["Sns"]["TopicArn"]
        table.put_item(Item={"id": item_id, "owner": "notify", "status": "NOTIFIED", "what": what})
