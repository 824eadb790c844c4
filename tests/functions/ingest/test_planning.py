"""Rendition planning: which renditions a source gets, and at what size."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.renditions import DEFAULT_RENDITIONS, Rendition
from functions.ingest.service import (
    ImageDerivative,
    plan_audio_units,
    plan_image_units,
    plan_renditions,
    queued_names,
)

LADDER = tuple(DEFAULT_RENDITIONS)  # 720p (3000/128), 1080p (6000/160)


def _sizes(plan: list[dict[str, Any]]) -> dict[str, tuple[str, int | None, int | None]]:
    return {item["name"]: (item["status"], item["width"], item["height"]) for item in plan}


def test_full_hd_source_gets_every_rendition_with_its_bitrates() -> None:
    assert plan_renditions(1920, 1080, LADDER) == [
        {
            "name": "720p",
            "status": "QUEUED",
            "width": 1280,
            "height": 720,
            "maxVideoBitrateKbps": 3000,
            "audioBitrateKbps": 128,
        },
        {
            "name": "1080p",
            "status": "QUEUED",
            "width": 1920,
            "height": 1080,
            "maxVideoBitrateKbps": 6000,
            "audioBitrateKbps": 160,
        },
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ((3840, 2160), {"720p": ("QUEUED", 1280, 720), "1080p": ("QUEUED", 1920, 1080)}),
        ((1280, 720), {"720p": ("QUEUED", 1280, 720), "1080p": ("SKIPPED", None, None)}),
        ((1080, 1920), {"720p": ("QUEUED", 720, 1280), "1080p": ("QUEUED", 1080, 1920)}),
        ((720, 1280), {"720p": ("QUEUED", 720, 1280), "1080p": ("SKIPPED", None, None)}),
        ((1080, 1080), {"720p": ("QUEUED", 720, 720), "1080p": ("QUEUED", 1080, 1080)}),
        ((2560, 1080), {"720p": ("QUEUED", 1706, 720), "1080p": ("QUEUED", 2560, 1080)}),
        ((1440, 1080), {"720p": ("QUEUED", 960, 720), "1080p": ("QUEUED", 1440, 1080)}),
        ((1281, 721), {"720p": ("QUEUED", 1280, 720), "1080p": ("SKIPPED", None, None)}),
        ((721, 1281), {"720p": ("QUEUED", 720, 1280), "1080p": ("SKIPPED", None, None)}),
    ],
    ids=["4k", "720p", "portrait-1080", "portrait-720", "square", "ultrawide", "4:3", "odd", "odd-portrait"],
)
def test_rendition_height_applies_to_the_short_side(
    source: tuple[int, int], expected: dict[str, tuple[str, int | None, int | None]]
) -> None:
    assert _sizes(plan_renditions(*source, LADDER)) == expected


def test_skipped_rendition_says_why() -> None:
    skipped = plan_renditions(1280, 720, LADDER)[1]

    assert skipped == {
        "name": "1080p",
        "status": "SKIPPED",
        "width": None,
        "height": None,
        "maxVideoBitrateKbps": 6000,
        "audioBitrateKbps": 160,
        "reason": "source is 720p; no upscaling",
    }


@pytest.mark.parametrize(
    ("source", "expected_720p"),
    [((854, 480), (854, 480)), ((640, 480), (640, 480)), ((479, 271), (478, 270)), ((271, 479), (270, 478))],
    ids=["480p", "4:3-480p", "odd", "odd-portrait"],
)
def test_source_below_the_ladder_keeps_the_lowest_rendition_at_its_own_size(
    source: tuple[int, int], expected_720p: tuple[int, int]
) -> None:
    plan = plan_renditions(*source, LADDER)

    lowest, highest = plan
    assert (lowest["status"], lowest["width"], lowest["height"]) == ("QUEUED", *expected_720p)
    assert lowest["reason"].startswith(f"source is {min(source)}p, below every rendition")
    assert (lowest["maxVideoBitrateKbps"], lowest["audioBitrateKbps"]) == (3000, 128)
    assert (highest["status"], highest["reason"]) == ("SKIPPED", f"source is {min(source)}p; no upscaling")


def test_partial_ladder_is_skipped_only_above_the_source() -> None:
    ladder = (
        Rendition(name="360p", height=360, maxVideoBitrateKbps=800, audioBitrateKbps=96),
        Rendition(name="720p", height=720, maxVideoBitrateKbps=3000, audioBitrateKbps=128),
        Rendition(name="1080p", height=1080, maxVideoBitrateKbps=6000, audioBitrateKbps=160),
    )

    plan = plan_renditions(1280, 720, ladder)

    assert _sizes(plan) == {
        "360p": ("QUEUED", 640, 360),
        "720p": ("QUEUED", 1280, 720),
        "1080p": ("SKIPPED", None, None),
    }
    assert [item["name"] for item in plan] == ["360p", "720p", "1080p"]
    assert "reason" not in plan[0] and "reason" not in plan[1]
    assert queued_names(plan) == ["360p", "720p"]


@pytest.mark.parametrize("width", [2, 3, 97, 320, 641, 853, 1279, 1280, 1919, 1920, 2161, 3840])
@pytest.mark.parametrize("height", [2, 5, 181, 240, 479, 480, 719, 720, 1079, 1080, 1920, 2160])
def test_every_plan_is_even_oriented_and_never_upscaled(width: int, height: int) -> None:
    plan = plan_renditions(width, height, LADDER)

    queued = [item for item in plan if item["status"] == "QUEUED"]
    assert queued, "a valid source always gets at least one rendition"
    for item in queued:
        assert item["width"] % 2 == 0 and item["height"] % 2 == 0
        # Orientation is never flipped (a near-square frame may round to square).
        assert not (item["width"] > item["height"] and width < height)
        assert not (item["width"] < item["height"] and width > height)
        assert min(item["width"], item["height"]) <= max(2, min(width, height))
        aspect, planned_aspect = width / height, item["width"] / item["height"]
        assert abs(planned_aspect - aspect) / aspect < 0.05 or min(item["width"], item["height"]) < 16


def test_plan_refuses_an_empty_frame() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_renditions(0, 1080, LADDER)


# --------------------------------------------------------------------------------------------------------------
# Image and audio units
# --------------------------------------------------------------------------------------------------------------

DERIVATIVES = (
    ImageDerivative(name="thumb", long_edge=320, formats=("webp", "jpeg")),
    ImageDerivative(name="large", long_edge=1280, formats=("webp", "jpeg"), watermark=True),
)


def _units(plan: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {u["name"]: (u["kind"], u.get("width"), u.get("height"), u.get("format"), u.get("watermark")) for u in plan}


def test_an_image_gets_one_unit_per_derivative_and_format_then_metadata() -> None:
    plan = plan_image_units(4000, 3000, DERIVATIVES)

    assert [u["name"] for u in plan] == ["thumb-webp", "thumb-jpeg", "large-webp", "large-jpeg", "metadata"]
    assert {u["status"] for u in plan} == {"QUEUED"}
    assert _units(plan) == {
        "thumb-webp": ("image", 320, 240, "webp", False),
        "thumb-jpeg": ("image", 320, 240, "jpeg", False),
        "large-webp": ("image", 1280, 960, "webp", True),
        "large-jpeg": ("image", 1280, 960, "jpeg", True),
        "metadata": ("metadata", None, None, None, None),
    }
    assert not any("reason" in u for u in plan)


@pytest.mark.parametrize(
    ("source", "thumb", "large"),
    [
        ((6000, 4000), (320, 213), (1280, 853)),
        ((4000, 6000), (213, 320), (853, 1280)),
        ((3000, 3000), (320, 320), (1280, 1280)),
        ((1281, 1), (320, 1), (1280, 1)),
        ((1, 5000), (1, 320), (1, 1280)),
        ((961, 481), (320, 160), (961, 481)),
        ((640, 321), (320, 161), (640, 321)),
        ((320, 240), (320, 240), (320, 240)),
        ((100, 50), (100, 50), (100, 50)),
    ],
    ids=["landscape", "portrait", "square", "sliver", "tall-sliver", "between", "half-rounds-up", "edge", "tiny"],
)
def test_derivatives_fit_the_long_edge_keep_the_aspect_and_never_upscale(
    source: tuple[int, int], thumb: tuple[int, int], large: tuple[int, int]
) -> None:
    plan = _units(plan_image_units(*source, DERIVATIVES))

    assert plan["thumb-jpeg"][1:3] == thumb
    assert plan["large-webp"][1:3] == large


def test_a_derivative_larger_than_the_source_keeps_its_size_and_says_why() -> None:
    thumb, _, large, _, _ = plan_image_units(800, 600, DERIVATIVES)

    assert "reason" not in thumb
    assert (large["width"], large["height"]) == (800, 600)
    assert large["reason"] == "source's longest edge is 800 px, below 1280; no upscaling"


@pytest.mark.parametrize("width", [1, 2, 15, 319, 320, 321, 1279, 1280, 1281, 6000, 16383])
@pytest.mark.parametrize("height", [1, 3, 200, 320, 1080, 4000, 16383])
def test_every_image_plan_is_within_bounds_and_oriented_as_the_source(width: int, height: int) -> None:
    for unit in plan_image_units(width, height, DERIVATIVES)[:-1]:
        long_edge = 320 if unit["name"].startswith("thumb") else 1280
        assert max(unit["width"], unit["height"]) == min(long_edge, max(width, height))
        assert unit["width"] <= width and unit["height"] <= height
        assert unit["width"] >= 1 and unit["height"] >= 1
        assert not (unit["width"] > unit["height"] and width < height)


def test_an_image_plan_refuses_an_empty_picture() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_image_units(0, 10, DERIVATIVES)


def test_an_audio_upload_gets_the_aac_rendition_and_the_waveform() -> None:
    assert plan_audio_units(96) == [
        {"name": "audio", "status": "QUEUED", "kind": "audio", "format": "m4a", "audioBitrateKbps": 96},
        {"name": "waveform", "status": "QUEUED", "kind": "waveform", "format": "png", "width": 1800, "height": 280},
    ]
