"""The images function's environment: required values, defaults, and every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.common.settings import SettingsError
from functions.images.settings import ImagesSettings

BASE = {
    "UPLOADS_BUCKET": "uploads",
    "OUTPUTS_BUCKET": "outputs",
    "EVENT_BUS_NAME": "bus",
    "JOBS_TABLE_NAME": "jobs",
    "MAX_IMAGE_PIXELS": "50000000",
    "WATERMARK_OPACITY": "0.5",
    "WATERMARK_SCALE": "0.25",
}


def test_the_stack_defaults_read_as_documented() -> None:
    settings = ImagesSettings.from_env(BASE | {"IMAGES_WORK_DIR": "/scratch"})

    assert settings == ImagesSettings(
        uploads_bucket="uploads",
        outputs_bucket="outputs",
        event_bus_name="bus",
        jobs_table_name="jobs",
        max_image_pixels=50_000_000,
        max_image_bytes=52_428_800,
        watermark_text="",
        watermark_logo_key="",
        watermark_opacity=0.5,
        watermark_scale=0.25,
        work_root=Path("/scratch"),
    )
    assert not settings.watermark_configured


@pytest.mark.parametrize(
    ("extra", "configured"),
    [({"WATERMARK_TEXT": "media-pipeline"}, True), ({"WATERMARK_LOGO_KEY": "/branding/logo.png"}, True), ({}, False)],
)
def test_a_watermark_is_configured_by_text_or_logo(extra: dict[str, str], configured: bool) -> None:
    settings = ImagesSettings.from_env(BASE | extra)

    assert settings.watermark_configured is configured
    if "WATERMARK_LOGO_KEY" in extra:
        assert settings.watermark_logo_key == "branding/logo.png"


def test_opacity_and_scale_have_defaults_and_accept_their_bounds() -> None:
    unset = {k: v for k, v in BASE.items() if not k.startswith("WATERMARK_")}
    assert (ImagesSettings.from_env(unset).watermark_opacity, ImagesSettings.from_env(unset).watermark_scale) == (
        0.5,
        0.25,
    )
    bounds = ImagesSettings.from_env(BASE | {"WATERMARK_OPACITY": "0", "WATERMARK_SCALE": "1"})
    assert (bounds.watermark_opacity, bounds.watermark_scale) == (0.0, 1.0)


def test_every_problem_is_reported_at_once() -> None:
    environ = {
        "OUTPUTS_BUCKET": "outputs",
        "MAX_IMAGE_PIXELS": "many",
        "WATERMARK_OPACITY": "1.5",
        "WATERMARK_SCALE": "0",
        "MAX_IMAGE_UPLOAD_BYTES": "-1",
    }

    with pytest.raises(SettingsError) as raised:
        ImagesSettings.from_env(environ)

    message = str(raised.value)
    assert message.startswith("images function misconfigured: ")
    for expected in (
        "UPLOADS_BUCKET is required",
        "EVENT_BUS_NAME is required",
        "MAX_IMAGE_PIXELS must be an integer",
        "WATERMARK_OPACITY: must be a number from 0 to 1, got '1.5'",
        "WATERMARK_SCALE: must be a number from above 0 to 1, got '0'",
        "MAX_IMAGE_UPLOAD_BYTES must be an integer",
    ):
        assert expected in message, expected


@pytest.mark.parametrize("value", ["nan", "inf", "-0.1", "half"])
def test_an_opacity_that_is_not_a_fraction_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="WATERMARK_OPACITY"):
        ImagesSettings.from_env(BASE | {"WATERMARK_OPACITY": value})
