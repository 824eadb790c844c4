"""WorkQueue: an SQS queue with its own dead-letter queue, admitting exactly one sender (a topic, bucket or rule)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import policies
from components.event_bus import deliver_with_retries

SNS_SERVICE = "sns.amazonaws.com"
S3_SERVICE = "s3.amazonaws.com"
EVENTS_SERVICE = "events.amazonaws.com"
DLQ_RETENTION_SECONDS = 1_209_600  # 14 days, the SQS maximum: time to notice the alarm and redrive
QUEUE_RETENTION_SECONDS = 345_600  # 4 days
MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200
# AWS guidance for SQS event sources: visibility timeout at least 6x the function timeout, so a batch that is
# retried after throttling or a timeout does not become visible again while a previous attempt is still running.
VISIBILITY_TIMEOUT_FACTOR = 6


def visibility_timeout(consumer_timeout_seconds: int) -> int:
    """Visibility timeout for a queue consumed by a function with the given timeout."""
    seconds = VISIBILITY_TIMEOUT_FACTOR * consumer_timeout_seconds
    if not 0 < seconds <= MAX_VISIBILITY_TIMEOUT_SECONDS:
        raise ValueError(f"visibility timeout {seconds}s (6 x {consumer_timeout_seconds}s) is outside SQS limits")
    return seconds


def dead_letter_queue(name: str, opts: ResourceOptions) -> aws.sqs.Queue:
    """Where failed messages (or undeliverable events) go, kept for the SQS maximum of 14 days."""
    return aws.sqs.Queue(name, message_retention_seconds=DLQ_RETENTION_SECONDS, sqs_managed_sse_enabled=True, opts=opts)


def admit_senders(
    name: str,
    *,
    queue_url: Input[str],
    queue_arn: Input[str],
    service: str,
    source_arns: Sequence[Input[str]],
    opts: ResourceOptions,
    source_account: Input[str] | None = None,
) -> aws.sqs.QueuePolicy:
    """Queue policy letting `service` send on behalf of the named sources (topic, bucket or rules) and no others."""
    return aws.sqs.QueuePolicy(
        name,
        queue_url=queue_url,
        policy=Output.all(queue_arn, source_account, *source_arns).apply(
            lambda v: json.dumps(policies.queue_send_policy(v[0], service, v[2:], v[1]))
        ),
        opts=opts,
    )


@dataclass(frozen=True)
class WorkQueueArgs:
    """Inputs of a WorkQueue."""

    consumer_timeout_seconds: int
    """Timeout of the Lambda function consuming the queue; sets the visibility timeout."""
    sender_service: str
    """Service principal allowed to send: `sns.amazonaws.com` (subscribes the queue), `s3.amazonaws.com` or
    `events.amazonaws.com` (an EventBridge rule targets the queue)."""
    sender_arn: Input[str]
    """ARN of the one topic, bucket or rule allowed to send (aws:SourceArn)."""
    sender_account: Input[str] | None = None
    """Account that must own the sender (aws:SourceAccount); needed for S3, whose bucket ARNs have no account."""
    filter_policy: Mapping[str, Any] | None = None
    """SNS filter policy on message attributes; required when the sender is a topic."""
    max_receive_count: int = 5
    """Receives before a message moves to the dead-letter queue."""


class WorkQueue(pulumi.ComponentResource):
    """A consumer's queue: dead-letter queue, redrive, encryption, a policy for its sender, its SNS subscription."""

    arn: Output[str]
    """Queue ARN."""
    url: Output[str]
    """Queue URL."""
    queue_name: Output[str]
    """Queue name (CloudWatch dimension)."""
    dlq_arn: Output[str]
    """Dead-letter queue ARN."""
    dlq_url: Output[str]
    """Dead-letter queue URL (for redrive)."""
    dlq_name: Output[str]
    """Dead-letter queue name (CloudWatch dimension)."""
    policy: aws.sqs.QueuePolicy
    """The queue policy; depend on it before pointing a bucket notification at the queue."""

    def __init__(self, name: str, args: WorkQueueArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:WorkQueue", name, None, opts)
        subscribes = args.sender_service == SNS_SERVICE
        if args.sender_service not in (SNS_SERVICE, S3_SERVICE, EVENTS_SERVICE):
            raise ValueError(f"{name}: unsupported sender {args.sender_service}")
        if subscribes and not args.filter_policy:
            raise ValueError(f"{name}: a queue subscribed to a topic needs a filter policy")
        child = ResourceOptions(parent=self)

        # Where messages go after max_receive_count failed attempts.
        dlq = dead_letter_queue(f"{name}-dlq", child)
        # The work queue itself.
        queue = aws.sqs.Queue(
            f"{name}-queue",
            visibility_timeout_seconds=visibility_timeout(args.consumer_timeout_seconds),
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            receive_wait_time_seconds=20,
            sqs_managed_sse_enabled=True,
            redrive_policy=dlq.arn.apply(lambda arn: json.dumps(policies.redrive_policy(arn, args.max_receive_count))),
            opts=child,
        )
        # Only the named topic, bucket or rule may send.
        self.policy = admit_senders(
            f"{name}-policy",
            queue_url=queue.url,
            queue_arn=queue.arn,
            service=args.sender_service,
            source_arns=[args.sender_arn],
            source_account=args.sender_account,
            opts=child,
        )
        if subscribes:
            # Raw delivery keeps the body as ingest wrote it; the filter runs on message attributes.
            aws.sns.TopicSubscription(
                f"{name}-subscription",
                topic=args.sender_arn,
                protocol="sqs",
                endpoint=queue.arn,
                raw_message_delivery=True,
                filter_policy_scope="MessageAttributes",
                filter_policy=json.dumps(args.filter_policy),
                opts=ResourceOptions(parent=self, depends_on=[self.policy]),
            )

        self.arn = queue.arn
        self.url = queue.url
        self.queue_name = queue.name
        self.dlq_arn = dlq.arn
        self.dlq_url = dlq.url
        self.dlq_name = dlq.name
        self.register_outputs({"arn": self.arn, "url": self.url, "dlqArn": self.dlq_arn, "dlqUrl": self.dlq_url})


# EventBridge's most retries: for a queue target the event age is the limit that applies.
MAX_EVENT_RETRY_ATTEMPTS = 185


def queue_rule_events(
    target_name: str,
    dlq_policy_name: str,
    *,
    rule: aws.cloudwatch.EventRule,
    bus_name: Input[str],
    queue: WorkQueue,
    max_event_age_seconds: int,
    parent: pulumi.Resource,
) -> None:
    """A rule's events onto a work queue, retried for `max_event_age_seconds`; events EventBridge cannot queue land in
    the queue's own DLQ, beside the messages its consumer gave up on (so the DLQ admits the rule too)."""
    admit_senders(
        dlq_policy_name,
        queue_url=queue.dlq_url,
        queue_arn=queue.dlq_arn,
        service=EVENTS_SERVICE,
        source_arns=[rule.arn],
        opts=ResourceOptions(parent=parent),
    )
    deliver_with_retries(
        target_name,
        rule=rule,
        bus_name=bus_name,
        target_arn=queue.arn,
        dead_letter_arn=queue.dlq_arn,
        max_event_age_seconds=max_event_age_seconds,
        max_retry_attempts=MAX_EVENT_RETRY_ATTEMPTS,
        opts=ResourceOptions(parent=parent, depends_on=[queue.policy]),
    )
