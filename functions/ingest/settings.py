"""The ingest function's configuration, read from the environment (docs/CONTRACTS.md, "Environment variables")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from functions.common.renditions import DEFAULT_RENDITIONS, Rendition, parse_renditions
from functions.ingest.engine import EngineSetting, LambdaCapacity, lambda_capacity
from functions.ingest.limits import Limits
from functions.transcode.settings import TranscodeSettings

REQUIRED = (
    "JOBS_TABLE_NAME",
    "EVENT_BUS_NAME",
    "UPLOADS_BUCKET",
    "VALIDATED_TOPIC_ARN",
    "MAX_UPLOAD_BYTES",
    "MAX_DURATION_SECONDS",
    "MAX_WIDTH",
    "MAX_HEIGHT",
    "MEDIACONVERT_THRESHOLD_SECONDS",
    "PROCESSING_DEADLINE_SECONDS",
    "TRANSCODE_TIMEOUT_SECONDS",
    "TRANSCODE_MEMORY_MB",
    "LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND",
)


class SettingsError(RuntimeError):
    """A required environment variable is missing or malformed: a deployment defect, not a bad upload."""


@dataclass(frozen=True)
class IngestSettings:
    """What ingest needs to know about the stack it runs in and the rules an upload must meet."""

    jobs_table_name: str
    """DynamoDB jobs table (`JOBS_TABLE_NAME`)."""
    event_bus_name: str
    """Custom bus for Job Accepted / Job Rejected (`EVENT_BUS_NAME`)."""
    uploads_bucket: str
    """The only bucket whose notifications are acted on (`UPLOADS_BUCKET`)."""
    validated_topic_arn: str
    """SNS topic the fan-out message goes to (`VALIDATED_TOPIC_ARN`)."""
    limits: Limits
    """Size, duration and resolution caps (`MAX_UPLOAD_BYTES`, `MAX_DURATION_SECONDS`, `MAX_WIDTH`, `MAX_HEIGHT`)."""
    renditions: tuple[Rendition, ...]
    """The ladder, lowest first (`RENDITIONS`, JSON; the shared default ladder when unset)."""
    engine: EngineSetting
    """`auto`, `lambda` or `mediaconvert` (`ENGINE`, default `auto`)."""
    mediaconvert_threshold_seconds: int
    """With `auto`, sources longer than this go to MediaConvert (`MEDIACONVERT_THRESHOLD_SECONDS`)."""
    processing_deadline_seconds: int
    """A job must finish this long after its upload arrived, or the sweep fails it (`PROCESSING_DEADLINE_SECONDS`)."""
    lambda_capacity: LambdaCapacity
    """What a transcode function encodes before its timeout (`TRANSCODE_TIMEOUT_SECONDS`, `TRANSCODE_MEMORY_MB`,
    `LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND`); no job that would exceed it goes to Lambda."""
    metrics_namespace: str = "MediaPipeline"
    """CloudWatch namespace of the EMF metrics (`POWERTOOLS_METRICS_NAMESPACE`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestSettings:
        env = os.environ if environ is None else environ
        missing = [name for name in REQUIRED if not env.get(name)]
        if missing:
            raise SettingsError(f"missing environment variables: {', '.join(missing)}")
        engine_raw = env.get("ENGINE") or EngineSetting.AUTO.value
        if engine_raw not in {setting.value for setting in EngineSetting}:
            raise SettingsError(f"ENGINE must be auto, lambda or mediaconvert, got {engine_raw!r}")
        try:
            ladder = parse_renditions(env["RENDITIONS"]) if env.get("RENDITIONS") else list(DEFAULT_RENDITIONS)
        except ValueError as err:
            raise SettingsError(f"RENDITIONS: {err}") from err
        return cls(
            jobs_table_name=env["JOBS_TABLE_NAME"],
            event_bus_name=env["EVENT_BUS_NAME"],
            uploads_bucket=env["UPLOADS_BUCKET"],
            validated_topic_arn=env["VALIDATED_TOPIC_ARN"],
            limits=Limits(
                max_upload_bytes=_positive_int(env, "MAX_UPLOAD_BYTES"),
                max_duration_seconds=_positive_int(env, "MAX_DURATION_SECONDS"),
                max_width=_positive_int(env, "MAX_WIDTH"),
                max_height=_positive_int(env, "MAX_HEIGHT"),
            ),
            renditions=tuple(sorted(ladder, key=lambda r: r.height)),
            engine=EngineSetting(engine_raw),
            mediaconvert_threshold_seconds=_positive_int(env, "MEDIACONVERT_THRESHOLD_SECONDS"),
            processing_deadline_seconds=_positive_int(env, "PROCESSING_DEADLINE_SECONDS"),
            lambda_capacity=lambda_capacity(
                megapixels_per_vcpu_second=_positive_int(env, "LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND"),
                memory_mb=_positive_int(env, "TRANSCODE_MEMORY_MB"),
                timeout_seconds=_positive_int(env, "TRANSCODE_TIMEOUT_SECONDS"),
                reserve_seconds=TranscodeSettings.reserve_seconds,
            ),
            metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or cls.metrics_namespace,
        )


def _positive_int(env: Mapping[str, str], name: str) -> int:
    raw = env[name].strip()
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name} must be a positive integer, got {raw!r}")
    return int(raw)
