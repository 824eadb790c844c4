"""Which engine encodes a job: the stack's setting, the threshold, and the Lambda ceiling."""

from __future__ import annotations

from typing import Any

import pytest

from functions.contracts.jobs import Probe
from functions.ingest.service import (
    Engine,
    EngineSetting,
    RejectionCode,
    UploadRejected,
    choose_engine,
    estimated_encode_seconds,
    lambda_capacity,
    lambda_vcpus,
    route,
)


@pytest.mark.parametrize(
    ("setting", "duration_ms", "expected"),
    [
        (EngineSetting.AUTO, 599_999, Engine.LAMBDA),
        (EngineSetting.AUTO, 600_000, Engine.LAMBDA),
        (EngineSetting.AUTO, 600_001, Engine.MEDIACONVERT),
        (EngineSetting.LAMBDA, 7_200_000, Engine.LAMBDA),
        (EngineSetting.MEDIACONVERT, 1_000, Engine.MEDIACONVERT),
    ],
)
def test_engine_choice(setting: EngineSetting, duration_ms: int, expected: Engine) -> None:
    assert choose_engine(setting, duration_ms=duration_ms, threshold_seconds=600) is expected


def test_lambda_vcpus_follow_memory() -> None:
    assert lambda_vcpus(1769) == 1.0
    assert lambda_vcpus(3538) == 2.0
    assert lambda_vcpus(10_240) == pytest.approx(5.79, abs=0.01)


def _planned(*sizes: tuple[int, int], skipped: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    items = [{"status": "QUEUED", "width": w, "height": h} for w, h in sizes]
    if skipped:
        items.append({"status": "SKIPPED", "width": skipped[0], "height": skipped[1]})
    return items


def test_the_estimate_is_source_plus_biggest_queued_rendition_over_the_throughput() -> None:
    # 10 s at 25 fps of a 2 Mpx source to a 1 Mpx rendition: 250 frames x 3 Mpx at 75 Mpx/s.
    planned = _planned((1000, 1000), (500, 500), skipped=(4000, 4000))
    estimate = estimated_encode_seconds(
        duration_ms=10_000, frame_rate=25.0, source_pixels=2_000_000, planned=planned, megapixels_per_second=75.0
    )
    assert estimate == pytest.approx(10.0)
    fallback = estimated_encode_seconds(
        duration_ms=10_000, frame_rate=None, source_pixels=2_000_000, planned=planned, megapixels_per_second=75.0
    )
    assert fallback == pytest.approx(12.0)  # 30 fps assumed
    nothing = estimated_encode_seconds(
        duration_ms=10_000, frame_rate=25.0, source_pixels=2_000_000, planned=[], megapixels_per_second=75.0
    )
    assert nothing == 0.0


CAPACITY = lambda_capacity(megapixels_per_vcpu_second=45, memory_mb=3538, timeout_seconds=900, reserve_seconds=30)


@pytest.mark.parametrize(
    ("setting", "duration_ms", "estimate", "expected"),
    [
        (EngineSetting.AUTO, 60_000, 870.0, Engine.LAMBDA),  # exactly the budget still fits
        (EngineSetting.AUTO, 60_000, 870.1, Engine.MEDIACONVERT),  # short but heavy (e.g. 4K60): the ceiling
        (EngineSetting.AUTO, 600_001, 10.0, Engine.MEDIACONVERT),  # over the threshold
        (EngineSetting.LAMBDA, 600_001, 870.0, Engine.LAMBDA),
        (EngineSetting.MEDIACONVERT, 1_000, 1.0, Engine.MEDIACONVERT),
        (EngineSetting.MEDIACONVERT, 1_000, 5000.0, Engine.MEDIACONVERT),
    ],
)
def test_routing_never_sends_lambda_more_than_its_budget(
    setting: EngineSetting, duration_ms: int, estimate: float, expected: Engine
) -> None:
    routed = route(
        setting, duration_ms=duration_ms, threshold_seconds=600, estimate_seconds=estimate, capacity=CAPACITY
    )
    assert routed is expected


def test_a_stack_fixed_on_lambda_rejects_what_lambda_cannot_finish() -> None:
    probe = Probe(durationMs=600_000)
    with pytest.raises(UploadRejected) as raised:
        route(
            EngineSetting.LAMBDA,
            duration_ms=600_000,
            threshold_seconds=600,
            estimate_seconds=1234.4,
            capacity=CAPACITY,
            probe=probe,
        )
    assert raised.value.code is RejectionCode.DURATION_TOO_LONG
    assert raised.value.message == (
        "the video would take about 1234 s to encode; this service encodes at most 870 s of work per rendition"
    )
    assert raised.value.probe == probe
