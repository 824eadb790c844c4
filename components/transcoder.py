"""Transcoder: one rendition's queue, subscribed to the fan-out topic, and its ffmpeg function."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi import Input, Output, ResourceOptions

from components import patterns
from components.fanout_consumer import consume_fanout, worker_grants
from components.function import FunctionDefaults, FunctionSize
from components.grants import Grant, objects_under
from components.work_queue import WorkQueue
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
    table_arn: Input[str]
    """Jobs table: read (GetItem only) to ask whether the work is still wanted (canceled, or another attempt)."""
    size: FunctionSize
    """Function size: the queue's visibility timeout follows its timeout, memory sets ffmpeg's vCPUs, /tmp holds the
    source and the encoded rendition."""
    max_concurrency: int
    """Most encodes of this rendition at once (the queue's event source's maximum concurrency)."""
    max_receive_count: int = 5
    """Receives before a message moves to the DLQ."""
    preset: str = "veryfast"
    """x264 preset (`FFMPEG_PRESET`)."""


class Transcoder(pulumi.ComponentResource):
    """`transcode-{rendition}`: a filtered queue with a DLQ and the function that encodes that one rendition."""

    queue: WorkQueue
    """The rendition's queue and its DLQ."""
    function_name: Output[str]
    """Transcode function name."""

    def __init__(self, name: str, args: TranscoderArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Transcoder", name, None, opts)
        rendition = args.rendition

        # Lambda-engine video jobs that queued this rendition, and nothing else.
        # The encoder: reads the source, writes outputs/{jobId}/{rendition}.mp4 (or, for a long source, its parts and
        # then the stitched rendition), announces progress and the result.
        consumer = consume_fanout(
            self,
            name,
            args,
            filter_policy=patterns.rendition_filter_policy(rendition.name),
            handler=HANDLER,
            service="transcode",
            environment={"RENDITION": rendition_to_json(rendition), "FFMPEG_PRESET": args.preset},
            # Any key under uploads/; ListBucket on both buckets, under their prefixes. The parts of a segment-parallel
            # rendition (outputs/{jobId}/segments/...) are deleted by the stitch once the rendition is stored.
            grants=[
                *worker_grants(args, list_uploads=True),
                Grant(
                    ("s3:DeleteObject",),
                    (objects_under(args.outputs_bucket_arn, patterns.OUTPUT_PREFIX, patterns.SEGMENT_PARTS_SUFFIX),),
                ),
            ],
        )
        self.queue = consumer.queue

        self.function_name = consumer.function.function_name
        self.register_outputs({"queueUrl": self.queue.url, "functionName": self.function_name})
