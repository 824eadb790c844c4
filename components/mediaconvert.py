"""MediaConvert: the managed engine for inputs too long or heavy for one Lambda run, and its submit function."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import patterns, policies
from components.function import Grant, LambdaFunction, LambdaFunctionArgs, ZipCode
from components.work_queue import SNS_SERVICE, WorkQueue, WorkQueueArgs

HANDLER = "functions.submit.handler.handler"
MEDIACONVERT_SERVICE = "mediaconvert.amazonaws.com"


@dataclass(frozen=True)
class MediaConvertArgs:
    """Inputs of MediaConvert."""

    topic_arn: Input[str]
    """Fan-out topic the `mediaconvert` queue subscribes to."""
    uploads_bucket_arn: Input[str]
    """Bucket of the uploads: submit copies each validated one to `uploads/{jobId}/validated`, MediaConvert reads it."""
    outputs_bucket_arn: Input[str]
    """Bucket MediaConvert writes renditions, HLS and thumbnails to (`outputs/`)."""
    table_arn: Input[str]
    """Jobs table: the submitter reads the job and records its MediaConvert job."""
    bus_arn: Input[str]
    """Custom event bus (Rendition Failed when MediaConvert refuses a job)."""
    code: ZipCode
    """How zip functions are packaged (each gets its own archive, with the Powertools layer)."""
    environment: Mapping[str, Input[str]]
    """Environment variables (docs/CONTRACTS.md common set); the queue and role ARNs are added here."""
    log_retention_days: int
    """Retention of the function's log group."""
    max_concurrency: int
    """Most submissions at once (the queue's event source's maximum concurrency)."""
    timeout_seconds: int = 120
    """Submit function timeout (one CopyObject, one CreateJob, two DynamoDB calls); the queue's visibility timeout
    follows it. The server-side copy of a multi-GiB upload can take a minute, hence more than the calls alone need."""
    memory_mb: int = 256
    """Submit function memory."""
    max_receive_count: int = 5
    """Receives before a message moves to the DLQ."""


class MediaConvert(pulumi.ComponentResource):
    """The service role, an on-demand queue, and the `mediaconvert` fan-out queue with its submit function."""

    queue: WorkQueue
    """The `mediaconvert` fan-out queue and its DLQ."""
    function_name: Output[str]
    """Submit function name."""
    mediaconvert_queue_arn: Output[str]
    """The on-demand MediaConvert queue jobs are submitted to."""
    role_arn: Output[str]
    """The service role MediaConvert assumes."""

    def __init__(self, name: str, args: MediaConvertArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:MediaConvert", name, None, opts)
        child = ResourceOptions(parent=self)
        uploads = Output.from_input(args.uploads_bucket_arn)
        outputs = Output.from_input(args.outputs_bucket_arn)

        # The role MediaConvert assumes for a job: read the validated copies submit pins (`uploads/*/validated`, never
        # the raw `source` a reused presigned POST can replace, nor another job's upload), write outputs, nothing more.
        # The buckets use SSE-S3, so no KMS permission is needed; BucketOwnerEnforced means no ACL permission either.
        role = aws.iam.Role(
            f"{name}-service-role",
            assume_role_policy=json.dumps(policies.assume_role_policy(MEDIACONVERT_SERVICE)),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-service-policy",
            role=role.id,
            policy=Output.all(uploads, outputs).apply(
                lambda arns: json.dumps(
                    policies.service_role_policy(
                        [
                            policies.ResolvedGrant(
                                ("s3:GetObject",),
                                (policies.object_arns(arns[0], patterns.UPLOAD_PREFIX, patterns.VALIDATED_SUFFIX),),
                            ),
                            policies.ResolvedGrant(
                                ("s3:PutObject",), (policies.object_arns(arns[1], patterns.OUTPUT_PREFIX),)
                            ),
                        ]
                    )
                )
            ),
            opts=child,
        )
        # The stack's own on-demand queue: its ARN scopes the submitter's CreateJob, and its jobs are billed per minute.
        jobs_queue = aws.mediaconvert.Queue(
            f"{name}-jobs",
            pricing_plan="ON_DEMAND",
            status="ACTIVE",
            description=f"media-pipeline {pulumi.get_stack()}: one job per pipeline job",
            opts=child,
        )
        # Video jobs ingest routed to MediaConvert, one message per job whatever it queued.
        self.queue = WorkQueue(
            name,
            WorkQueueArgs(
                consumer_timeout_seconds=args.timeout_seconds,
                sender_service=SNS_SERVICE,
                sender_arn=args.topic_arn,
                filter_policy=patterns.mediaconvert_filter_policy(),
                max_receive_count=args.max_receive_count,
            ),
            opts=child,
        )
        # The submitter: one CreateJob per pipeline job, recorded on the job (functions/submit/submission.py).
        function = LambdaFunction(
            f"{name}-submit",
            LambdaFunctionArgs(
                handler=HANDLER,
                code=args.code,
                timeout_seconds=args.timeout_seconds,
                memory_mb=args.memory_mb,
                log_retention_days=args.log_retention_days,
                environment={
                    **args.environment,
                    "POWERTOOLS_SERVICE_NAME": "submit",
                    "MEDIACONVERT_QUEUE_ARN": jobs_queue.arn,
                    "MEDIACONVERT_ROLE_ARN": role.arn,
                },
                queue_arn=self.queue.arn,
                max_concurrency=args.max_concurrency,
                batch_size=1,
                grants=(
                    # CreateJob needs the job it creates (jobs/*) as well as the queue it submits to.
                    Grant(
                        ("mediaconvert:CreateJob",),
                        (jobs_queue.arn, jobs_queue.arn.apply(policies.mediaconvert_jobs_arn)),
                    ),
                    # CreateJob hands the service role to MediaConvert, and to nothing else.
                    Grant(
                        ("iam:PassRole",),
                        (role.arn,),
                        {"StringEquals": {"iam:PassedToService": MEDIACONVERT_SERVICE}},
                    ),
                    Grant(("dynamodb:GetItem", "dynamodb:PutItem"), (args.table_arn,)),
                    Grant(("events:PutEvents",), (args.bus_arn,)),
                    # CopyObject of the validated upload (functions/submit/source.py): read the source, write only
                    # `uploads/{jobId}/validated`, a key ingest's notification (suffix `/source`) never announces.
                    Grant(
                        ("s3:GetObject",), (uploads.apply(lambda a: policies.object_arns(a, patterns.UPLOAD_PREFIX)),)
                    ),
                    Grant(
                        ("s3:PutObject",),
                        (
                            uploads.apply(
                                lambda a: policies.object_arns(a, patterns.UPLOAD_PREFIX, patterns.VALIDATED_SUFFIX)
                            ),
                        ),
                    ),
                ),
            ),
            opts=child,
        )

        self.function_name = function.function_name
        self.mediaconvert_queue_arn = jobs_queue.arn
        self.role_arn = role.arn
        self.register_outputs(
            {
                "queueUrl": self.queue.url,
                "functionName": self.function_name,
                "mediaconvertQueueArn": self.mediaconvert_queue_arn,
                "roleArn": self.role_arn,
            }
        )
