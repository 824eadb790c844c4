"""Ingest's environment: every variable read, defaults, and every problem named at once."""

from __future__ import annotations

import json

import pytest

from functions.common.renditions import DEFAULT_RENDITIONS, renditions_to_json
from functions.common.settings import SettingsError
from functions.ingest.service import (
    DEFAULT_IMAGE_DERIVATIVES,
    EngineSetting,
    ImageDerivative,
    LambdaCapacity,
    Limits,
)
from functions.ingest.settings import IngestSettings

ENV = {
    "JOBS_TABLE_NAME": "jobs",
    "EVENT_BUS_NAME": "bus",
    "UPLOADS_BUCKET": "uploads",
    "VALIDATED_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:validated",
    "MAX_UPLOAD_BYTES": "5000000000",
    "MAX_DURATION_SECONDS": "3600",
    "MAX_WIDTH": "3840",
    "MAX_HEIGHT": "2160",
    "MEDIACONVERT_THRESHOLD_SECONDS": "600",
    "PROCESSING_DEADLINE_SECONDS": "7200",
    "TRANSCODE_TIMEOUT_SECONDS": "900",
    "TRANSCODE_MEMORY_MB": "3538",
    "LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND": "45",
    "MAX_IMAGE_UPLOAD_BYTES": "52428800",
    "MAX_AUDIO_UPLOAD_BYTES": "524288000",
    "MAX_IMAGE_PIXELS": "50000000",
    "AUDIO_BITRATE_KBPS": "128",
}


def test_settings_from_the_environment() -> None:
    ladder = [{"name": "1080p", "height": 1080, "maxVideoBitrateKbps": 6000, "audioBitrateKbps": 160},
              {"name": "480p", "height": 480, "maxVideoBitrateKbps": 1200, "audioBitrateKbps": 96}]  # fmt: skip

    settings = IngestSettings.from_env({**ENV, "ENGINE": "mediaconvert", "RENDITIONS": json.dumps(ladder)})

    assert settings.limits == Limits(
        max_upload_bytes=5_000_000_000,
        max_duration_seconds=3600,
        max_width=3840,
        max_height=2160,
        max_image_upload_bytes=52_428_800,
        max_audio_upload_bytes=524_288_000,
        max_image_pixels=50_000_000,
    )
    assert settings.audio_bitrate_kbps == 128
    assert settings.engine is EngineSetting.MEDIACONVERT
    assert [r.name for r in settings.renditions] == ["480p", "1080p"]
    assert (settings.mediaconvert_threshold_seconds, settings.processing_deadline_seconds) == (600, 7200)
    # Two vCPUs at 3,538 MB; the transcoder keeps 30 s of its 900 s back for the upload.
    assert settings.lambda_capacity == LambdaCapacity(megapixels_per_second=90.0, budget_seconds=870.0)


def test_settings_default_to_auto_and_the_shared_ladder() -> None:
    settings = IngestSettings.from_env(ENV)

    assert (settings.engine, settings.renditions) == (EngineSetting.AUTO, tuple(DEFAULT_RENDITIONS))
    ladder = tuple(DEFAULT_RENDITIONS)
    assert IngestSettings.from_env({**ENV, "RENDITIONS": renditions_to_json(ladder)}).renditions == ladder


def test_missing_settings_are_named() -> None:
    env = {k: v for k, v in ENV.items() if k not in ("VALIDATED_TOPIC_ARN", "MAX_WIDTH")}

    with pytest.raises(SettingsError, match="VALIDATED_TOPIC_ARN is required; MAX_WIDTH "):
        IngestSettings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENGINE", "ffmpeg"),
        ("MAX_WIDTH", "0"),
        ("MAX_HEIGHT", "wide"),
        ("MAX_UPLOAD_BYTES", "-5"),
        ("RENDITIONS", "[]"),
        ("TRANSCODE_TIMEOUT_SECONDS", "0"),
        ("LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND", "1.5"),
        ("MAX_IMAGE_UPLOAD_BYTES", "0"),
        ("MAX_AUDIO_UPLOAD_BYTES", "lots"),
        ("MAX_IMAGE_PIXELS", "-1"),
        ("AUDIO_BITRATE_KBPS", "31"),
        ("AUDIO_BITRATE_KBPS", "321"),
        ("IMAGE_DERIVATIVES", "[]"),
    ],
)
def test_malformed_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        IngestSettings.from_env({**ENV, name: value})


