"""A small Pulumi program for the local engine's own tests: S3 → SQS → Lambda → SNS → SQS → Lambda → EventBridge.

It uses the same resource types as the real program, with the wiring the engine must derive from inputs:
notification config, redrive policies, a filter policy, event source mappings, rules with Lambda targets,
a schedule, and an HTTP API with a JWT authorizer.
"""

import json

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
issuer = config.require("issuer")
audience = config.require("audience")
kinds = config.require_object("kinds")
work_timeout = config.get_int("workTimeout") or 5
caller = aws.get_caller_identity()

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
aws.sqs.QueuePolicy(
    "ingest-policy",
    queue_url=ingest_queue.id,
    policy=pulumi.Output.all(ingest_queue.arn, uploads.arn).apply(
        lambda a: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "s3.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": a[0],
                        "Condition": {"ArnEquals": {"aws:SourceArn": a[1]}},
                    }
                ],
            }
        )
    ),
)
aws.s3.BucketNotification(
    "uploads-notification",
    bucket=uploads.id,
    queues=[{"queue_arn": ingest_queue.arn, "events": ["s3:ObjectCreated:*"], "filter_prefix": "uploads/"}],
)

topic = aws.sns.Topic("validated")
work_dlq = aws.sqs.Queue("work-dlq")
work_queue = aws.sqs.Queue(
    "work",
    visibility_timeout_seconds=6 * work_timeout,
    redrive_policy=work_dlq.arn.apply(lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})),
)
aws.sns.TopicSubscription(
    "work-subscription",
    topic=topic.arn,
    protocol="sqs",
    endpoint=work_queue.arn,
    raw_message_delivery=True,
    filter_policy_scope="MessageAttributes",
    filter_policy=json.dumps({"kind": kinds}),
)

common_env = {"TABLE_NAME": table.name, "BUCKET": uploads.bucket, "BUS_NAME": bus.name}


def zip_function(name: str, handler: str, env: dict, timeout: int = 10) -> aws.lambda_.Function:
    return aws.lambda_.Function(
        name,
        role=role.arn,
        runtime="python3.12",
        handler=handler,
        code=pulumi.AssetArchive({"fixture_handlers": pulumi.FileArchive("./fixture_handlers")}),
        timeout=timeout,
        memory_size=256,
        environment={"variables": env},
    )


ingest_fn = zip_function("ingest-fn", "fixture_handlers.pipeline.ingest", {**common_env, "TOPIC_ARN": topic.arn})
work_fn = aws.lambda_.Function(
    "work-fn",
    role=role.arn,
    package_type="Image",
    image_uri=f"{caller.account_id}.dkr.ecr.us-east-1.amazonaws.com/fixture:latest",
    image_config={"commands": ["fixture_handlers.pipeline.work"]},
    timeout=work_timeout,
    memory_size=512,
    environment={"variables": {**common_env, "WORK_SECRET": "declared-only-here"}},
)
tracker_fn = zip_function("tracker-fn", "fixture_handlers.pipeline.track", common_env)
sweeper_fn = zip_function("sweeper-fn", "fixture_handlers.pipeline.sweep", common_env)
api_fn = zip_function("api-fn", "fixture_handlers.api.handler", common_env)

aws.lambda_.EventSourceMapping(
    "ingest-mapping",
    event_source_arn=ingest_queue.arn,
    function_name=ingest_fn.name,
    batch_size=5,
    function_response_types=["ReportBatchItemFailures"],
)
aws.lambda_.EventSourceMapping(
    "work-mapping",
    event_source_arn=work_queue.arn,
    function_name=work_fn.arn,
    batch_size=1,
    function_response_types=["ReportBatchItemFailures"],
)

tracker_dlq = aws.sqs.Queue("tracker-dlq")
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
sweep = aws.cloudwatch.EventRule("sweep", schedule_expression="rate(5 minutes)")
aws.cloudwatch.EventTarget("sweep-target", rule=sweep.name, arn=sweeper_fn.arn)

# Targets moto cannot invoke: an S3 notification and an SNS subscription straight to a function.
notify_fn = zip_function("notify-fn", "fixture_handlers.pipeline.notify", common_env)
drops = aws.s3.Bucket("drops", force_destroy=True)
aws.s3.BucketNotification(
    "drops-notification",
    bucket=drops.id,
    lambda_functions=[
        {"lambda_function_arn": notify_fn.arn, "events": ["s3:ObjectCreated:*"], "filter_suffix": ".txt"}
    ],
)
announcements = aws.sns.Topic("announcements")
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
for route_key, protected in (
    ("GET /health", False),
    ("POST /uploads", True),
    ("GET /items/{itemId}", True),
    ("GET /boom", True),
):
    aws.apigatewayv2.Route(
        route_key.replace(" ", "").replace("/", "-").replace("{", "").replace("}", ""),
        api_id=api.id,
        route_key=route_key,
        target=integration.id.apply(lambda i: f"integrations/{i}"),
        authorization_type="JWT" if protected else "NONE",
        authorizer_id=authorizer.id if protected else None,
    )
stage = aws.apigatewayv2.Stage("default", api_id=api.id, name="$default", auto_deploy=True)

pulumi.export("apiUrl", stage.invoke_url)
pulumi.export("uploadsBucket", uploads.bucket)
pulumi.export("tableName", table.name)
pulumi.export("ingestDlqUrl", ingest_dlq.url)
pulumi.export("trackerDlqUrl", tracker_dlq.url)
pulumi.export("dropsBucket", drops.bucket)
pulumi.export("announcementsTopicArn", announcements.arn)
