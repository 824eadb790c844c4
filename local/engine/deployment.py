"""What the program declared, as the local engine created it: resources, internal deliveries, stack outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Behaviour(StrEnum):
    EMULATED = "emulated"  # created in the moto server
    RUNTIME = "runtime"  # run by the local cloud itself (functions, event sources, the HTTP API)
    RECORDED = "recorded"  # no local behaviour: shown, not acted on


@dataclass
class DeclaredResource:
    """One resource of the program: its type token, logical name, physical id, inputs and resolved state."""

    type: str
    name: str
    id: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    behaviour: Behaviour
    note: str = ""


@dataclass
class AsyncDelivery:
    """A target moto cannot deliver to (a Lambda function), routed through an internal SQS queue in moto.

    moto still does the matching (event pattern, S3 event filter, SNS filter policy); the local cloud's
    delivery loop reads the internal queue and invokes the function as AWS does for asynchronous events.
    """

    source: str
    """Human-readable origin, e.g. `rule tracker-events-1a2b3c4`."""
    shape: str
    """How the queued message becomes the function's event: `eventbridge`, `s3` or `sns`."""
    queue_url: str
    queue_arn: str
    function_arn: str
    rule_arn: str | None = None
    target_retry_attempts: int | None = None
    """The EventBridge target's retry policy and DLQ govern delivery to Lambda (throttling, a missing function),
    which never fails locally; a function's own errors follow its AsyncInvokePolicy, as in AWS."""
    target_event_age_seconds: int | None = None
    target_dead_letter_arn: str | None = None
    constant_input: str | None = None
    input_path: str | None = None
    source_arn: str | None = None
    """What invokes the function, as its permission names it: the rule, topic or bucket ARN."""

    @property
    def service(self) -> str:
        """The service principal that invokes the function for this delivery."""
        return {"eventbridge": "events.amazonaws.com", "sns": "sns.amazonaws.com", "s3": "s3.amazonaws.com"}[self.shape]


@dataclass(frozen=True)
class AsyncInvokePolicy:
    """What Lambda does when an asynchronous invocation fails: retry, then send it to a destination."""

    max_retry_attempts: int = 2
    max_event_age_seconds: int = 6 * 3600
    on_failure_arn: str | None = None
    """FunctionEventInvokeConfig's on-failure destination: receives an invocation record."""
    dead_letter_arn: str | None = None
    """The function's own dead_letter_config: receives the event itself."""


@dataclass
class Deployment:
    project: str
    stack: str
    region: str
    account_id: str
    resources: list[DeclaredResource] = field(default_factory=list)
    deliveries: list[AsyncDelivery] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, token: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == token]

    def by_id(self, token: str, resource_id: str) -> DeclaredResource | None:
        return next((r for r in self.of_type(token) if r.id == resource_id), None)

    def function_by_reference(self, reference: str) -> DeclaredResource:
        """A Lambda function named by its name, ARN, qualified ARN or API Gateway invoke ARN."""
        for fn in self.of_type(FUNCTION):
            state = fn.state
            if reference in (state.get("name"), state.get("arn"), state.get("invokeArn"), state.get("qualifiedArn")):
                return fn
            if reference.startswith(f"{state.get('arn')}:"):
                return fn
        raise LookupError(f"no aws:lambda/function:Function matches {reference!r}")

    def function_permissions(self, function: DeclaredResource) -> list[dict[str, Any]]:
        """The inputs of the Permission resources that make up a function's resource policy."""
        found = []
        for permission in self.of_type(PERMISSION):
            try:
                if self.function_by_reference(str(permission.inputs.get("function", ""))) is function:
                    found.append(permission.inputs)
            except LookupError:
                continue
        return found

    def dead_letter_arns(self) -> set[str]:
        """Every queue or topic the program declares as a dead-letter target or failure destination."""
        arns: set[str] = set()
        for queue in self.of_type(SQS_QUEUE):
            redrive = queue.inputs.get("redrivePolicy")
            if redrive:
                arns.add((json.loads(redrive) if isinstance(redrive, str) else redrive)["deadLetterTargetArn"])
        for target in self.of_type(EVENT_TARGET):
            arns.add((target.inputs.get("deadLetterConfig") or {}).get("arn", ""))
        for function in self.of_type(FUNCTION):
            arns.add((function.inputs.get("deadLetterConfig") or {}).get("targetArn", ""))
        for config in self.of_type(EVENT_INVOKE_CONFIG):
            destination = ((config.inputs.get("destinationConfig") or {}).get("onFailure") or {}).get("destination")
            arns.add(destination or "")
        return arns - {""}

    def async_invoke_policy(self, function: DeclaredResource) -> AsyncInvokePolicy:
        """The function's FunctionEventInvokeConfig (unqualified or $LATEST), else Lambda's defaults."""
        dead_letter_arn = (function.inputs.get("deadLetterConfig") or {}).get("targetArn")
        for config in self.of_type(EVENT_INVOKE_CONFIG):
            inputs = config.inputs
            if inputs.get("qualifier") not in (None, "", "$LATEST"):
                continue
            if self.function_by_reference(inputs["functionName"]) is not function:
                continue
            destination = (inputs.get("destinationConfig") or {}).get("onFailure") or {}
            return AsyncInvokePolicy(
                max_retry_attempts=int(inputs.get("maximumRetryAttempts", 2)),
                max_event_age_seconds=int(inputs.get("maximumEventAgeInSeconds") or 6 * 3600),
                on_failure_arn=destination.get("destination"),
                dead_letter_arn=dead_letter_arn,
            )
        return AsyncInvokePolicy(dead_letter_arn=dead_letter_arn)


FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
EVENT_INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
EVENT_SOURCE_MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
HTTP_API = "aws:apigatewayv2/api:Api"
HTTP_ROUTE = "aws:apigatewayv2/route:Route"
HTTP_INTEGRATION = "aws:apigatewayv2/integration:Integration"
HTTP_AUTHORIZER = "aws:apigatewayv2/authorizer:Authorizer"
HTTP_STAGE = "aws:apigatewayv2/stage:Stage"
SQS_QUEUE = "aws:sqs/queue:Queue"
DYNAMODB_TABLE = "aws:dynamodb/table:Table"
DOCKER_IMAGE = "docker-build:index:Image"
