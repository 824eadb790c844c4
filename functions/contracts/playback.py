"""Playback (docs/CONTRACTS.md "Playback"): what the packager makes of a video job's finished renditions, and where.

Once every rendition of a video job is terminal and at least one completed, the tracker's write that settles the last
one puts `playback: {status: QUEUED}` on the job instead of completing it, and announces `Packaging Requested`
(`PackagingRequested`). One packager unit then remuxes the finished MP4s, never the source, into a CMAF HLS ladder
(`-c copy`), picks a poster and draws a thumbnail sprite with its WebVTT index, and announces `Packaging Completed`
with the `PlaybackPackage` (or `Packaging Failed`). The tracker records it and the job becomes COMPLETED (or FAILED,
`PACKAGING_FAILED`). Both engines end the same way, so the layout below is the same whoever encoded the renditions.

Layout, under `outputs/{jobId}/` (relative names below):

    hls/master.m3u8                       the master playlist: one EXT-X-STREAM-INF per variant, measured
    hls/{rendition}/index.m3u8            a variant: CMAF fMP4, 2-second segments
    hls/{rendition}/init.mp4              its initialisation segment
    hls/{rendition}/seg_00000.m4s ...     its media segments
    poster.jpg                            the first non-black frame near 10% of the duration
    thumbnails/sprite.jpg                 one tile every `intervalSeconds`, row by row
    thumbnails/thumbnails.vtt             WebVTT cues `sprite.jpg#xywh=x,y,w,h`, relative to the VTT
"""

from __future__ import annotations

import posixpath
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

SEGMENT_SECONDS = 2
"""Segment length: one 2-second closed GOP, the grid every rendition is encoded on."""

HLS_FOLDER = "hls"
MASTER_PLAYLIST = "hls/master.m3u8"
VARIANT_PLAYLIST = "index.m3u8"
INIT_SEGMENT = "init.mp4"
SEGMENT_TEMPLATE = "seg_%05d.m4s"
"""ffmpeg's `-hls_segment_filename` pattern inside a variant's folder."""
POSTER = "poster.jpg"
SPRITE = "thumbnails/sprite.jpg"
THUMBNAILS_VTT = "thumbnails/thumbnails.vtt"

CONTENT_TYPES: dict[str, str] = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt",
}
"""Content-Type of each playback file, by extension (RFC 8216 for playlists, RFC 8216bis/ISO for segments)."""


def job_prefix(job_id: str) -> str:
    """`outputs/{jobId}/`: every output of the job, and what one playback signature covers."""
    return f"outputs/{job_id}/"


def playback_key(job_id: str, relative: str) -> str:
    """The outputs-bucket key of a playback file named relative to the job's folder (e.g. `MASTER_PLAYLIST`)."""
    return job_prefix(job_id) + relative


def variant_folder(rendition: str) -> str:
    """`hls/{rendition}`: one variant's playlist and segments."""
    return posixpath.join(HLS_FOLDER, rendition)


def variant_playlist(rendition: str) -> str:
    return posixpath.join(variant_folder(rendition), VARIANT_PLAYLIST)


def content_type(key: str) -> str:
    """Content-Type of a playback file; `application/octet-stream` for an extension not listed."""
    return CONTENT_TYPES.get(posixpath.splitext(key)[1], "application/octet-stream")


class PackagingStatus(StrEnum):
    QUEUED = "QUEUED"
    """Every rendition settled; the packager was (or is being) asked."""
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HlsVariant(_Record):
    """One variant of the ladder as the master playlist declares it, measured from the packaged segments."""

    rendition: str
    key: str
    """Its media playlist."""
    bandwidth: int = Field(gt=0)
    """Peak bit rate of any segment (bits/s): `BANDWIDTH`."""
    averageBandwidth: int = Field(gt=0)
    """Total bits over total duration: `AVERAGE-BANDWIDTH`."""
    width: int
    height: int
    codecs: str
    """RFC 6381 codecs, e.g. `avc1.64001f,mp4a.40.2`."""
    frameRate: float
    segments: int = Field(ge=1)


class Poster(_Record):
    key: str
    width: int
    height: int
    atMs: int = Field(ge=0)
    """Where in the video the frame was taken."""


class Thumbnails(_Record):
    """A sprite sheet of `tiles` tiles, `columns` across, and the WebVTT index whose cues point into it."""

    vttKey: str
    spriteKey: str
    width: int
    """The sprite's size in pixels."""
    height: int
    tileWidth: int
    tileHeight: int
    columns: int
    rows: int
    tiles: int
    intervalSeconds: int
    """Seconds of video per tile (a multiple of the 2-second GOP)."""


class PlaybackPackage(_Record):
    """What the packager made, in the outputs bucket."""

    bucket: str
    hlsKey: str
    """The master playlist."""
    variants: list[HlsVariant]
    poster: Poster
    thumbnails: Thumbnails


class PackagingSource(_Record):
    """A completed video rendition the packager remuxes (it never reads the upload)."""

    rendition: str
    bucket: str
    key: str
    width: int
    height: int
