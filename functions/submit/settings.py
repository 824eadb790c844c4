"""The submit function's configuration, read from the environment (docs/CONTRACTS.md, "Environment variables")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions.common.settings import EnvironmentReader


@dataclass(frozen=True)
class SubmitSettings:
    """What the submit function needs to know about the stack it runs in."""

    jobs_table_name: str
    """DynamoDB jobs table (`JOBS_TABLE_NAME`): read the job, record its MediaConvert job."""
    event_bus_name: str
    """Custom bus for `Rendition Failed` when MediaConvert refuses a job (`EVENT_BUS_NAME`)."""
    uploads_bucket: str
    """The only bucket a source may come from (`UPLOADS_BUCKET`)."""
    outputs_bucket: str
    """Where the outputs go, under `outputs/{jobId}/` (`OUTPUTS_BUCKET`)."""
    stack_name: str
    """Put in every job's `userMetadata.pipeline`, which the tracker's rule matches (`STACK_NAME`)."""
    queue_arn: str
    """The stack's on-demand MediaConvert queue (`MEDIACONVERT_QUEUE_ARN`)."""
    role_arn: str
    """The service role MediaConvert assumes for the job's S3 reads and writes (`MEDIACONVERT_ROLE_ARN`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SubmitSettings:
        """The settings; raises SettingsError naming every missing or malformed variable."""
        read = EnvironmentReader(environ)
        settings = cls(
            jobs_table_name=read.text("JOBS_TABLE_NAME"),
            event_bus_name=read.text("EVENT_BUS_NAME"),
            uploads_bucket=read.text("UPLOADS_BUCKET"),
            outputs_bucket=read.text("OUTPUTS_BUCKET"),
            stack_name=read.text("STACK_NAME"),
            queue_arn=read.arn("MEDIACONVERT_QUEUE_ARN"),
            role_arn=read.arn("MEDIACONVERT_ROLE_ARN"),
        )
        read.done("submit function")
        return settings
