"""EventBus: the pipeline's custom EventBridge bus, where job and rendition events are announced; and the one way its
rules (and the default bus's) deliver to a target: with retries, then a dead-letter queue."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions


@dataclass(frozen=True)
class EventBusArgs:
    """Inputs of an EventBus."""

    previous_parent: pulumi.Resource | None = None
    """The component that declared the bus before it had its own (the JobStore of the same name), so that a deployed
    stack keeps its bus instead of replacing it; None for a bus that never lived anywhere else."""


class EventBus(pulumi.ComponentResource):
    """A custom bus named after the stack: the pipeline's functions publish to it, downstream systems subscribe."""

    bus_name: Output[str]
    """Bus name."""
    bus_arn: Output[str]
    """Bus ARN."""

    def __init__(self, name: str, args: EventBusArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:EventBus", name, None, opts)
        moved = [pulumi.Alias(parent=args.previous_parent)] if args.previous_parent is not None else None

        # The bus the pipeline's functions publish to and downstream systems subscribe to.
        bus = aws.cloudwatch.EventBus(
            f"{name}-bus",
            name=f"media-pipeline-{pulumi.get_stack()}",
            opts=ResourceOptions(parent=self, aliases=moved),
        )

        self.bus_name = bus.name
        self.bus_arn = bus.arn
        self.register_outputs({"busName": self.bus_name, "busArn": self.bus_arn})


def deliver_with_retries(
    name: str,
    *,
    rule: aws.cloudwatch.EventRule,
    bus_name: Input[str],
    target_arn: Input[str],
    dead_letter_arn: Input[str],
    max_event_age_seconds: int,
    max_retry_attempts: int,
    opts: ResourceOptions,
) -> aws.cloudwatch.EventTarget:
    """A rule's target: EventBridge retries a failed delivery within these limits, then dead-letters the event."""
    return aws.cloudwatch.EventTarget(
        name,
        rule=rule.name,
        event_bus_name=bus_name,
        arn=target_arn,
        retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
            maximum_event_age_in_seconds=max_event_age_seconds, maximum_retry_attempts=max_retry_attempts
        ),
        dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=dead_letter_arn),
        opts=opts,
    )
