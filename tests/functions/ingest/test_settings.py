"""Ingest's environment: every variable read, defaults, and every problem named at once."""

from __future__ import annotations

import json

import pytest

from functions.common.renditions import DEFAULT_RENDITIONS, renditions_to_json
from functions.common.settings import SettingsError
from functions.ingest.service import EngineSetting, LambdaCapacity, Limits
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
}


def test_settings_from_the_environment() -> None:
    ladder = [{"name": "1080p", "height": 1080, "maxVideoBitrateKbps": 6000, "audioBitrateKbps": 160},
              {"name": "480p", "height": 480, "maxVideoBitrateKbps": 1200, "audioBitrateKbps": 96}]  # fmt: skip

    settings = IngestSettings.from_env({**ENV, "ENGINE": "mediaconvert", "RENDITIONS": json.dumps(ladder)})

    assert settings.limits == Limits(
        max_upload_bytes=5_000_000_000, max_duration_seconds=3600, max_width=3840, max_height=2160
    )
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
    ],
)
def test_malformed_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        IngestSettings.from_env({**ENV, name: value})
