"""Audio: the `audio` queue, subscribed to the fan-out topic for audio jobs, and the function in the ffmpeg image that
makes each unit (the loudness-normalised AAC rendition, the waveform PNG)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi import Input, Output, ResourceOptions

from components import patterns
from components.fanout_consumer import consume_fanout, worker_grants
from components.function import FunctionDefaults, FunctionSize, environment_number
from components.work_queue import WorkQueue

HANDLER = "functions.audio.handler.handler"
# ffmpeg's loudnorm filter takes an integrated loudness target from -70 to -5 LUFS.
LOUDNESS_RANGE_LUFS = (-70.0, -5.0)


@dataclass(frozen=True)
class AudioArgs:
    """Inputs of Audio."""

    functions: FunctionDefaults
    """Packaging (the ffmpeg image), common environment (the loudness target is added here) and log retention."""
    topic_arn: Input[str]
    """Fan-out topic the queue subscribes to."""
    uploads_bucket_arn: Input[str]
    """Bucket the sources are read from (`uploads/{jobId}/source`)."""
    outputs_bucket_arn: Input[str]
    """Bucket the rendition and the waveform are written to (`outputs/`)."""
    bus_arn: Input[str]
    """Custom event bus for Rendition Progress/Completed/Failed."""
    table_arn: Input[str]
    """Jobs table: read (GetItem only) to ask whether the work is still wanted (canceled, or another attempt)."""
    size: FunctionSize
    """Function size: the queue's visibility timeout follows its timeout, /tmp holds the source and the rendition."""
    max_concurrency: int
    """Most units processed at once (the queue's event source's maximum concurrency)."""
    loudness_target_lufs: float
    """EBU R128 integrated loudness the rendition is normalised to (ffmpeg `loudnorm`'s `I`, LOUDNESS_RANGE_LUFS)."""
    max_receive_count: int = 5
    """Receives before a message moves to the DLQ."""


class Audio(pulumi.ComponentResource):
    """`audio`: a filtered queue with a DLQ, and the function that makes one unit of an audio job per message."""

    queue: WorkQueue
    """The audio queue and its DLQ."""
    function_name: Output[str]
    """Audio function name."""

    def __init__(self, name: str, args: AudioArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Audio", name, None, opts)

        # Both units of every audio job (ingest publishes one message per unit), each retried and dead-lettered alone.
        # The worker, in the ffmpeg image with its own command: reads the source it is sent (IfMatch on the ETag
        # ingest validated), writes outputs/{jobId}/audio.m4a or waveform.png, announces progress and the result.
        consumer = consume_fanout(
            self,
            name,
            args,
            filter_policy=patterns.audio_filter_policy(),
            handler=HANDLER,
            service="audio",
            environment={"LOUDNESS_TARGET_LUFS": environment_number(args.loudness_target_lufs)},
            grants=worker_grants(args),
        )
        self.queue = consumer.queue

        self.function_name = consumer.function.function_name
        self.register_outputs({"queueUrl": self.queue.url, "functionName": self.function_name})
