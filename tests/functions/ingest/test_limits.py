"""The caps an upload must fit: object size, duration, resolution (in either orientation)."""

from __future__ import annotations

from typing import Any

import pytest

from functions.contracts.jobs import Probe
from functions.ingest.service import Limits, RejectionCode, UploadRejected, check_media, check_size

LIMITS = Limits(max_upload_bytes=1000, max_duration_seconds=60, max_width=3840, max_height=2160)


def _probe(**changes: Any) -> Probe:
    return Probe.model_validate({"durationMs": 10_000, "width": 1920, "height": 1080, **changes})


@pytest.mark.parametrize(("size", "code"), [(0, RejectionCode.EMPTY_UPLOAD), (1001, RejectionCode.UPLOAD_TOO_LARGE)])
def test_size_limits_reject(size: int, code: RejectionCode) -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_size(size, LIMITS)
    assert rejected.value.code is code


def test_size_at_the_limit_passes() -> None:
    check_size(1000, LIMITS)


def test_duration_limit_is_inclusive_and_keeps_the_probe() -> None:
    check_media(_probe(durationMs=60_000), LIMITS)
    probe = _probe(durationMs=60_001)

    with pytest.raises(UploadRejected) as rejected:
        check_media(probe, LIMITS)

    assert (rejected.value.code, rejected.value.probe) == (RejectionCode.DURATION_TOO_LONG, probe)
    assert "60 s" in rejected.value.message


@pytest.mark.parametrize("size", [(3840, 2160), (2160, 3840), (1080, 1920)])
def test_resolution_limit_ignores_orientation(size: tuple[int, int]) -> None:
    check_media(_probe(width=size[0], height=size[1]), LIMITS)


@pytest.mark.parametrize("size", [(4096, 2160), (3840, 2200), (2200, 3840), (2160, 4096)])
def test_resolution_beyond_the_box_rejects(size: tuple[int, int]) -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_media(_probe(width=size[0], height=size[1]), LIMITS)
    assert rejected.value.code is RejectionCode.RESOLUTION_TOO_HIGH
    assert f"{size[0]}x{size[1]}" in rejected.value.message
