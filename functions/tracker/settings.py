"""The tracker's configuration, read once from the environment (docs/CONTRACTS.md: the common set, and the fan-out
topic the stitch of a segment-parallel rendition goes to)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions.common.settings import EnvironmentReader

DEFAULT_SWEEP_MAX_JOBS = 200
MAX_SWEEP_MAX_JOBS = 10_000


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
    uploads_bucket: str = ""
    """Bucket a deleted job's upload is deleted from (`UPLOADS_BUCKET`)."""
    validated_topic_arn: str = ""
    """The fan-out topic the stitch of a segment-parallel rendition is published to (`VALIDATED_TOPIC_ARN`)."""
    sweep_max_jobs: int = DEFAULT_SWEEP_MAX_JOBS
    """Most overdue jobs one sweep handles; the next scheduled sweep takes the rest (`SWEEP_MAX_JOBS`, optional)."""
    sweep_reserve_ms: int = 10_000
    """The sweep stops when less than this much of the invocation's time is left."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TrackerSettings:
        """Raises SettingsError naming every missing or malformed variable."""
        read = EnvironmentReader(environ)
        settings = cls(
            jobs_table_name=read.text("JOBS_TABLE_NAME"),
            event_bus_name=read.text("EVENT_BUS_NAME"),
            outputs_bucket=read.text("OUTPUTS_BUCKET"),
            stack_name=read.text("STACK_NAME"),
            uploads_bucket=read.text("UPLOADS_BUCKET"),
            validated_topic_arn=read.arn("VALIDATED_TOPIC_ARN"),
            sweep_max_jobs=read.integer("SWEEP_MAX_JOBS", 1, MAX_SWEEP_MAX_JOBS, default=DEFAULT_SWEEP_MAX_JOBS),
        )
        read.done("tracker")
        return settings
