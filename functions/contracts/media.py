"""What counts as media: the input containers the pipeline accepts, and the media types it routes."""

from __future__ import annotations

from enum import StrEnum


class MediaType(StrEnum):
    """The fan-out message's `mediaType` attribute, which the consumers' filter policies match."""

    VIDEO = "video"


ACCEPTED_DEMUXERS: tuple[str, ...] = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "mpegts",
    "flv",
)
"""The demuxers an upload may be read with, as ffprobe names them (`format.format_name`).

A security list: ingest rejects any other container, and the encoder reads the source with
`format_whitelist` set to the one ingest found, or to this whole list when the message does not say.
"""

DEMUXER_WHITELIST = ",".join(ACCEPTED_DEMUXERS)
"""The allow-list as ffmpeg's `-format_whitelist` takes it."""
