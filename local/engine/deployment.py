"""What the program declared, as the local engine created it: resources, internal deliveries, stack outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from local.permissions.access import lambda_permission_allows


class Behaviour(StrEnum):
    EMULATED = "emulated"  # created in the moto server
    RUNTIME = "runtime"  # run by the local cloud itself (functions, event sources, the HTTP API, the CDN)
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
        for fn in self.of_type(ResourceType.FUNCTION):
            state = fn.state
            if reference in (state.get("name"), state.get("arn"), state.get("invokeArn"), state.get("qualifiedArn")):
                return fn
            if reference.startswith(f"{state.get('arn')}:"):
                return fn
        raise LookupError(f"no aws:lambda/function:Function matches {reference!r}")

    def function_permissions(self, function: DeclaredResource) -> list[dict[str, Any]]:
        """The inputs of the Permission resources that make up a function's resource policy."""
        found = []
        for permission in self.of_type(ResourceType.PERMISSION):
            try:
                if self.function_by_reference(str(permission.inputs.get("function", ""))) is function:
                    found.append(permission.inputs)
            except LookupError:
                continue
        return found

    def invoke_refusal(self, function: DeclaredResource, service: str, source_arn: str | None) -> str:
        """Why the function's resource policy does not let `service` invoke it for `source_arn`; "" when it does."""
        if lambda_permission_allows(self.function_permissions(function), service, source_arn, self.account_id):
            return ""
        return f"no permission lets {service} invoke {function.state.get('name', function.name)} for {source_arn}"

    def dead_letter_arns(self) -> set[str]:
        """Every queue or topic the program declares as a dead-letter target or failure destination."""
        arns: set[str] = set()
        for queue in self.of_type(ResourceType.SQS_QUEUE):
            redrive = queue.inputs.get("redrivePolicy")
            if redrive:
                arns.add((json.loads(redrive) if isinstance(redrive, str) else redrive)["deadLetterTargetArn"])
        for target in self.of_type(ResourceType.EVENT_TARGET):
            arns.add((target.inputs.get("deadLetterConfig") or {}).get("arn", ""))
        for function in self.of_type(ResourceType.FUNCTION):
            arns.add((function.inputs.get("deadLetterConfig") or {}).get("targetArn", ""))
        for config in self.of_type(ResourceType.EVENT_INVOKE_CONFIG):
            destination = ((config.inputs.get("destinationConfig") or {}).get("onFailure") or {}).get("destination")
            arns.add(destination or "")
        return arns - {""}

    def async_invoke_policy(self, function: DeclaredResource) -> AsyncInvokePolicy:
        """The function's FunctionEventInvokeConfig (unqualified or $LATEST), else Lambda's defaults."""
        dead_letter_arn = (function.inputs.get("deadLetterConfig") or {}).get("targetArn")
        for config in self.of_type(ResourceType.EVENT_INVOKE_CONFIG):
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


class ResourceType(StrEnum):
    """The resource type tokens the local engine gives behaviour to or reads, as Pulumi names them."""

    CLOUDFRONT_CACHE_POLICY = "aws:cloudfront/cachePolicy:CachePolicy"
    CLOUDFRONT_DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
    CLOUDFRONT_FUNCTION = "aws:cloudfront/function:Function"
    CLOUDFRONT_KEY_GROUP = "aws:cloudfront/keyGroup:KeyGroup"
    CLOUDFRONT_ORIGIN_ACCESS_CONTROL = "aws:cloudfront/originAccessControl:OriginAccessControl"
    CLOUDFRONT_PUBLIC_KEY = "aws:cloudfront/publicKey:PublicKey"
    CLOUDFRONT_RESPONSE_HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
    CLOUDWATCH_EVENT_BUS = "aws:cloudwatch/eventBus:EventBus"
    CLOUDWATCH_LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
    DOCKER_IMAGE = "docker-build:index:Image"
    DYNAMODB_TABLE = "aws:dynamodb/table:Table"
    ECR_REPOSITORY = "aws:ecr/repository:Repository"
    EVENT_INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
    EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
    EVENT_SOURCE_MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
    EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
    FUNCTION = "aws:lambda/function:Function"
    HTTP_API = "aws:apigatewayv2/api:Api"
    HTTP_AUTHORIZER = "aws:apigatewayv2/authorizer:Authorizer"
    HTTP_INTEGRATION = "aws:apigatewayv2/integration:Integration"
    HTTP_ROUTE = "aws:apigatewayv2/route:Route"
    HTTP_STAGE = "aws:apigatewayv2/stage:Stage"
    IAM_ROLE = "aws:iam/role:Role"
    IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
    IAM_ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    KMS_ALIAS = "aws:kms/alias:Alias"
    KMS_KEY = "aws:kms/key:Key"
    MEDIACONVERT_QUEUE = "aws:mediaconvert/queue:Queue"
    PERMISSION = "aws:lambda/permission:Permission"
    S3_BUCKET = "aws:s3/bucket:Bucket"
    S3_BUCKET_CORS_CONFIGURATION = "aws:s3/bucketCorsConfiguration:BucketCorsConfiguration"
    S3_BUCKET_CORS_CONFIGURATION_V2 = "aws:s3/bucketCorsConfigurationV2:BucketCorsConfigurationV2"
    S3_BUCKET_LIFECYCLE_CONFIGURATION = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    S3_BUCKET_LIFECYCLE_CONFIGURATION_V2 = "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"
    S3_BUCKET_NOTIFICATION = "aws:s3/bucketNotification:BucketNotification"
    S3_BUCKET_OBJECT_V2 = "aws:s3/bucketObjectv2:BucketObjectv2"
    S3_BUCKET_OWNERSHIP_CONTROLS = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
    S3_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
    S3_BUCKET_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    S3_BUCKET_SERVER_SIDE_ENCRYPTION_CONFIGURATION = (
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    S3_BUCKET_SERVER_SIDE_ENCRYPTION_CONFIGURATION_V2 = (
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
    )
    S3_BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
    S3_BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
    S3_BUCKET_VERSIONING_V2 = "aws:s3/bucketVersioningV2:BucketVersioningV2"
    SECRETSMANAGER_SECRET = "aws:secretsmanager/secret:Secret"
    SECRETSMANAGER_SECRET_POLICY = "aws:secretsmanager/secretPolicy:SecretPolicy"
    SECRETSMANAGER_SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
    SNS_TOPIC = "aws:sns/topic:Topic"
    SNS_TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
    SNS_TOPIC_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
    SQS_QUEUE = "aws:sqs/queue:Queue"
    SQS_QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
    SQS_REDRIVE_ALLOW_POLICY = "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy"
    SQS_REDRIVE_POLICY = "aws:sqs/redrivePolicy:RedrivePolicy"
