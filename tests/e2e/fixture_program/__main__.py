"""A small Pulumi program for the local engine's own tests: S3 → SQS → Lambda → SNS → SQS → Lambda → EventBridge.

It uses the same resource types as the real program, with the wiring the engine must derive from inputs:
notification config, redrive policies, a filter policy, event source mappings, rules with Lambda targets,
a schedule, and an HTTP API with a JWT authorizer.
"""

import json

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

config = pulumi.Config()
issuer = config.require("issuer")
audience = config.require("audience")
kinds = config.require_object("kinds")
work_timeout = config.get_int("workTimeout") or 5

role = aws.iam.Role(
    "fn-role",
    assume_role_policy=aws.iam.get_policy_document(
        statements=[
            {
                "actions": ["sts:AssumeRole"],
                "principals": [{"type": "Service", "identifiers": ["lambda.amazonaws.com"]}],
            }
        ]
    ).json,
)
aws.cloudwatch.LogGroup("fn-logs", retention_in_days=7)


def queue_admitting(queue: aws.sqs.Queue, service: str, source_arn: pulumi.Output[str]) -> pulumi.Output[str]:
    """A queue policy letting one service send on behalf of one source (the local cloud enforces it)."""
    return pulumi.Output.all(queue.arn, source_arn).apply(
        lambda a: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": service},
                        "Action": "sqs:SendMessage",
                        "Resource": a[0],
                        "Condition": {"ArnEquals": {"aws:SourceArn": a[1]}},
                    }
                ],
            }
        )
    )


uploads = aws.s3.Bucket("uploads", force_destroy=True)
aws.s3.BucketPublicAccessBlock(
    "uploads-pab",
    bucket=uploads.id,
    block_public_acls=True,
    block_public_policy=True,
    ignore_public_acls=True,
    restrict_public_buckets=True,
)
aws.s3.BucketServerSideEncryptionConfiguration(
    "uploads-sse", bucket=uploads.id, rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}]
)
aws.s3.BucketCorsConfiguration(
    "uploads-cors", bucket=uploads.id, cors_rules=[{"allowed_methods": ["POST"], "allowed_origins": ["*"]}]
)
aws.s3.BucketLifecycleConfiguration(
    "uploads-lifecycle",
    bucket=uploads.id,
    rules=[{"id": "expire", "status": "Enabled", "filter": {"prefix": "uploads/"}, "expiration": {"days": 1}}],
)

table = aws.dynamodb.Table(
    "items",
    billing_mode="PAY_PER_REQUEST",
    hash_key="id",
    attributes=[{"name": "id", "type": "S"}, {"name": "owner", "type": "S"}],
    global_secondary_indexes=[{"name": "byOwner", "hash_key": "owner", "projection_type": "ALL"}],
    ttl={"attribute_name": "expiresAt", "enabled": True},
)
bus = aws.cloudwatch.EventBus("bus")

ingest_dlq = aws.sqs.Queue("ingest-dlq", message_retention_seconds=1209600)
ingest_queue = aws.sqs.Queue(
    "ingest",
    visibility_timeout_seconds=30,
    redrive_policy=ingest_dlq.arn.apply(lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})),
)
ingest_policy = aws.sqs.QueuePolicy(
    "ingest-policy", queue_url=ingest_queue.id, policy=queue_admitting(ingest_queue, "s3.amazonaws.com", uploads.arn)
)
aws.s3.BucketNotification(
    "uploads-notification",
    bucket=uploads.id,
    queues=[{"queue_arn": ingest_queue.arn, "events": ["s3:ObjectCreated:*"], "filter_prefix": "uploads/"}],
    opts=pulumi.ResourceOptions(depends_on=[ingest_policy]),
)

topic = aws.sns.Topic("validated")
work_dlq = aws.sqs.Queue("work-dlq")
work_queue = aws.sqs.Queue(
    "work",
    visibility_timeout_seconds=6 * work_timeout,
    redrive_policy=work_dlq.arn.apply(lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})),
)
work_policy = aws.sqs.QueuePolicy(
    "work-policy", queue_url=work_queue.id, policy=queue_admitting(work_queue, "sns.amazonaws.com", topic.arn)
)
aws.sns.TopicSubscription(
    "work-subscription",
    topic=topic.arn,
    protocol="sqs",
    endpoint=work_queue.arn,
    raw_message_delivery=True,
    filter_policy_scope="MessageAttributes",
    filter_policy=json.dumps({"kind": kinds}),
    opts=pulumi.ResourceOptions(depends_on=[work_policy]),
)
tracker_dlq = aws.sqs.Queue("tracker-dlq")