@pytest.mark.parametrize(
    "name", ["MAX_IMAGE_UPLOAD_BYTES", "MAX_AUDIO_UPLOAD_BYTES", "MAX_IMAGE_PIXELS", "AUDIO_BITRATE_KBPS"]
)
def test_the_image_and_audio_settings_are_required(name: str) -> None:
    with pytest.raises(SettingsError, match=f"{name} must be"):
        IngestSettings.from_env({k: v for k, v in ENV.items() if k != name})


# --------------------------------------------------------------------------------------------------------------
# IMAGE_DERIVATIVES
# --------------------------------------------------------------------------------------------------------------


def test_image_derivatives_default_to_the_stack_default() -> None:
    assert IngestSettings.from_env(ENV).image_derivatives == DEFAULT_IMAGE_DERIVATIVES
    assert (
        ImageDerivative(name="thumb", long_edge=320, formats=("webp", "jpeg"), watermark=False),
        ImageDerivative(name="large", long_edge=1280, formats=("webp", "jpeg"), watermark=True),
    ) == DEFAULT_IMAGE_DERIVATIVES


def test_image_derivatives_are_read_from_json() -> None:
    derivatives = [
        {"name": "tiny", "longEdge": 16, "formats": ["jpeg"]},
        {"name": "poster-2x", "longEdge": 8192, "formats": ["webp", "jpeg"], "watermark": True},
    ]

    settings = IngestSettings.from_env({**ENV, "IMAGE_DERIVATIVES": json.dumps(derivatives)})

    assert settings.image_derivatives == (
        ImageDerivative(name="tiny", long_edge=16, formats=("jpeg",), watermark=False),
        ImageDerivative(name="poster-2x", long_edge=8192, formats=("webp", "jpeg"), watermark=True),
    )


def _derivative(**changes: object) -> dict[str, object]:
    return {"name": "thumb", "longEdge": 320, "formats": ["webp"], "watermark": False, **changes}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not json", "must be JSON"),
        ('{"name": "thumb"}', "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        (["thumb"], "derivative 0 must be an object"),
        ([_derivative(name="Thumb")], "name must match ^[a-z0-9-]+$, got 'Thumb'"),
        ([_derivative(name="thumb_1")], "name must match"),
        ([_derivative(name="")], "name must match"),
        ([_derivative(name=7)], "name must match"),
        ([_derivative(longEdge=15)], "longEdge must be an integer from 16 to 8192, got 15"),
        ([_derivative(longEdge=8193)], "longEdge must be an integer from 16 to 8192"),
        ([_derivative(longEdge="320")], "longEdge must be an integer"),
        ([_derivative(longEdge=320.5)], "longEdge must be an integer"),
        ([_derivative(longEdge=True)], "longEdge must be an integer"),
        ([_derivative(formats=["png"])], "format 'png' is not one of ['jpeg', 'webp']"),
        ([_derivative(formats=[])], "formats must be a non-empty list"),
        ([_derivative(formats="webp")], "formats must be a non-empty list"),
        ([_derivative(formats=[["webp"]])], "is not one of"),
        ([_derivative(watermark="yes")], "watermark must be true or false"),
        ([_derivative(quality=80)], "unknown keys ['quality']"),
        ([_derivative(), _derivative()], "unit 'thumb-webp' is planned twice"),
        ([_derivative(formats=["jpeg", "jpeg"])], "unit 'thumb-jpeg' is planned twice"),
        ([_derivative(name="a-very-long-name", formats=["jpeg"])], "longer than 20 characters"),
    ],
)
def test_malformed_image_derivatives_are_refused_saying_why(value: object, says: str) -> None:
    raw = value if isinstance(value, str) else json.dumps(value)

    with pytest.raises(SettingsError) as refused:
        IngestSettings.from_env({**ENV, "IMAGE_DERIVATIVES": raw})

    assert "IMAGE_DERIVATIVES: " in str(refused.value)
    assert says in str(refused.value)
