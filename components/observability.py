"""Observability: an encrypted alarm topic; alarms on every DLQ, work queue, function and the API; the dashboard."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components.dashboard import dashboard_body


@dataclass(frozen=True)
class AlarmSpec:
    """One CloudWatch alarm on one metric: fires when the statistic over a period exceeds the threshold."""

    description: str
    namespace: str
    metric: str
    dimensions: Mapping[str, Input[str]]
    statistic: str
    period_seconds: int
    threshold: float


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
    """Functions whose errors and throttles raise alarms (and the dashboard shows)."""
    api_id: Input[str]
    """The HTTP API whose 5xx answers raise an alarm."""
    topic_key_arn: Input[str]
    """KMS key the alarm topic is encrypted with (its policy must admit cloudwatch.amazonaws.com)."""
    queue_age_threshold_seconds: int
    """Age of the oldest message that raises a work queue alarm."""
    queue_age_thresholds: Mapping[str, int] = field(default_factory=dict)
    """Per-label overrides of that age, for queues whose messages wait on purpose (webhook retries)."""
    alarm_email: str | None = None
    """Address subscribed to the alarm topic, if any (the subscription must be confirmed)."""


def alarm_specs(args: ObservabilityArgs) -> dict[str, AlarmSpec]:
    """Every alarm, by a label unique in the stack: failed work, stuck work, failing code, refused capacity, 5xx."""
    specs: dict[str, AlarmSpec] = {}
    for label, queue in args.dead_letter_queues.items():
        # Any message in a DLQ is work that failed for good: alarm on the first one.
        description = f"{label}: messages in the dead-letter queue; inspect them and redrive"
        specs[f"{label}-dlq-not-empty"] = AlarmSpec(
            description, "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": queue}, "Maximum", 60, 0
        )
    for label, queue in args.work_queues.items():
        # A growing oldest-message age means consumers are failing or cannot keep up.
        threshold = args.queue_age_thresholds.get(label, args.queue_age_threshold_seconds)
        specs[f"{label}-backlog-age"] = AlarmSpec(
            f"{label}: oldest message older than {threshold}s",
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            {"QueueName": queue},
            "Maximum",
            300,
            threshold,
        )
    for label, function in args.functions.items():
        # An error is an invocation that failed (retried or dead-lettered later); a throttle is one refused for lack
        # of concurrency (a reserved or maximum concurrency reached, or the account's limit).
        for metric in ("Errors", "Throttles"):
            specs[f"{label}-{metric.lower()}"] = AlarmSpec(
                f"{label}: {metric.lower()} in the last 5 minutes",
                "AWS/Lambda",
                metric,
                {"FunctionName": function},
                "Sum",
                300,
                0,
            )
    # HTTP APIs report `5xx` per API and stage; clients got a server error.
    specs["api-5xx"] = AlarmSpec(
        "api: 5xx answers in the last 5 minutes",
        "AWS/ApiGateway",
        "5xx",
        {"ApiId": args.api_id, "Stage": "$default"},
        "Sum",
        300,
        0,
    )
    return specs


class Observability(pulumi.ComponentResource):
    """Alarms that page someone when work piles up or fails, code fails or is throttled, or clients get 5xx; and
    one dashboard to look at."""

    alarm_topic_arn: Output[str]
    """Topic alarm notifications go to."""
    dashboard_name: Output[str]
    """CloudWatch dashboard name."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Observability", name, None, opts)
        child = ResourceOptions(parent=self)

        # Where alarms (and their recoveries) are sent, encrypted at rest with the pipeline's key.
        topic = aws.sns.Topic(f"{name}-alarms", kms_master_key_id=args.topic_key_arn, opts=child)
        if args.alarm_email:
            # Email subscriptions stay pending until the recipient confirms.
            aws.sns.TopicSubscription(
                f"{name}-alarm-email", topic=topic.arn, protocol="email", endpoint=args.alarm_email, opts=child
            )
        for label, spec in alarm_specs(args).items():
            # Missing data (a queue or function with no traffic) is healthy, not an alarm.
            aws.cloudwatch.MetricAlarm(
                f"{name}-{label}",
                alarm_description=spec.description,
                namespace=spec.namespace,
                metric_name=spec.metric,
                dimensions=dict(spec.dimensions),
                statistic=spec.statistic,
                period=spec.period_seconds,
                evaluation_periods=1,
                threshold=spec.threshold,
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
