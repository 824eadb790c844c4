"""Packager: the rule on the custom bus for `Packaging Requested`, its queue with a DLQ, and the function in the ffmpeg
image that remuxes a video job's finished MP4s into the HLS ladder, the poster and the thumbnails
(functions/contracts/playback.py), for both engines."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import patterns
from components.function import FunctionDefaults, FunctionSize, LambdaFunction, LambdaFunctionArgs
from components.grants import Grant, objects_under
from components.work_queue import EVENTS_SERVICE, WorkQueue, WorkQueueArgs, queue_rule_events

HANDLER = "functions.packager.handler.handler"
# The GOP every rendition is encoded on: a tile interval must be a whole number of them (keyframes only are decoded).
GOP_SECONDS = 2


@dataclass(frozen=True)
class PackagerArgs:
    """Inputs of Packager."""

    functions: FunctionDefaults
    """Packaging (the ffmpeg image), common environment and log retention."""
    bus_name: Input[str]
    """Custom event bus the tracker puts `Packaging Requested` on."""
    bus_arn: Input[str]
    """The same bus, where the packager puts `Packaging Completed` or `Packaging Failed`."""
    outputs_bucket_arn: Input[str]
    """Bucket the renditions are read from and the package written to (`outputs/`); the uploads are never read."""
    table_arn: Input[str]
    """Jobs table: read (GetItem only) to ask whether the work is still wanted (canceled, or another attempt)."""
    size: FunctionSize
    """Function size: /tmp holds every rendition of a job and its segments."""
    max_concurrency: int
    """Most jobs packaged at once (the queue's event source's maximum concurrency)."""
    thumbnail_interval_seconds: int
    """Seconds of video per sprite tile (a multiple of the 2-second GOP); raised for long videos."""
    max_receive_count: int = 5
    """Receives before a message moves to the DLQ."""
    max_event_age_seconds: int = 86_400
    """How long EventBridge keeps retrying to queue a request before it goes to the DLQ."""


class Packager(pulumi.ComponentResource):
    """`packager`: one unit of work per video job whose renditions all settled, retried and dead-lettered."""

    queue: WorkQueue
    """The packaging queue and its DLQ."""
    function_name: Output[str]
    """Packager function name."""

    def __init__(self, name: str, args: PackagerArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Packager", name, None, opts)
        interval = args.thumbnail_interval_seconds
        if interval < GOP_SECONDS or interval % GOP_SECONDS:
            raise ValueError(f"{name}: the thumbnail interval must be a multiple of {GOP_SECONDS} s, got {interval}")
        child = ResourceOptions(parent=self)

        # `Packaging Requested` on the custom bus, put by the tracker's fan-in exactly once per job.
        rule = aws.cloudwatch.EventRule(
            f"{name}-requests",
            event_bus_name=args.bus_name,
            event_pattern=json.dumps(patterns.packaging_requests_pattern()),
            opts=child,
        )
        self.queue = WorkQueue(
            f"{name}-requests",
            WorkQueueArgs(
                consumer_timeout_seconds=args.size.timeout_seconds,
                sender_service=EVENTS_SERVICE,
                sender_arn=rule.arn,
                max_receive_count=args.max_receive_count,
            ),
            opts=child,
        )
        queue_rule_events(
            f"{name}-requests-target",
            f"{name}-dlq-policy",
            rule=rule,
            bus_name=args.bus_name,
            queue=self.queue,
            max_event_age_seconds=args.max_event_age_seconds,
            parent=self,
        )
        # Reads the finished MP4s and writes the package, both under outputs/ (segments over 8 MiB go up in parts, which
        # a failed upload aborts); nothing in the uploads bucket; reads (never writes) the job it packages.
        outputs = objects_under(args.outputs_bucket_arn, patterns.OUTPUT_PREFIX)
        function = LambdaFunction(
            f"{name}-function",
            LambdaFunctionArgs(
                defaults=args.functions,
                handler=HANDLER,
                service="packager",
                size=args.size,
                environment={"THUMBNAIL_INTERVAL_SECONDS": str(interval)},
                from_image=True,
                queue_arn=self.queue.arn,
                max_concurrency=args.max_concurrency,
                grants=(
                    Grant(("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"), (outputs,)),
                    # Without it S3 answers a rendition that is not there with 403 (AccessDenied) instead of 404.
                    Grant(("s3:ListBucket",), (args.outputs_bucket_arn,)),
                    Grant(("events:PutEvents",), (args.bus_arn,)),
                    # The job gate (functions/common/job_gate.py): one consistent GetItem, never a write.
                    Grant(("dynamodb:GetItem",), (args.table_arn,)),
                ),
            ),
            opts=child,
        )
        self.function_name = function.function_name
        self.register_outputs({"queueUrl": self.queue.url, "functionName": self.function_name})
