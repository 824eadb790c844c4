"""Which engine encodes a job: ffmpeg in Lambda for inputs that fit one run, MediaConvert for the rest."""

from __future__ import annotations

from enum import StrEnum


class Engine(StrEnum):
    LAMBDA = "lambda"
    MEDIACONVERT = "mediaconvert"


class EngineSetting(StrEnum):
    """The stack's `engine` config: a fixed engine, or `auto` to choose per job by duration."""

    AUTO = "auto"
    LAMBDA = "lambda"
    MEDIACONVERT = "mediaconvert"


def choose_engine(setting: EngineSetting, *, duration_ms: int, threshold_seconds: int) -> Engine:
    """A fixed setting wins; `auto` sends sources longer than the threshold to MediaConvert (equal stays in Lambda)."""
    if setting is EngineSetting.AUTO:
        return Engine.MEDIACONVERT if duration_ms > threshold_seconds * 1000 else Engine.LAMBDA
    return Engine(setting.value)
