"""The caps an upload must fit: object size (per kind of media), duration, resolution, an image's pixels."""

from __future__ import annotations

from typing import Any

import pytest

from functions.contracts.jobs import Probe
from functions.contracts.media import MediaType
from functions.ingest.service import (
    ANIMATION_PIXELS_FACTOR,
    ImageHeader,
    Limits,
    RejectionCode,
    UploadRejected,
    check_audio,
    check_image,
    check_media,
    check_size,
    check_upload_bytes,
)

LIMITS = Limits(
    max_upload_bytes=1000,
    max_duration_seconds=60,
    max_width=3840,
    max_height=2160,
    max_image_upload_bytes=500,
    max_audio_upload_bytes=700,
    max_image_pixels=10_000,
)


def _probe(**changes: Any) -> Probe:
    return Probe.model_validate({"durationMs": 10_000, "width": 1920, "height": 1080, **changes})


@pytest.mark.parametrize(("size", "code"), [(0, RejectionCode.EMPTY_UPLOAD), (1001, RejectionCode.UPLOAD_TOO_LARGE)])
def test_size_limits_reject(size: int, code: RejectionCode) -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_size(size, LIMITS)
    assert rejected.value.code is code


def test_before_the_content_is_known_the_largest_limit_applies() -> None:
    check_size(1000, LIMITS)
    smaller_video = Limits(**{**LIMITS.__dict__, "max_upload_bytes": 10})
    assert smaller_video.largest_upload_bytes == 700
    check_size(700, smaller_video)
    with pytest.raises(UploadRejected):
        check_size(701, smaller_video)


@pytest.mark.parametrize(
    ("media_type", "limit", "says"),
    [(MediaType.VIDEO, 1000, "videos"), (MediaType.IMAGE, 500, "images"), (MediaType.AUDIO, 700, "audio files")],
)
def test_each_kind_of_media_has_its_own_byte_limit(media_type: MediaType, limit: int, says: str) -> None:
    check_upload_bytes(media_type, limit, LIMITS)
    probe = _probe()

    with pytest.raises(UploadRejected) as rejected:
        check_upload_bytes(media_type, limit + 1, LIMITS, probe=probe)

    assert (rejected.value.code, rejected.value.probe) == (RejectionCode.UPLOAD_TOO_LARGE, probe)
    assert f"the limit for {says} is {limit} bytes" in rejected.value.message


def test_duration_limit_is_inclusive_and_keeps_the_probe() -> None:
    check_media(_probe(durationMs=60_000), LIMITS)
    probe = _probe(durationMs=60_001)

    with pytest.raises(UploadRejected) as rejected:
        check_media(probe, LIMITS)

    assert (rejected.value.code, rejected.value.probe) == (RejectionCode.DURATION_TOO_LONG, probe)
    assert "60 s" in rejected.value.message


def test_audio_has_the_same_duration_limit() -> None:
    check_audio(Probe(durationMs=60_000, hasAudio=True), LIMITS)
    probe = Probe(durationMs=60_001, hasAudio=True)

    with pytest.raises(UploadRejected) as rejected:
        check_audio(probe, LIMITS)

    assert (rejected.value.code, rejected.value.probe) == (RejectionCode.DURATION_TOO_LONG, probe)
    assert rejected.value.message == "the audio is 60.0 s long; the limit is 60 s"


@pytest.mark.parametrize("size", [(3840, 2160), (2160, 3840), (1080, 1920)])
def test_resolution_limit_ignores_orientation(size: tuple[int, int]) -> None:
    check_media(_probe(width=size[0], height=size[1]), LIMITS)


@pytest.mark.parametrize("size", [(4096, 2160), (3840, 2200), (2200, 3840), (2160, 4096)])
def test_resolution_beyond_the_box_rejects(size: tuple[int, int]) -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_media(_probe(width=size[0], height=size[1]), LIMITS)
    assert rejected.value.code is RejectionCode.RESOLUTION_TOO_HIGH
    assert f"{size[0]}x{size[1]}" in rejected.value.message


# --------------------------------------------------------------------------------------------------------------
# Images: bytes, pixels, and the pixels of all the frames of an animation, from the header alone
# --------------------------------------------------------------------------------------------------------------


def _header(width: int, height: int, *, frames: int = 1, orientation: int = 1) -> ImageHeader:
    return ImageHeader(format="PNG", width=width, height=height, mode="RGB", frames=frames, orientation=orientation)


def test_an_image_at_the_limits_passes() -> None:
    check_image(_header(100, 100), size_bytes=500, limits=LIMITS)
    check_image(_header(100, 100, frames=ANIMATION_PIXELS_FACTOR), size_bytes=500, limits=LIMITS)


def test_an_image_over_its_byte_limit_is_too_large_whatever_the_video_limit() -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_image(_header(10, 10), size_bytes=501, limits=LIMITS)

    assert rejected.value.code is RejectionCode.UPLOAD_TOO_LARGE
    assert rejected.value.probe is not None
    assert (rejected.value.probe.sizeBytes, rejected.value.probe.formatName) == (501, "png")


@pytest.mark.parametrize("size", [(101, 100), (100_000, 100_000), (10_001, 1), (1, 10_001)])
def test_more_pixels_than_the_limit_is_resolution_too_high_with_what_was_read(size: tuple[int, int]) -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_image(_header(*size, orientation=6), size_bytes=100, limits=LIMITS)

    assert rejected.value.code is RejectionCode.RESOLUTION_TOO_HIGH
    assert f"{size[0]}x{size[1]} ({size[0] * size[1]} pixels)" in rejected.value.message
    assert "10000 pixels" in rejected.value.message
    probe = rejected.value.probe
    assert probe is not None
    assert (probe.width, probe.height, probe.durationMs) == (size[1], size[0], 0)  # upright, as the header says


def test_an_animation_of_too_many_pixels_in_all_is_refused_before_decoding() -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_image(_header(100, 100, frames=ANIMATION_PIXELS_FACTOR + 1), size_bytes=100, limits=LIMITS)

    assert rejected.value.code is RejectionCode.RESOLUTION_TOO_HIGH
    assert f"{ANIMATION_PIXELS_FACTOR + 1} frames of 100x100" in rejected.value.message
