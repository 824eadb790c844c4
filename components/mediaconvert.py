"""MediaConvert: the managed engine for inputs too long or heavy for one Lambda run, and its submit function."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import patterns, policies
from components.fanout_consumer import consume_fanout
from components.function import FunctionDefaults, FunctionSize
from components.grants import Grant, objects_under, resolve_grants
from components.work_queue import WorkQueue

HANDLER = "functions.submit.handler.handler"
MEDIACONVERT_SERVICE = "mediaconvert.amazonaws.com"
# The timeout covers one CopyObject, one CreateJob (and at most one CancelJob) and a few DynamoDB calls; the
# server-side copy of a multi-GiB upload can take a minute, hence more than the calls alone need.
SUBMIT_SIZE = FunctionSize(timeout_seconds=120, memory_mb=256)


@dataclass(frozen=True)
class MediaConvertArgs:
    """Inputs of MediaConvert."""

    functions: FunctionDefaults
    """Packaging, common environment (the queue and role ARNs are added here) and log retention."""
    topic_arn: Input[str]
    """Fan-out topic the `mediaconvert` queue subscribes to."""
    uploads_bucket_arn: Input[str]
    """Bucket of the uploads: submit copies each validated one to `uploads/{jobId}/validated`, MediaConvert reads it."""
    outputs_bucket_arn: Input[str]
    """Bucket MediaConvert writes renditions, HLS and thumbnails to (`outputs/`)."""
    table_arn: Input[str]
    """Jobs table: the submitter reads the job (and asks the job gate) and records its MediaConvert job."""
    bus_arn: Input[str]
    """Custom event bus (Rendition Failed when MediaConvert refuses a job)."""
    max_concurrency: int
    """Most submissions at once (the queue's event source's maximum concurrency)."""
    size: FunctionSize = SUBMIT_SIZE
    """Submit function size; the queue's visibility timeout follows its timeout."""
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
        validated_uploads = objects_under(args.uploads_bucket_arn, patterns.UPLOAD_PREFIX, patterns.VALIDATED_SUFFIX)

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
            policy=resolve_grants(
                [
                    Grant(("s3:GetObject",), (validated_uploads,)),
                    Grant(("s3:PutObject",), (objects_under(args.outputs_bucket_arn, patterns.OUTPUT_PREFIX),)),
                ]
            ).apply(lambda grants: json.dumps(policies.service_role_policy(grants))),
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
        # The submitter: one CreateJob per pipeline job, recorded on the job (functions/submit/service.py).
        consumer = consume_fanout(
            self,
            name,
            args,
            filter_policy=patterns.mediaconvert_filter_policy(),
            handler=HANDLER,
            service="submit",
            from_image=False,
            function_name=f"{name}-submit",
            environment={"MEDIACONVERT_QUEUE_ARN": jobs_queue.arn, "MEDIACONVERT_ROLE_ARN": role.arn},
            grants=(
                # CreateJob needs the job it creates (jobs/*) as well as the queue it submits to.
                Grant(
                    ("mediaconvert:CreateJob",),
                    (jobs_queue.arn, jobs_queue.arn.apply(policies.mediaconvert_jobs_arn)),
                ),
                # CancelJob of the job it just created when the pipeline job was canceled meanwhile (a job ARN only).
                Grant(("mediaconvert:CancelJob",), (jobs_queue.arn.apply(policies.mediaconvert_jobs_arn),)),
                # CreateJob hands the service role to MediaConvert, and to nothing else.
                Grant(
                    ("iam:PassRole",),
                    (role.arn,),
                    {"StringEquals": {"iam:PassedToService": MEDIACONVERT_SERVICE}},
                ),
                Grant(("dynamodb:GetItem", "dynamodb:PutItem"), (args.table_arn,)),
                Grant(("events:PutEvents",), (args.bus_arn,)),
                # CopyObject of the validated upload (functions/submit/adapters.py): read the source, write only
                # `uploads/{jobId}/validated`, a key ingest's notification (suffix `/source`) never announces.
                Grant(("s3:GetObject",), (objects_under(args.uploads_bucket_arn, patterns.UPLOAD_PREFIX),)),
                Grant(("s3:PutObject",), (validated_uploads,)),
            ),
        )
        self.queue = consumer.queue

        self.function_name = consumer.function.function_name
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
