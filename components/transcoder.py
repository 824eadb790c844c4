"""Transcoder: one rendition's queue, subscribed to the fan-out topic, and its ffmpeg function."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi import Input, Output, ResourceOptions

from components import patterns
from components.function import FunctionDefaults, FunctionSize, LambdaFunction, LambdaFunctionArgs
from components.grants import Grant, objects_under
from components.patterns import OUTPUT_PREFIX, UPLOAD_PREFIX
from components.work_queue import SNS_SERVICE, WorkQueue, WorkQueueArgs
from functions.common.renditions import Rendition, rendition_to_json

HANDLER = "functions.transcode.handler.handler"


@dataclass(frozen=True)
class TranscoderArgs:
    """Inputs of a Transcoder."""

    functions: FunctionDefaults
    """Packaging (the ffmpeg image), common environment (RENDITION is added here) and log retention."""
    rendition: Rendition
    """The rendition this transcoder produces."""
    topic_arn: Input[str]
    """Fan-out topic the queue subscribes to."""
    uploads_bucket_arn: Input[str]
    """Bucket the sources are read from (`uploads/`)."""
    outputs_bucket_arn: Input[str]
    """Bucket the renditions are written to (`outputs/`)."""
    bus_arn: Input[str]
    """Custom event bus for Rendition Progress/Completed/Failed."""
    size: FunctionSize
    """Function size: the queue's visibility timeout follows its timeout, memory sets ffmpeg's vCPUs, /tmp holds the
    source and the encoded rendition."""
    max_concurrency: int
    """Most encodes of this rendition at once (the queue's event source's maximum concurrency)."""
    max_receive_count: int = 5
    """Receives before a message moves to the DLQ."""


class Transcoder(pulumi.ComponentResource):
    """`transcode-{rendition}`: a filtered queue with a DLQ and the function that encodes that one rendition."""

    queue: WorkQueue
    """The rendition's queue and its DLQ."""
    function_name: Output[str]
    """Transcode function name."""

    def __init__(self, name: str, args: TranscoderArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Transcoder", name, None, opts)
        child = ResourceOptions(parent=self)
        rendition = args.rendition

        # Lambda-engine video jobs that queued this rendition, and nothing else.
        self.queue = WorkQueue(
            name,
            WorkQueueArgs(
                consumer_timeout_seconds=args.size.timeout_seconds,
                sender_service=SNS_SERVICE,
                sender_arn=args.topic_arn,
                filter_policy=patterns.rendition_filter_policy(rendition.name),
                max_receive_count=args.max_receive_count,
            ),
            opts=child,
        )
        # The encoder: reads the source, writes outputs/{jobId}/{rendition}.mp4, announces progress and the result.
        function = LambdaFunction(
            f"{name}-function",
            LambdaFunctionArgs(
                defaults=args.functions,
                handler=HANDLER,
                service="transcode",
                from_image=True,
                size=args.size,
                environment={"RENDITION": rendition_to_json(rendition)},
                queue_arn=self.queue.arn,
                max_concurrency=args.max_concurrency,
                grants=(
                    Grant(("s3:GetObject",), (objects_under(args.uploads_bucket_arn, UPLOAD_PREFIX),)),
                    # HEAD of an output from an earlier delivery lets a redelivered message skip the encode.
                    Grant(
                        ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"),
                        (objects_under(args.outputs_bucket_arn, OUTPUT_PREFIX),),
                    ),
                    # Without ListBucket a missing object reads as AccessDenied instead of NotFound.
                    Grant(
                        ("s3:ListBucket",),
                        (args.uploads_bucket_arn, args.outputs_bucket_arn),
                        {"StringLike": {"s3:prefix": [f"{UPLOAD_PREFIX}*", f"{OUTPUT_PREFIX}*"]}},
                    ),
                    Grant(("events:PutEvents",), (args.bus_arn,)),
                ),
            ),
            opts=child,
        )

        self.function_name = function.function_name
        self.register_outputs({"queueUrl": self.queue.url, "functionName": self.function_name})
