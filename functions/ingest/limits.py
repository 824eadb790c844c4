"""The caps an upload must fit: pure checks on the object size and on the probe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.ingest.rejections import RejectionCode, UploadRejected


@dataclass(frozen=True)
class Limits:
    """Caps from stack config; each one rejects with its own code."""

    max_upload_bytes: int
    """Largest object accepted (the presigned POST enforces it too; this is the second check)."""
    max_duration_seconds: int
    """Longest source accepted."""
    max_width: int
    """Largest frame width, for the frame in the orientation the limit box is given in (see `check_media`)."""
    max_height: int
    """Largest frame height, likewise."""


def check_size(size_bytes: int, limits: Limits) -> None:
    """Before anything is downloaded: an empty object or one over the cap is rejected."""
    if size_bytes <= 0:
        raise UploadRejected(RejectionCode.EMPTY_UPLOAD, "the uploaded file is empty")
    if size_bytes > limits.max_upload_bytes:
        raise UploadRejected(
            RejectionCode.UPLOAD_TOO_LARGE,
            f"the uploaded file is {size_bytes} bytes; the limit is {limits.max_upload_bytes} bytes",
        )


def check_media(probe: dict[str, Any], limits: Limits) -> None:
    """Duration and resolution caps, on the probe (which the rejection keeps, so the client sees what was read).

    Resolution is checked without regard to orientation: the frame's long side against the longer cap and its
    short side against the shorter one. A 1080x1920 portrait phone clip fits a 1920x1080 limit; a frame
    whose area or long side is beyond the box does not.
    """
    if probe["durationMs"] > limits.max_duration_seconds * 1000:
        raise UploadRejected(
            RejectionCode.DURATION_TOO_LONG,
            f"the video is {probe['durationMs'] / 1000:.1f} s long; the limit is {limits.max_duration_seconds} s",
            probe=probe,
        )
    long_side, short_side = sorted((probe["width"], probe["height"]), reverse=True)
    long_cap, short_cap = sorted((limits.max_width, limits.max_height), reverse=True)
    if long_side > long_cap or short_side > short_cap:
        raise UploadRejected(
            RejectionCode.RESOLUTION_TOO_HIGH,
            f"the video is {probe['width']}x{probe['height']}; the limit is {limits.max_width}x{limits.max_height}",
            probe=probe,
        )
