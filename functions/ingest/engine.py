"""Which engine encodes a job: ffmpeg in Lambda for inputs that fit one run, MediaConvert for the rest.

Two rules, both pure (README, "Engines: Lambda or MediaConvert"):
- the stack's `engine` setting: `lambda` or `mediaconvert` fixed, or `auto`, which sends sources longer than
  `mediaconvertThresholdSeconds` to MediaConvert (the threshold comes from the README's cost model);
- a hard ceiling: a transcode function stops at its timeout, so a job whose estimated encode does not fit that budget
  never goes to Lambda. `auto` sends it to MediaConvert; a stack fixed on `lambda` rejects it (DURATION_TOO_LONG),
  because the operator chose not to pay for MediaConvert and a job that cannot finish would only fail at its deadline.

The estimate: a transcode decodes every source frame, scales it and encodes it, so its work grows with the source's
pixels plus the rendition's. A rendition takes `duration x frame rate x (source + output megapixels) / throughput`
seconds, where the throughput is what the function's vCPUs get through per second (bench/encode_speed.py measures it
per CPU; Lambda gives one vCPU per 1,769 MB). Renditions are encoded in parallel by separate functions, so the job's
estimate is that of its biggest QUEUED rendition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from functions.ingest.rejections import RejectionCode, UploadRejected

# Lambda allocates CPU in proportion to memory: one vCPU per 1,769 MB (so just under six at the 10,240 MB maximum).
LAMBDA_MB_PER_VCPU = 1769
# The measured per-CPU throughput is halved before it becomes the config default: Lambda's vCPUs are slower than the
# bench machine's and real sources (noise, motion, 10-bit) are harder to encode than a test pattern.
SAFETY_FACTOR = 0.5
FALLBACK_FRAME_RATE = 30.0


class Engine(StrEnum):
    LAMBDA = "lambda"
    MEDIACONVERT = "mediaconvert"


class EngineSetting(StrEnum):
    """The stack's `engine` config: a fixed engine, or `auto` to choose per job by duration."""

    AUTO = "auto"
    LAMBDA = "lambda"
    MEDIACONVERT = "mediaconvert"


@dataclass(frozen=True)
class LambdaCapacity:
    """What one transcode function can encode before its timeout."""

    megapixels_per_second: float
    """Output megapixels the function encodes per wall second (per-vCPU throughput x its vCPUs)."""
    budget_seconds: float
    """Seconds ffmpeg may run: the function's timeout less what the transcoder keeps back to upload and announce."""


def lambda_vcpus(memory_mb: int) -> float:
    """vCPUs Lambda gives a function of `memory_mb`."""
    return memory_mb / LAMBDA_MB_PER_VCPU


def lambda_capacity(
    *, megapixels_per_vcpu_second: float, memory_mb: int, timeout_seconds: int, reserve_seconds: float
) -> LambdaCapacity:
    return LambdaCapacity(
        megapixels_per_second=megapixels_per_vcpu_second * lambda_vcpus(memory_mb),
        budget_seconds=timeout_seconds - reserve_seconds,
    )


def estimated_encode_seconds(
    *,
    duration_ms: int,
    frame_rate: float | None,
    source_pixels: int,
    planned: Iterable[dict[str, Any]],
    megapixels_per_second: float,
) -> float:
    """Wall seconds the slowest QUEUED rendition needs in Lambda; 0 when nothing is queued.

    `source_pixels` is the coded frame (what the decoder works on), `planned` the rendition plan.
    """
    fps = frame_rate if frame_rate and frame_rate > 0 else FALLBACK_FRAME_RATE
    outputs = [item["width"] * item["height"] for item in planned if item["status"] == "QUEUED"]
    if not outputs:
        return 0.0
    return duration_ms / 1000 * fps * (source_pixels + max(outputs)) / 1e6 / megapixels_per_second


def choose_engine(setting: EngineSetting, *, duration_ms: int, threshold_seconds: int) -> Engine:
    """A fixed setting wins; `auto` sends sources longer than the threshold to MediaConvert (equal stays in Lambda)."""
    if setting is EngineSetting.AUTO:
        return Engine.MEDIACONVERT if duration_ms > threshold_seconds * 1000 else Engine.LAMBDA
    return Engine(setting.value)


def route(
    setting: EngineSetting,
    *,
    duration_ms: int,
    threshold_seconds: int,
    estimate_seconds: float,
    capacity: LambdaCapacity,
    probe: dict[str, Any] | None = None,
) -> Engine:
    """`choose_engine`, then the ceiling: a job that would not fit a transcode function's budget never goes to Lambda.

    Raises `UploadRejected` (DURATION_TOO_LONG) when the stack is fixed on `lambda` and the job does not fit.
    """
    engine = choose_engine(setting, duration_ms=duration_ms, threshold_seconds=threshold_seconds)
    if engine is Engine.MEDIACONVERT or estimate_seconds <= capacity.budget_seconds:
        return engine
    if setting is EngineSetting.AUTO:
        return Engine.MEDIACONVERT
    raise UploadRejected(
        RejectionCode.DURATION_TOO_LONG,
        f"the video would take about {estimate_seconds:.0f} s to encode; this service encodes at most "
        f"{capacity.budget_seconds:.0f} s of work per rendition",
        probe=probe,
        detail=f"engine=lambda, estimate {estimate_seconds:.1f} s > budget {capacity.budget_seconds:.0f} s",
    )
