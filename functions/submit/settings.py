"""The submit function's configuration, read from the environment (docs/CONTRACTS.md, "Environment variables").

The MediaConvert client is boto3's default for the region; `AWS_ENDPOINT_URL_MEDIACONVERT` (which boto3 reads by
itself) points it elsewhere, e.g. at the local cloud's stand-in. DescribeEndpoints is not needed: every account
can use the regional endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

REQUIRED = (
    "JOBS_TABLE_NAME",
    "EVENT_BUS_NAME",
    "UPLOADS_BUCKET",
    "OUTPUTS_BUCKET",
    "STACK_NAME",
    "MEDIACONVERT_QUEUE_ARN",
    "MEDIACONVERT_ROLE_ARN",
)


class SettingsError(RuntimeError):
    """A required environment variable is missing or malformed: a deployment defect, not a bad message."""


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
    metrics_namespace: str = "MediaPipeline"
    """CloudWatch namespace of the EMF metrics (`POWERTOOLS_METRICS_NAMESPACE`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SubmitSettings:
        env = os.environ if environ is None else environ
        missing = [name for name in REQUIRED if not env.get(name)]
        if missing:
            raise SettingsError(f"missing environment variables: {', '.join(missing)}")
        for name in ("MEDIACONVERT_QUEUE_ARN", "MEDIACONVERT_ROLE_ARN"):
            if not env[name].startswith("arn:"):
                raise SettingsError(f"{name} must be an ARN, got {env[name]!r}")
        return cls(
            jobs_table_name=env["JOBS_TABLE_NAME"],
            event_bus_name=env["EVENT_BUS_NAME"],
            uploads_bucket=env["UPLOADS_BUCKET"],
            outputs_bucket=env["OUTPUTS_BUCKET"],
            stack_name=env["STACK_NAME"],
            queue_arn=env["MEDIACONVERT_QUEUE_ARN"],
            role_arn=env["MEDIACONVERT_ROLE_ARN"],
            metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or cls.metrics_namespace,
        )
