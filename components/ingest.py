"""Ingest: uploads land in a queue, the ingest function probes and validates them and fans valid ones out."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import patterns, policies
from components.function import FunctionDefaults, FunctionSize, LambdaFunction, LambdaFunctionArgs
from components.grants import Grant, objects_under
from components.work_queue import S3_SERVICE, WorkQueue, WorkQueueArgs

HANDLER = "functions.ingest.handler.handler"


@dataclass(frozen=True)
class IngestArgs:
    """Inputs of Ingest."""

    functions: FunctionDefaults
    """Packaging (the ffmpeg image), environment (the common set plus ingest's own, docs/CONTRACTS.md, except the
    topic ARN added here) and log retention."""
    uploads_bucket_name: Input[str]
    """Bucket clients upload to."""
    uploads_bucket_arn: Input[str]
    """Its ARN."""
    account_id: Input[str]
    """Account that owns the uploads bucket (S3 notifications are pinned to it)."""
    table_arn: Input[str]
    """Jobs table ARN."""
    bus_arn: Input[str]
    """Custom event bus ARN (Job Accepted / Job Rejected)."""
    topic_key_arn: Input[str]
    """KMS key the fan-out topic is encrypted with."""
    size: FunctionSize
    """Function size: the queue's visibility timeout follows its timeout; /tmp holds the local copy of the upload
    while it is probed."""
    max_concurrency: int
    """Most uploads probed at once (the queue's event source's maximum concurrency)."""
    max_receive_count: int = 5
    """Receives before an upload notification moves to the DLQ."""


class Ingest(pulumi.ComponentResource):
    """Upload notifications → ingest queue (+DLQ) → ingest function → the `validated` fan-out topic."""

    topic_arn: Output[str]
    """The fan-out topic consumers subscribe their queues to."""
    queue: WorkQueue
    """The ingest queue and its DLQ."""
    function_name: Output[str]
    """Ingest function name."""

    def __init__(self, name: str, args: IngestArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Ingest", name, None, opts)
        child = ResourceOptions(parent=self)

        # Valid uploads are published here with mediaType/engine/renditions attributes for the filter policies.
        topic = aws.sns.Topic(f"{name}-validated", kms_master_key_id=args.topic_key_arn, opts=child)
        # Upload notifications wait here for the ingest function.
        self.queue = WorkQueue(
            name,
            WorkQueueArgs(
                consumer_timeout_seconds=args.size.timeout_seconds,
                sender_service=S3_SERVICE,
                sender_arn=args.uploads_bucket_arn,
                sender_account=args.account_id,
                max_receive_count=args.max_receive_count,
            ),
            opts=child,
        )
        # Only the upload object itself (uploads/{jobId}/source) is announced. S3 checks the queue policy when the
        # notification is created, hence the dependency.
        aws.s3.BucketNotification(
            f"{name}-notification",
            bucket=args.uploads_bucket_name,
            queues=[
                aws.s3.BucketNotificationQueueArgs(
                    queue_arn=self.queue.arn,
                    events=["s3:ObjectCreated:*"],
                    filter_prefix=patterns.UPLOAD_PREFIX,
                    filter_suffix=patterns.UPLOAD_SUFFIX,
                )
            ],
            opts=ResourceOptions(parent=self, depends_on=[self.queue.policy]),
        )
        function = LambdaFunction(
            f"{name}-function",
            LambdaFunctionArgs(
                defaults=args.functions,
                handler=HANDLER,
                service="ingest",
                from_image=True,
                size=args.size,
                environment={"VALIDATED_TOPIC_ARN": topic.arn},
                queue_arn=self.queue.arn,
                max_concurrency=args.max_concurrency,
                grants=(
                    Grant(("s3:GetObject",), (objects_under(args.uploads_bucket_arn, patterns.UPLOAD_PREFIX),)),
                    # Without ListBucket a missing upload reads as AccessDenied instead of NoSuchKey.
                    Grant(
                        ("s3:ListBucket",),
                        (args.uploads_bucket_arn,),
                        {"StringLike": {"s3:prefix": [f"{patterns.UPLOAD_PREFIX}*"]}},
                    ),
                    Grant(("dynamodb:GetItem", "dynamodb:PutItem"), (args.table_arn,)),
                    Grant(("sns:Publish",), (topic.arn,)),
                    # Publishing to an encrypted topic uses its key on the publisher's behalf.
                    Grant(policies.TOPIC_KEY_ACTIONS, (args.topic_key_arn,)),
                    Grant(("events:PutEvents",), (args.bus_arn,)),
                ),
            ),
            opts=child,
        )

        self.topic_arn = topic.arn
        self.function_name = function.function_name
        self.register_outputs(
            {"topicArn": self.topic_arn, "queueUrl": self.queue.url, "functionName": self.function_name}
        )