common_env = {"TABLE_NAME": table.name, "BUCKET": uploads.bucket, "BUS_NAME": bus.name}
# What every fixture function may do (one role for all, unlike the real program): the local cloud enforces it.
role_policy = aws.iam.RolePolicy(
    "fn-policy",
    role=role.id,
    policy=pulumi.Output.all(
        table.arn, uploads.arn, topic.arn, bus.arn, ingest_queue.arn, work_queue.arn, tracker_dlq.arn
    ).apply(
        lambda a: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
                        "Resource": [a[0], f"{a[0]}/index/*"],
                    },
                    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"{a[1]}/*"},
                    {"Effect": "Allow", "Action": "sns:Publish", "Resource": a[2]},
                    {"Effect": "Allow", "Action": "events:PutEvents", "Resource": a[3]},
                    {
                        "Effect": "Allow",
                        "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                        "Resource": [a[4], a[5]],
                    },
                    {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": a[6]},
                ],
            }
        )
    ),
)


def zip_function(name: str, handler: str, env: dict, timeout: int = 10) -> aws.lambda_.Function:
    return aws.lambda_.Function(
        name,
        role=role.arn,
        runtime="python3.11",
        handler=handler,
        code=pulumi.AssetArchive({"fixture_handlers": pulumi.FileArchive("./fixture_handlers")}),
        timeout=timeout,
        memory_size=256,
        environment={"variables": env},
    )


ingest_fn = zip_function("ingest-fn", "fixture_handlers.pipeline.ingest", {**common_env, "TOPIC_ARN": topic.arn})
repository = aws.ecr.Repository("fixture")
work_image = docker_build.Image(
    "work-image",
    context=docker_build.BuildContextArgs(location="."),
    dockerfile=docker_build.DockerfileArgs(location="./containers/work/Dockerfile"),
    platforms=[docker_build.Platform.LINUX_AMD64],
    tags=[repository.repository_url.apply(lambda url: f"{url}:latest")],
    push=False,
)
work_fn = aws.lambda_.Function(
    "work-fn",
    role=role.arn,
    package_type="Image",
    image_uri=pulumi.Output.concat(repository.repository_url, "@", work_image.digest),
    image_config={"commands": ["fixture_handlers.pipeline.work"]},
    timeout=work_timeout,
    memory_size=512,
    environment={"variables": {**common_env, "WORK_SECRET": "declared-only-here"}},
)
tracker_fn = zip_function("tracker-fn", "fixture_handlers.pipeline.track", common_env)
sweeper_fn = zip_function("sweeper-fn", "fixture_handlers.pipeline.sweep", common_env)
api_fn = zip_function("api-fn", "fixture_handlers.api.handler", common_env)
isolated_fn = zip_function("isolated-fn", "fixture_handlers.isolation.handler", common_env)

aws.lambda_.EventSourceMapping(
    "ingest-mapping",
    opts=pulumi.ResourceOptions(depends_on=[role_policy]),
    event_source_arn=ingest_queue.arn,
    function_name=ingest_fn.name,
    batch_size=5,
    function_response_types=["ReportBatchItemFailures"],
)
aws.lambda_.EventSourceMapping(
    "work-mapping",
    opts=pulumi.ResourceOptions(depends_on=[role_policy]),
    event_source_arn=work_queue.arn,
    function_name=work_fn.arn,
    batch_size=1,
    function_response_types=["ReportBatchItemFailures"],
)

tracked = aws.cloudwatch.EventRule(
    "tracked",
    event_bus_name=bus.name,
    event_pattern=json.dumps({"source": ["fixture"], "detail-type": ["Work Done", "Work Poisoned"]}),
)
aws.cloudwatch.EventTarget(
    "tracked-target",
    rule=tracked.name,
    event_bus_name=bus.name,
    arn=tracker_fn.arn,
    retry_policy={"maximum_retry_attempts": 1, "maximum_event_age_in_seconds": 60},
    dead_letter_config={"arn": tracker_dlq.arn},
)
aws.lambda_.Permission(
    "tracked-permission", action="lambda:InvokeFunction", function=tracker_fn.name, principal="events.amazonaws.com"
)
# Lambda, not EventBridge, retries a failed asynchronous invocation; then the on-failure destination gets a record.
aws.lambda_.FunctionEventInvokeConfig(
    "tracker-async",
    function_name=tracker_fn.name,
    maximum_retry_attempts=1,
    maximum_event_age_in_seconds=600,
    destination_config={"on_failure": {"destination": tracker_dlq.arn}},
)
# A queue target whose policy does not admit EventBridge: every event goes to the target's DLQ, whose policy does.
audit = aws.cloudwatch.EventRule(
    "audit", event_bus_name=bus.name, event_pattern=json.dumps({"source": ["fixture"], "detail-type": ["Work Done"]})
)
audit_queue = aws.sqs.Queue("audit")
audit_dlq = aws.sqs.Queue("audit-dlq")
aws.sqs.QueuePolicy(
    "audit-dlq-policy", queue_url=audit_dlq.id, policy=queue_admitting(audit_dlq, "events.amazonaws.com", audit.arn)
)
aws.cloudwatch.EventTarget(
    "audit-target",
    rule=audit.name,
    event_bus_name=bus.name,
    arn=audit_queue.arn,
    dead_letter_config={"arn": audit_dlq.arn},
)
sweep = aws.cloudwatch.EventRule("sweep", schedule_expression="rate(5 minutes)")
aws.lambda_.Permission(
    "sweep-permission",
    action="lambda:InvokeFunction",
    function=sweeper_fn.name,
    principal="events.amazonaws.com",
    source_arn=sweep.arn,
)
aws.cloudwatch.EventTarget("sweep-target", rule=sweep.name, arn=sweeper_fn.arn)

