"""Tracker: the one function that moves a job's state, and the EventBridge rules that feed it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import patterns, policies
from components.event_bus import deliver_with_retries
from components.function import FunctionDefaults, FunctionSize, LambdaFunction, LambdaFunctionArgs, allow_invoke
from components.grants import Grant, objects_under
from components.work_queue import EVENTS_SERVICE, admit_senders, dead_letter_queue

HANDLER = "functions.tracker.handler.handler"
SIZE = FunctionSize(timeout_seconds=30, memory_mb=512)


@dataclass(frozen=True)
class TrackerArgs:
    """Inputs of a Tracker."""

    functions: FunctionDefaults
    """Packaging, common environment and log retention."""
    stack: str
    """Stack name MediaConvert jobs carry in `userMetadata.pipeline`."""
    bus_name: Input[str]
    """Custom event bus the pipeline's events arrive on."""
    bus_arn: Input[str]
    """Its ARN (the tracker publishes job outcomes there)."""
    table_arn: Input[str]
    """Jobs table ARN."""
    outputs_bucket_arn: Input[str]
    """Outputs bucket, whose MediaConvert results the tracker sizes with HEAD (and a deleted job's outputs deletes)."""
    uploads_bucket_arn: Input[str]
    """Uploads bucket, where a deleted job's upload is deleted."""
    mediaconvert_jobs_arn: Input[str]
    """`arn:aws:mediaconvert:{region}:{account}:jobs/*`: a deleted job's running MediaConvert job is canceled."""
    deadline_index_arn: Input[str]
    """ARN of the open-jobs-by-deadline index the sweep queries."""
    topic_arn: Input[str]
    """The fan-out topic: the fan-in of a segment-parallel rendition publishes its stitch unit there."""
    topic_key_arn: Input[str]
    """KMS key the fan-out topic is encrypted with."""
    size: FunctionSize = SIZE
    """Function size."""
    max_event_age_seconds: int = 3600
    """How long EventBridge and Lambda keep retrying an event before it goes to the DLQ."""
    max_retry_attempts: int = 20
    """EventBridge delivery retries before the DLQ."""


class Tracker(pulumi.ComponentResource):
    """Rendition events, MediaConvert state changes and a 5-minute sweep, all delivered to the tracker function."""

    function_name: Output[str]
    """Tracker function name."""
    dlq_url: Output[str]
    """Queue holding events that could not be delivered or processed."""
    dlq_name: Output[str]
    """Its name (CloudWatch dimension)."""

    def __init__(self, name: str, args: TrackerArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Tracker", name, None, opts)
        child = ResourceOptions(parent=self)

        # Events EventBridge could not deliver, and invocations the function failed after Lambda's own retries.
        dlq = dead_letter_queue(f"{name}-dlq", child)
        function = LambdaFunction(
            f"{name}-function",
            LambdaFunctionArgs(
                defaults=args.functions,
                handler=HANDLER,
                service="tracker",
                size=args.size,
                environment={"VALIDATED_TOPIC_ARN": args.topic_arn},
                grants=(
                    Grant(
                        ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"),
                        (args.table_arn, args.deadline_index_arn),
                    ),
                    Grant(("events:PutEvents",), (args.bus_arn,)),
                    Grant(("sqs:SendMessage",), (dlq.arn,)),
                    Grant(("s3:GetObject",), (objects_under(args.outputs_bucket_arn, patterns.OUTPUT_PREFIX),)),
                    # A deleted job's files: listed under its prefixes, then deleted.
                    Grant(
                        ("s3:ListBucket",),
                        (args.uploads_bucket_arn, args.outputs_bucket_arn),
                        {"StringLike": {"s3:prefix": [f"{patterns.UPLOAD_PREFIX}*", f"{patterns.OUTPUT_PREFIX}*"]}},
                    ),
                    Grant(
                        ("s3:DeleteObject",),
                        (
                            objects_under(args.uploads_bucket_arn, patterns.UPLOAD_PREFIX),
                            objects_under(args.outputs_bucket_arn, patterns.OUTPUT_PREFIX),
                        ),
                    ),
                    Grant(("mediaconvert:CancelJob",), (args.mediaconvert_jobs_arn,)),
                    # The stitch of a segment-parallel rendition goes to the rendition's queue through the fan-out.
                    Grant(("sns:Publish",), (args.topic_arn,)),
                    # Publishing to an encrypted topic uses its key on the publisher's behalf.
                    Grant(policies.TOPIC_KEY_ACTIONS, (args.topic_key_arn,)),
                ),
            ),
            opts=child,
        )
        # Failed asynchronous invocations land in the DLQ instead of being dropped after two retries.
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=function.function_name,
            maximum_event_age_in_seconds=args.max_event_age_seconds,
            maximum_retry_attempts=2,
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(destination=dlq.arn)
            ),
            opts=child,
        )

        # (key, bus, pattern, schedule): the schedule must live on the default bus.
        sources = [
            ("pipeline-events", args.bus_name, patterns.pipeline_events_pattern(), None),
            ("mediaconvert", "default", patterns.mediaconvert_state_change_pattern(args.stack), None),
            ("sweep", "default", None, patterns.SWEEP_SCHEDULE),
        ]
        rule_arns: list[Output[str]] = []
        for key, bus, pattern, schedule in sources:
            # What the tracker listens to.
            rule = aws.cloudwatch.EventRule(
                f"{name}-{key}",
                event_bus_name=bus,
                event_pattern=json.dumps(pattern) if pattern else None,
                schedule_expression=schedule,
                opts=child,
            )
            rule_arns.append(rule.arn)
            # EventBridge may invoke the function for this rule only.
            permission = allow_invoke(f"{name}-{key}-invoke", function.function_name, EVENTS_SERVICE, rule.arn, child)
            # Deliver to the function, retrying within limits, then to the DLQ.
            deliver_with_retries(
                f"{name}-{key}-target",
                rule=rule,
                bus_name=bus,
                target_arn=function.arn,
                dead_letter_arn=dlq.arn,
                max_event_age_seconds=args.max_event_age_seconds,
                max_retry_attempts=args.max_retry_attempts,
                opts=ResourceOptions(parent=self, depends_on=[permission]),
            )
        # Only these rules may put undeliverable events in the DLQ.
        admit_senders(
            f"{name}-dlq-policy",
            queue_url=dlq.url,
            queue_arn=dlq.arn,
            service=EVENTS_SERVICE,
            source_arns=rule_arns,
            opts=child,
        )

        self.function_name = function.function_name
        self.dlq_url = dlq.url
        self.dlq_name = dlq.name
        self.register_outputs({"functionName": self.function_name, "dlqUrl": self.dlq_url})
