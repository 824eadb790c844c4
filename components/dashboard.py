"""The CloudWatch dashboard body as plain data; values may be Pulumi Inputs, resolved by Output.json_dumps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JOB_METRICS_NAMESPACE = "MediaPipeline"
JOB_OUTCOME_METRICS = ("JobsCompleted", "JobsFailed", "JobsRejected", "JobsExpired")
_WIDTH = 12
_HEIGHT = 6


def _widget(title: str, region: Any, metrics: list[list[Any]], stat: str, position: int) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": (position % 2) * _WIDTH,
        "y": (position // 2) * _HEIGHT,
        "width": _WIDTH,
        "height": _HEIGHT,
        "properties": {
            "title": title,
            "region": region,
            "view": "timeSeries",
            "stacked": False,
            "stat": stat,
            "period": 60,
            "metrics": metrics,
        },
    }


def job_metric_search(metric: str) -> str:
    """CloudWatch SEARCH expression summing one job outcome metric over every emitting service."""
    return f"SEARCH('{{{JOB_METRICS_NAMESPACE},service}} MetricName=\"{metric}\"', 'Sum', 60)"


def dashboard_body(
    region: Any,
    work_queues: Mapping[str, Any],
    dead_letter_queues: Mapping[str, Any],
    functions: Mapping[str, Any],
) -> dict[str, Any]:
    """Queue depths and ages, DLQ depths, Lambda errors and job outcomes; keys of each mapping are labels."""
    if not work_queues or not functions:
        raise ValueError("a dashboard needs at least one work queue and one function")
    depth = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name, {"label": label}]
        for label, name in work_queues.items()
    ]
    age = [
        ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", name, {"label": label}]
        for label, name in work_queues.items()
    ]
    dlq_depth = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name, {"label": label}]
        for label, name in dead_letter_queues.items()
    ]
    errors = [["AWS/Lambda", "Errors", "FunctionName", name, {"label": label}] for label, name in functions.items()]
    # Powertools adds a `service` dimension naming whichever function emitted the metric, so search across them.
    outcomes = [
        [{"id": f"outcome{index}", "label": metric, "expression": job_metric_search(metric)}]
        for index, metric in enumerate(JOB_OUTCOME_METRICS)
    ]
    widgets = [
        _widget("Work queue depth", region, depth, "Maximum", 0),
        _widget("Oldest message age (s)", region, age, "Maximum", 1),
        _widget("Dead-letter queue depth", region, dlq_depth, "Maximum", 2),
        _widget("Lambda errors", region, errors, "Sum", 3),
        _widget("Job outcomes", region, outcomes, "Sum", 4),
    ]
    return {"widgets": widgets}
