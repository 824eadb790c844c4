"""Every function, run from its own artifact, imports and answers: one harmless event each, chosen by how the program
says the function is invoked (a public GET route of the HTTP API, a schedule, an SQS queue)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.cloud import LocalCloud
from local.engine.deployment import ResourceType
from local.runtime.workers import FunctionError

CHECK_MESSAGE_ID = "check-artifacts-0000"


@dataclass(frozen=True)
class ArtifactCheck:
    function: str
    event: str
    """What the function was sent: `GET /health`, `schedule`, `sqs`."""
    milliseconds: float
    """The invocation, with the cold start if the worker was not warm yet."""
    problem: str
    """Empty when the function answered as its event source expects."""


def _health_route(cloud: LocalCloud, function_arn: str) -> str | None:
    assert cloud.deployment is not None
    integrations = {
        i.id
        for i in cloud.deployment.of_type(ResourceType.HTTP_INTEGRATION)
        if function_arn in str(i.inputs.get("integrationUri"))
    }
    for route in cloud.deployment.of_type(ResourceType.HTTP_ROUTE):
        key = str(route.inputs.get("routeKey"))
        public = route.inputs.get("authorizationType", "NONE") == "NONE"
        if (
            public
            and key.startswith("GET ")
            and "{" not in key
            and route.inputs.get("target", "").split("/")[-1] in integrations
        ):
            return key
    return None


def _http_event(route_key: str) -> dict[str, Any]:
    method, path = route_key.split(" ", 1)
    now = datetime.now(UTC)
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "127.0.0.1"},
        "requestContext": {
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "check-artifacts",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }


def _scheduled_rule(cloud: LocalCloud, function_arn: str) -> dict[str, Any] | None:
    assert cloud.deployment is not None
    scheduled = {
        r.state["name"]: r
        for r in cloud.deployment.of_type(ResourceType.EVENT_RULE)
        if r.inputs.get("scheduleExpression")
    }
    for target in cloud.deployment.of_type(ResourceType.EVENT_TARGET):
        if target.inputs.get("arn") == function_arn and target.inputs.get("rule") in scheduled:
            rule = scheduled[target.inputs["rule"]]
            return {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": cloud.deployment.account_id,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": cloud.deployment.region,
                "resources": [rule.state["arn"]],
                "detail": {},
            }
    return None


def _sqs_event(cloud: LocalCloud, function_arn: str) -> dict[str, Any] | None:
    """One record of S3's test event, which S3 sends to a queue when a notification is configured: harmless to act on
    for any consumer, which either skips it or reports it as a failed batch item."""
    assert cloud.deployment is not None
    now = str(int(time.time() * 1000))
    for mapping in cloud.deployment.of_type(ResourceType.EVENT_SOURCE_MAPPING):
        if mapping.state.get("functionArn") == function_arn:
            body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": now, "Bucket": "check"})
            attributes = {"ApproximateReceiveCount": "1", "SentTimestamp": now, "SenderId": "AIDACHECKARTIFACTS"}
            return {
                "Records": [
                    {
                        "messageId": CHECK_MESSAGE_ID,
                        "receiptHandle": "check-artifacts",
                        "body": body,
                        "attributes": attributes | {"ApproximateFirstReceiveTimestamp": now},
                        "messageAttributes": {},
                        "md5OfBody": "",
                        "eventSource": "aws:sqs",
                        "eventSourceARN": mapping.inputs["eventSourceArn"],
                        "awsRegion": cloud.deployment.region,
                    }
                ]
            }
    return None


def _problem(kind: str, answer: Any) -> str:
    if kind.startswith("GET "):
        status = answer.get("statusCode") if isinstance(answer, dict) else None
        return "" if status == 200 else f"answered {status} instead of 200"
    if kind == "sqs":
        failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
        if failures is None or not isinstance(failures, list):
            return f"no batchItemFailures in {answer!r}"[:200]
    return ""


def check_artifacts(cloud: LocalCloud) -> list[ArtifactCheck]:
    """Invokes every function once, in its own worker, with the event its wiring implies."""
    assert cloud.deployment is not None
    results = []
    for function in cloud.deployment.of_type(ResourceType.FUNCTION):
        arn, name = function.state["arn"], function.state["name"]
        route = _health_route(cloud, arn)
        candidates = [(route, _http_event(route) if route else None)]
        candidates += [("schedule", _scheduled_rule(cloud, arn)), ("sqs", _sqs_event(cloud, arn))]
        kind, event = next(((k, e) for k, e in candidates if e is not None), ("-", None))
        if event is None:
            results.append(ArtifactCheck(name, "-", 0.0, "no event source the check knows"))
            continue
        started = time.monotonic()
        try:
            answer = cloud.runtimes.get(arn).invoke(event)
            problem = _problem(str(kind), answer)
        except FunctionError as err:
            problem = f"{err.error.get('errorType')}: {err.error.get('errorMessage')}"
        results.append(ArtifactCheck(name, str(kind), (time.monotonic() - started) * 1000, problem))
    return results
