"""Rendition planning: which renditions a source gets, and at what size."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.renditions import DEFAULT_RENDITIONS, Rendition
from functions.ingest.service import plan_renditions, queued_names

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
