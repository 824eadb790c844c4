"""The ingest function's configuration, read from the environment (docs/CONTRACTS.md, "Environment variables")."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from functions.common.renditions import DEFAULT_RENDITIONS, Rendition, parse_renditions
from functions.common.settings import EnvironmentReader
from functions.contracts.fanout import TRANSCODE_RESERVE_SECONDS
from functions.ingest.service import (
    DEFAULT_IMAGE_DERIVATIVES,
    EngineSetting,
    ImageDerivative,
    LambdaCapacity,
    Limits,
    lambda_capacity,
    parse_image_derivatives,
)

# The program checks the stack config; here a cap or a duration only has to be a positive whole number.
NO_CAP = sys.maxsize
S3_MAX_OBJECT_BYTES = 5 * 1024**4
LAMBDA_MAX_TIMEOUT_SECONDS = 900
LAMBDA_MAX_MEMORY_MB = 10_240
DEFAULT_SEGMENT_TARGET_SECONDS = 60
MIN_AUDIO_BITRATE_KBPS, MAX_AUDIO_BITRATE_KBPS = 32, 320  # AAC-LC stereo, as the program checks audioBitrateKbps


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
    """Size, duration and resolution caps (`MAX_UPLOAD_BYTES`, `MAX_DURATION_SECONDS`, `MAX_WIDTH`, `MAX_HEIGHT`,
    `MAX_IMAGE_UPLOAD_BYTES`, `MAX_AUDIO_UPLOAD_BYTES`, `MAX_IMAGE_PIXELS`)."""
    renditions: tuple[Rendition, ...]
    """The ladder, lowest first (`RENDITIONS`, JSON; the shared default ladder when unset)."""
    engine: EngineSetting
    """`auto`, `lambda` or `mediaconvert` (`ENGINE`, default `auto`)."""
    mediaconvert_threshold_seconds: int
    """With `auto`, sources longer than this go to MediaConvert (`MEDIACONVERT_THRESHOLD_SECONDS`; 0, the default:
    none do, Lambda encodes long sources in segments)."""
    processing_deadline_seconds: int
    """A job must finish this long after its upload arrived, or the sweep fails it (`PROCESSING_DEADLINE_SECONDS`)."""
    lambda_capacity: LambdaCapacity
    """What a transcode function encodes before its timeout (`TRANSCODE_TIMEOUT_SECONDS`, `TRANSCODE_MEMORY_MB`,
    `LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND`), and the encode time one unit of a segment-parallel rendition should
    take (`SEGMENT_TARGET_SECONDS`, default 60); no unit that would exceed it goes to Lambda."""
    image_derivatives: tuple[ImageDerivative, ...]
    """What every image becomes (`IMAGE_DERIVATIVES`, JSON `[{name, longEdge, formats, watermark}]`; the stack
    default when unset)."""
    audio_bitrate_kbps: int
    """The AAC rendition's bitrate of an audio upload (`AUDIO_BITRATE_KBPS`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestSettings:
        """Raises `SettingsError` naming every variable that is missing or malformed."""
        read = EnvironmentReader(environ)
        settings = cls(
            jobs_table_name=read.text("JOBS_TABLE_NAME"),
            event_bus_name=read.text("EVENT_BUS_NAME"),
            uploads_bucket=read.text("UPLOADS_BUCKET"),
            validated_topic_arn=read.arn("VALIDATED_TOPIC_ARN"),
            limits=Limits(
                max_upload_bytes=read.integer("MAX_UPLOAD_BYTES", 1, S3_MAX_OBJECT_BYTES),
                max_duration_seconds=read.integer("MAX_DURATION_SECONDS", 1, NO_CAP),
                max_width=read.integer("MAX_WIDTH", 1, NO_CAP),
                max_height=read.integer("MAX_HEIGHT", 1, NO_CAP),
                max_image_upload_bytes=read.integer("MAX_IMAGE_UPLOAD_BYTES", 1, S3_MAX_OBJECT_BYTES),
                max_audio_upload_bytes=read.integer("MAX_AUDIO_UPLOAD_BYTES", 1, S3_MAX_OBJECT_BYTES),
                max_image_pixels=read.integer("MAX_IMAGE_PIXELS", 1, NO_CAP),
            ),
            renditions=read.parsed("RENDITIONS", _ladder, DEFAULT_RENDITIONS),
            engine=read.parsed("ENGINE", _engine_setting, EngineSetting.AUTO),
            mediaconvert_threshold_seconds=read.integer("MEDIACONVERT_THRESHOLD_SECONDS", 0, NO_CAP, default=0),
            processing_deadline_seconds=read.integer("PROCESSING_DEADLINE_SECONDS", 1, NO_CAP),
            lambda_capacity=lambda_capacity(
                megapixels_per_vcpu_second=read.integer("LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND", 1, NO_CAP),
                memory_mb=read.integer("TRANSCODE_MEMORY_MB", 1, LAMBDA_MAX_MEMORY_MB),
                timeout_seconds=read.integer("TRANSCODE_TIMEOUT_SECONDS", 1, LAMBDA_MAX_TIMEOUT_SECONDS),
                reserve_seconds=TRANSCODE_RESERVE_SECONDS,
                segment_target_seconds=read.integer(
                    "SEGMENT_TARGET_SECONDS", 1, LAMBDA_MAX_TIMEOUT_SECONDS, default=DEFAULT_SEGMENT_TARGET_SECONDS
                ),
            ),
            image_derivatives=read.parsed("IMAGE_DERIVATIVES", _derivatives, DEFAULT_IMAGE_DERIVATIVES),
            audio_bitrate_kbps=read.integer("AUDIO_BITRATE_KBPS", MIN_AUDIO_BITRATE_KBPS, MAX_AUDIO_BITRATE_KBPS),
        )
        read.done("ingest function")
        return settings


def _ladder(raw: str) -> tuple[Rendition, ...]:
    """The configured ladder, lowest first; the shared default when unset."""
    return tuple(parse_renditions(raw)) if raw else DEFAULT_RENDITIONS


def _derivatives(raw: str) -> tuple[ImageDerivative, ...]:
    """The configured derivatives; the stack default when unset."""
    return parse_image_derivatives(raw) if raw else DEFAULT_IMAGE_DERIVATIVES


def _engine_setting(raw: str) -> EngineSetting:
    if not raw:
        return EngineSetting.AUTO
    if raw not in {setting.value for setting in EngineSetting}:
        raise ValueError(f"must be auto, lambda or mediaconvert, got {raw!r}")
    return EngineSetting(raw)
