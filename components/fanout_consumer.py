"""The part every consumer of the validated topic's fan-out shares: a filtered WorkQueue subscribed to the topic and the
LambdaFunction consuming it, both created under the caller's component (this module declares no component of its own),
and the grants of a media worker that reads an upload and writes outputs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
from pulumi import Input, ResourceOptions

from components.function import FunctionDefaults, FunctionSize, LambdaFunction, LambdaFunctionArgs
from components.grants import Grant, objects_under
from components.patterns import OUTPUT_PREFIX, UPLOAD_PREFIX, UPLOAD_SUFFIX
from components.work_queue import SNS_SERVICE, WorkQueue, WorkQueueArgs


class ConsumerSettings(Protocol):
    """What a consumer's Args say about its queue and function (every fan-out consumer's Args has these fields)."""

    @property
    def functions(self) -> FunctionDefaults: ...
    @property
    def topic_arn(self) -> Input[str]: ...
    @property
    def size(self) -> FunctionSize: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def max_receive_count(self) -> int: ...


class WorkerSettings(ConsumerSettings, Protocol):
    """A media worker's Args: also the buckets it reads and writes, the bus it announces on and the jobs table it asks
    whether its work is still wanted."""

    @property
    def uploads_bucket_arn(self) -> Input[str]: ...
    @property
    def outputs_bucket_arn(self) -> Input[str]: ...
    @property
    def bus_arn(self) -> Input[str]: ...
    @property
    def table_arn(self) -> Input[str]: ...


@dataclass(frozen=True)
class FanoutConsumer:
    """The queue and the function consume_fanout created."""

    queue: WorkQueue
    """The filtered queue and its DLQ."""
    function: LambdaFunction
    """The function consuming it."""


def consume_fanout(
    parent: pulumi.Resource,
    name: str,
    settings: ConsumerSettings,
    *,
    filter_policy: Mapping[str, Any],
    handler: str,
    service: str,
    environment: Mapping[str, Input[str]],
    grants: Iterable[Grant],
    from_image: bool = True,
    function_name: str | None = None,
) -> FanoutConsumer:
    """Queue `name` (subscribed to `settings.topic_arn` through `filter_policy`, each message retried and dead-lettered
    on its own) and the function consuming it (`function_name`, by default `{name}-function`), both under `parent`."""
    child = ResourceOptions(parent=parent)
    queue = WorkQueue(
        name,
        WorkQueueArgs(
            consumer_timeout_seconds=settings.size.timeout_seconds,
            sender_service=SNS_SERVICE,
            sender_arn=settings.topic_arn,
            filter_policy=filter_policy,
            max_receive_count=settings.max_receive_count,
        ),
        opts=child,
    )
    function = LambdaFunction(
        function_name or f"{name}-function",
        LambdaFunctionArgs(
            defaults=settings.functions,
            handler=handler,
            service=service,
            from_image=from_image,
            size=settings.size,
            environment=environment,
            queue_arn=queue.arn,
            max_concurrency=settings.max_concurrency,
            grants=tuple(grants),
        ),
        opts=child,
    )
    return FanoutConsumer(queue, function)


def worker_grants(
    settings: WorkerSettings,
    *,
    multipart: bool = True,
    list_uploads: bool = False,
) -> list[Grant]:
    """A media worker's grants: read the upload, write (and HEAD) outputs/*, ListBucket, announce on the bus, read a
    job (the job gate: canceled, or another attempt?).

    The upload object itself (`uploads/*/source`) is the only key of the uploads bucket it reads, never submit's
    validated copies beside it. `multipart`: the worker may abort a multipart upload (an output
    over 8 MiB is uploaded in parts, which a failed upload aborts rather than leaving them for the lifecycle rule).
    `list_uploads`: ListBucket on the uploads bucket too (a missing upload then reads as NoSuchKey, not AccessDenied).
    """
    uploads, outputs = settings.uploads_bucket_arn, settings.outputs_bucket_arn
    output_actions = (
        ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload") if multipart else ("s3:GetObject", "s3:PutObject")
    )
    # Unconditioned: S3 checks ListBucket with no s3:prefix for a GET or HEAD of a missing key (a prefix condition
    # would refuse it, and the HEAD of an output not made yet would answer 403), and listing reveals only key names.
    listing = Grant(("s3:ListBucket",), (uploads, outputs) if list_uploads else (outputs,))
    return [
        Grant(("s3:GetObject",), (objects_under(uploads, UPLOAD_PREFIX, UPLOAD_SUFFIX),)),
        # Writes outputs/{jobId}/...; GetObject also authorises the HEAD that lets a redelivered unit re-announce its
        # output instead of making it again.
        Grant(output_actions, (objects_under(outputs, OUTPUT_PREFIX),)),
        # Without ListBucket S3 answers that HEAD with 403 (AccessDenied) instead of 404 for an output not made yet.
        listing,
        Grant(("events:PutEvents",), (settings.bus_arn,)),
        # The job gate (functions/common/job_gate.py): one consistent GetItem, never a write.
        Grant(("dynamodb:GetItem",), (settings.table_arn,)),
    ]
