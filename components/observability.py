"""Observability: an alarm topic, alarms on every DLQ and work queue, and the pipeline's dashboard."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components.dashboard import dashboard_body


@dataclass(frozen=True)
class ObservabilityArgs:
    """Inputs of Observability; the mappings are label -> name."""

    region: Input[str]
    """Region the dashboard's widgets read from."""
    work_queues: Mapping[str, Input[str]]
    """Work queues whose oldest message must not get too old."""
    dead_letter_queues: Mapping[str, Input[str]]
    """Dead-letter queues that must stay empty."""
    functions: Mapping[str, Input[str]]
    """Functions whose errors the dashboard shows."""
    queue_age_threshold_seconds: int
    """Age of the oldest message that raises a work queue alarm."""
    queue_age_thresholds: Mapping[str, int] = field(default_factory=dict)
    """Per-label overrides of that age, for queues whose messages wait on purpose (webhook retries)."""
    alarm_email: str | None = None
    """Address subscribed to the alarm topic, if any (the subscription must be confirmed)."""


class Observability(pulumi.ComponentResource):
    """Alarms that page someone when work piles up or fails for good, and one dashboard to look at."""

    alarm_topic_arn: Output[str]
    """Topic alarm notifications go to."""
    dashboard_name: Output[str]
    """CloudWatch dashboard name."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Observability", name, None, opts)
        child = ResourceOptions(parent=self)

        # Where alarms (and their recoveries) are sent.
        topic = aws.sns.Topic(f"{name}-alarms", opts=child)
        if args.alarm_email:
            # Email subscriptions stay pending until the recipient confirms.
            aws.sns.TopicSubscription(
                f"{name}-alarm-email", topic=topic.arn, protocol="email", endpoint=args.alarm_email, opts=child
            )
        # Any message in a DLQ is work that failed for good: alarm on the first one.
        for label, queue_name in args.dead_letter_queues.items():
            aws.cloudwatch.MetricAlarm(
                f"{name}-{label}-dlq-not-empty",
                alarm_description=f"{label}: messages in the dead-letter queue; inspect them and redrive",
                namespace="AWS/SQS",
                metric_name="ApproximateNumberOfMessagesVisible",
                dimensions={"QueueName": queue_name},
                statistic="Maximum",
                period=60,
                evaluation_periods=1,
                threshold=0,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],
                opts=child,
            )
        # A growing oldest-message age means consumers are failing or cannot keep up.
        for label, queue_name in args.work_queues.items():
            threshold = args.queue_age_thresholds.get(label, args.queue_age_threshold_seconds)
            aws.cloudwatch.MetricAlarm(
                f"{name}-{label}-backlog-age",
                alarm_description=f"{label}: oldest message older than {threshold}s",
                namespace="AWS/SQS",
                metric_name="ApproximateAgeOfOldestMessage",
                dimensions={"QueueName": queue_name},
                statistic="Maximum",
                period=300,
                evaluation_periods=1,
                threshold=threshold,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],
                opts=child,
            )
        # Queue depths and ages, DLQs, Lambda errors and job outcomes on one page.
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"media-pipeline-{pulumi.get_stack()}",
            dashboard_body=Output.json_dumps(
                dashboard_body(args.region, args.work_queues, args.dead_letter_queues, args.functions)
            ),
            opts=child,
        )

        self.alarm_topic_arn = topic.arn
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs({"alarmTopicArn": self.alarm_topic_arn, "dashboardName": self.dashboard_name})
