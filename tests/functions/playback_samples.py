"""A playback package as the packager announces it, for the tests that take a video job to COMPLETED.

A video job ends only once the packager made its HLS ladder, poster and thumbnails (functions/contracts/playback.py):
the tests drive it there through the same path the pipeline does, with the package built here from the job's completed
video renditions, named and measured the way the packager names and measures them.
"""

from __future__ import annotations

import math

from functions.common import job_state
from functions.contracts.jobs import JobRecord
from functions.contracts.playback import (
    MASTER_PLAYLIST,
    POSTER,
    SEGMENT_SECONDS,
    SPRITE,
    THUMBNAILS_VTT,
    HlsVariant,
    PlaybackPackage,
    Poster,
    Thumbnails,
    playback_key,
    variant_playlist,
)

CODECS = "avc1.64001f,mp4a.40.2"
"""H.264 High 3.1 and AAC-LC, as the packager reads them from a rendition with audio."""
FRAME_RATE = 30.0
TILE_WIDTH = 160
THUMBNAIL_INTERVAL_SECONDS = 10
SPRITE_COLUMNS = 10
FALLBACK_KBPS = 2_500
"""The average bit rate of a rendition whose size is unknown (MediaConvert outputs the tracker could not read back)."""


def sample_package(
    job_id: str,
    *,
    bucket: str = "test-outputs",
    renditions: tuple[tuple[str, int, int], ...] = (("720p", 1280, 720), ("1080p", 1920, 1080)),
    duration_ms: int = 10_000,
    average_kbps: dict[str, int] | None = None,
) -> PlaybackPackage:
    """The package of `renditions` ((name, width, height) in ladder order): one variant each, the poster at the largest
    one's size at 10% of the duration, one sprite tile per 10 s of the smallest at 160 px wide."""
    if not renditions:
        raise ValueError("a package has at least one variant")
    segments = max(1, math.ceil(duration_ms / (SEGMENT_SECONDS * 1000)))
    variants = []
    for name, width, height in renditions:
        average = (average_kbps or {}).get(name, FALLBACK_KBPS) * 1000
        variants.append(
            HlsVariant(
                rendition=name,
                key=playback_key(job_id, variant_playlist(name)),
                bandwidth=average * 5 // 4,
                averageBandwidth=average,
                width=width,
                height=height,
                codecs=CODECS,
                frameRate=FRAME_RATE,
                segments=segments,
            )
        )
    _, width, height = max(renditions, key=lambda r: r[1] * r[2])
    _, small_width, small_height = min(renditions, key=lambda r: r[1] * r[2])
    tile_height = max(2, round(TILE_WIDTH * small_height / small_width / 2) * 2)
    tiles = max(1, math.ceil(duration_ms / (THUMBNAIL_INTERVAL_SECONDS * 1000)))
    columns = min(SPRITE_COLUMNS, tiles)
    rows = math.ceil(tiles / columns)
    return PlaybackPackage(
        bucket=bucket,
        hlsKey=playback_key(job_id, MASTER_PLAYLIST),
        variants=variants,
        poster=Poster(key=playback_key(job_id, POSTER), width=width, height=height, atMs=duration_ms // 10),
        thumbnails=Thumbnails(
            vttKey=playback_key(job_id, THUMBNAILS_VTT),
            spriteKey=playback_key(job_id, SPRITE),
            width=columns * TILE_WIDTH,
            height=rows * tile_height,
            tileWidth=TILE_WIDTH,
            tileHeight=tile_height,
            columns=columns,
            rows=rows,
            tiles=tiles,
            intervalSeconds=THUMBNAIL_INTERVAL_SECONDS,
        ),
    )


def package_for(job: JobRecord) -> PlaybackPackage:
    """The package the packager makes of this job's completed video renditions (what `Packaging Requested` lists), in
    the bucket they are in, each variant's average bit rate that of its MP4."""
    sources = job_state.packaging_sources(job)
    if not sources:
        raise ValueError(f"job {job.jobId} has no completed video rendition to package")
    duration_ms = job.probe.durationMs if job.probe else 0
    average_kbps = {
        r.name: max(1, r.bytes * 8 // r.durationMs) for r in sources if r.bytes and r.durationMs
    }  # bits per ms = kbit/s
    return sample_package(
        job.jobId,
        bucket=sources[0].bucket or "test-outputs",
        renditions=tuple((r.name, r.width or 0, r.height or 0) for r in sources),
        duration_ms=duration_ms,
        average_kbps=average_kbps,
    )


def complete_playback(job: JobRecord, *, now: int) -> JobRecord:
    """`Packaging Completed` applied by the state machine to a job waiting for its package: the job COMPLETED."""
    completed = job_state.complete_playback(job, package=package_for(job), now=now)
    if completed is None:
        raise AssertionError(f"job {job.jobId} is not waiting for its package: {job.status}, {job.playback}")
    return completed