# Targets moto cannot invoke: an S3 notification and an SNS subscription straight to a function.
notify_fn = zip_function("notify-fn", "fixture_handlers.pipeline.notify", common_env)
drops = aws.s3.Bucket("drops", force_destroy=True)
drops_permission = aws.lambda_.Permission(
    "drops-permission",
    action="lambda:InvokeFunction",
    function=notify_fn.name,
    principal="s3.amazonaws.com",
    source_arn=drops.arn,
)
aws.s3.BucketNotification(
    "drops-notification",
    opts=pulumi.ResourceOptions(depends_on=[drops_permission]),
    bucket=drops.id,
    lambda_functions=[
        {"lambda_function_arn": notify_fn.arn, "events": ["s3:ObjectCreated:*"], "filter_suffix": ".txt"}
    ],
)
announcements = aws.sns.Topic("announcements")
aws.lambda_.Permission(
    "announcements-permission",
    action="lambda:InvokeFunction",
    function=notify_fn.name,
    principal="sns.amazonaws.com",
    source_arn=announcements.arn,
)
aws.sns.TopicSubscription("announcements-notify", topic=announcements.arn, protocol="lambda", endpoint=notify_fn.arn)

api = aws.apigatewayv2.Api("http", protocol_type="HTTP")
authorizer = aws.apigatewayv2.Authorizer(
    "jwt",
    api_id=api.id,
    authorizer_type="JWT",
    identity_sources=["$request.header.Authorization"],
    jwt_configuration={"issuer": issuer, "audiences": [audience]},
)
integration = aws.apigatewayv2.Integration(
    "api-integration",
    api_id=api.id,
    integration_type="AWS_PROXY",
    integration_uri=api_fn.invoke_arn,
    payload_format_version="2.0",
)
isolated_integration = aws.apigatewayv2.Integration(
    "isolated-integration",
    api_id=api.id,
    integration_type="AWS_PROXY",
    integration_uri=isolated_fn.invoke_arn,
    payload_format_version="2.0",
)
for route_key, protected, target in (
    ("GET /health", False, integration),
    ("POST /uploads", True, integration),
    ("GET /items/{itemId}", True, integration),
    ("GET /boom", True, integration),
    ("GET /isolated", False, isolated_integration),
):
    aws.apigatewayv2.Route(
        route_key.replace(" ", "").replace("/", "-").replace("{", "").replace("}", ""),
        api_id=api.id,
        route_key=route_key,
        target=target.id.apply(lambda i: f"integrations/{i}"),
        authorization_type="JWT" if protected else "NONE",
        authorizer_id=authorizer.id if protected else None,
    )
stage = aws.apigatewayv2.Stage("default", api_id=api.id, name="$default", auto_deploy=True)
for function in (api_fn, isolated_fn):
    aws.lambda_.Permission(
        f"{function._name}-from-api",
        action="lambda:InvokeFunction",
        function=function.name,
        principal="apigateway.amazonaws.com",
        source_arn=api.execution_arn.apply(lambda arn: f"{arn}/*/*"),
    )

pulumi.export("apiUrl", stage.invoke_url)
pulumi.export("uploadsBucket", uploads.bucket)
pulumi.export("tableName", table.name)
pulumi.export("ingestDlqUrl", ingest_dlq.url)
pulumi.export("trackerDlqUrl", tracker_dlq.url)
pulumi.export("dropsBucket", drops.bucket)
pulumi.export("auditQueueUrl", audit_queue.url)
pulumi.export("auditDlqUrl", audit_dlq.url)
pulumi.export("announcementsTopicArn", announcements.arn)
