"""The tracker's configuration, read once from the environment (docs/CONTRACTS.md: the common set only)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(RuntimeError):
    """A required environment variable is missing or malformed: a deployment defect, not a retryable event."""


@dataclass(frozen=True)
class TrackerSettings:
    """What the tracker needs to know about the stack it runs in."""

    jobs_table_name: str
    """DynamoDB jobs table (`JOBS_TABLE_NAME`)."""
    event_bus_name: str
    """Custom bus the Job Completed / Failed / Expired events go to (`EVENT_BUS_NAME`)."""
    outputs_bucket: str
    """Bucket the renditions are written to; only its objects are measured with HEAD (`OUTPUTS_BUCKET`)."""
    stack_name: str
    """MediaConvert events whose `userMetadata.pipeline` is not this stack are ignored (`STACK_NAME`)."""
    metrics_namespace: str = "MediaPipeline"
    """CloudWatch namespace of JobsCompleted / JobsFailed / JobsExpired (`POWERTOOLS_METRICS_NAMESPACE`)."""
    sweep_max_jobs: int = 200
    """Most overdue jobs one sweep handles; the next scheduled sweep takes the rest (`SWEEP_MAX_JOBS`, optional)."""
    sweep_reserve_ms: int = 10_000
    """The sweep stops when less than this much of the invocation's time is left."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TrackerSettings:
        env = os.environ if environ is None else environ
        missing = [
            name for name in ("JOBS_TABLE_NAME", "EVENT_BUS_NAME", "OUTPUTS_BUCKET", "STACK_NAME") if not env.get(name)
        ]
        if missing:
            raise SettingsError(f"missing environment variables: {', '.join(missing)}")
        raw_max = env.get("SWEEP_MAX_JOBS") or str(cls.sweep_max_jobs)
        if not raw_max.isdigit() or int(raw_max) < 1:
            raise SettingsError(f"SWEEP_MAX_JOBS must be a positive integer, got {raw_max!r}")
        return cls(
            jobs_table_name=env["JOBS_TABLE_NAME"],
            event_bus_name=env["EVENT_BUS_NAME"],
            outputs_bucket=env["OUTPUTS_BUCKET"],
            stack_name=env["STACK_NAME"],
            metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or cls.metrics_namespace,
            sweep_max_jobs=int(raw_max),
        )
