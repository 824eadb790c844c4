"""Which renditions a source gets, and at what size: a pure function of the display frame and the ladder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from functions.common.job_state import RenditionStatus
from functions.common.renditions import Rendition


def plan_renditions(width: int, height: int, ladder: Sequence[Rendition]) -> list[dict[str, Any]]:
    """Plan every rendition of the ladder for a source displayed at `width` x `height` (after rotation).

    A rendition's height is the target for the *short* side of the display frame, so portrait and rotated sources
    keep their orientation: a 1080x1920 portrait source at 720p becomes 720x1280. The long side follows the display
    aspect ratio, rounded to the nearest even number (H.264 4:2:0 codes even sizes only).

    A rendition taller than the source's short side is SKIPPED ("source is 480p; no upscaling") with no size.

    When that would skip every rendition (a source smaller than the whole ladder), the lowest rendition is kept
    instead and encoded at the source's own short side, rounded down to even (a 640x480 source becomes a 640x480
    "720p" rendition): a valid upload always produces at least one output. Its `reason` says so.

    Items: `{name, status: QUEUED|SKIPPED, width, height, maxVideoBitrateKbps, audioBitrateKbps, reason?}`, in
    ladder order.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"display size must be positive, got {width}x{height}")
    short_side = min(width, height)
    plan = [_planned(rendition, width, height) for rendition in ladder]
    if plan and all(item["status"] == RenditionStatus.SKIPPED for item in plan):
        lowest = min(range(len(ladder)), key=lambda i: ladder[i].height)
        native = max(2, short_side - short_side % 2)
        plan[lowest] = _queued(ladder[lowest], width, height, native)
        plan[lowest]["reason"] = (
            f"source is {short_side}p, below every rendition; encoded at {native}p instead of {ladder[lowest].height}p"
        )
    return plan


def queued_names(plan: Sequence[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in plan if item["status"] == RenditionStatus.QUEUED]


def _planned(rendition: Rendition, width: int, height: int) -> dict[str, Any]:
    short_side = min(width, height)
    if rendition.height > short_side:
        return {
            "name": rendition.name,
            "status": RenditionStatus.SKIPPED.value,
            "width": None,
            "height": None,
            "maxVideoBitrateKbps": rendition.maxVideoBitrateKbps,
            "audioBitrateKbps": rendition.audioBitrateKbps,
            "reason": f"source is {short_side}p; no upscaling",
        }
    return _queued(rendition, width, height, rendition.height)


def _queued(rendition: Rendition, width: int, height: int, short_target: int) -> dict[str, Any]:
    long_target = _even(short_target * max(width, height) / min(width, height))
    target_width, target_height = (long_target, short_target) if width >= height else (short_target, long_target)
    return {
        "name": rendition.name,
        "status": RenditionStatus.QUEUED.value,
        "width": target_width,
        "height": target_height,
        "maxVideoBitrateKbps": rendition.maxVideoBitrateKbps,
        "audioBitrateKbps": rendition.audioBitrateKbps,
    }


def _even(value: float) -> int:
    """Nearest even integer (halves round up), at least 2."""
    return max(2, math.floor(value / 2 + 0.5) * 2)
