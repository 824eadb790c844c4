"""The packager's configuration, read from the environment on every invocation (it is cheap, and tests vary it).

`OUTPUTS_BUCKET` is the only bucket renditions are read from and the package is written to. The thumbnail knobs are
optional: `THUMBNAIL_INTERVAL_SECONDS` (seconds of video per sprite tile, a multiple of the 2-second GOP, default 2;
raised for a long video so that it needs at most `MAX_SPRITE_TILES` tiles, default 400) and `SPRITE_TILE_WIDTH` (an
even number of pixels, default 160). `PACKAGER_WORK_DIR` moves the per-message working directories off /tmp (the
local cloud and the tests use it). `JOBS_TABLE_NAME` is the table the job gate reads (`functions/common/job_gate.py`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from functions.common.job_gate import GATE_CHECK_SECONDS
from functions.common.settings import EnvironmentReader
from functions.contracts.playback import SEGMENT_SECONDS

PACKAGER_RESERVE_SECONDS = 30.0
"""What the function keeps back from its timeout to read the package back, upload it and announce it."""
MAX_THUMBNAIL_INTERVAL_SECONDS = 3600
MAX_SPRITE_TILES = 2000
MIN_TILE_WIDTH, MAX_TILE_WIDTH = 32, 640


@dataclass(frozen=True)
class PackagerSettings:
    """What the packager needs to know."""

    outputs_bucket: str
    """The bucket renditions are read from and the package is written to, under `outputs/{jobId}/` (`OUTPUTS_BUCKET`);
    a request naming another bucket is refused."""
    event_bus_name: str
    """Custom bus for Packaging Completed / Failed (`EVENT_BUS_NAME`)."""
    jobs_table_name: str
    """The jobs table (`JOBS_TABLE_NAME`), read (never written) to ask whether the work is still wanted."""
    thumbnail_interval_seconds: int = 2
    """Seconds of video per sprite tile, at least (`THUMBNAIL_INTERVAL_SECONDS`, optional; a multiple of 2)."""
    max_sprite_tiles: int = 400
    """Most tiles one sprite holds; a longer video gets a longer interval (`MAX_SPRITE_TILES`, optional)."""
    sprite_tile_width: int = 160
    """Width of a tile in pixels, even (`SPRITE_TILE_WIDTH`, optional); its height follows the video's aspect."""
    work_root: Path = Path(tempfile.gettempdir())
    """Where the per-message working directories are made (`PACKAGER_WORK_DIR`, optional; Lambda's /tmp)."""
    reserve_seconds: float = PACKAGER_RESERVE_SECONDS
    """Time kept back from the invocation for reading the package back, uploading it and announcing it."""
    gate_check_seconds: float = GATE_CHECK_SECONDS
    """How often, between its ffmpeg steps, packaging asks whether the work is still wanted."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PackagerSettings:
        read = EnvironmentReader(environ)
        outputs_bucket = read.required("OUTPUTS_BUCKET")
        event_bus_name = read.required("EVENT_BUS_NAME")
        jobs_table_name = read.required("JOBS_TABLE_NAME")
        interval = read.integer(
            "THUMBNAIL_INTERVAL_SECONDS",
            SEGMENT_SECONDS,
            MAX_THUMBNAIL_INTERVAL_SECONDS,
            default=cls.thumbnail_interval_seconds,
        )
        if interval % SEGMENT_SECONDS:
            read.problem(f"THUMBNAIL_INTERVAL_SECONDS must be a multiple of {SEGMENT_SECONDS}, got {interval}")
        max_tiles = read.integer("MAX_SPRITE_TILES", 1, MAX_SPRITE_TILES, default=cls.max_sprite_tiles)
        tile_width = read.integer("SPRITE_TILE_WIDTH", MIN_TILE_WIDTH, MAX_TILE_WIDTH, default=cls.sprite_tile_width)
        if tile_width % 2:
            read.problem(f"SPRITE_TILE_WIDTH must be even, got {tile_width}")
        read.done("packager function")
        return cls(
            outputs_bucket=outputs_bucket,
            event_bus_name=event_bus_name,
            jobs_table_name=jobs_table_name,
            thumbnail_interval_seconds=interval,
            max_sprite_tiles=max_tiles,
            sprite_tile_width=tile_width,
            work_root=Path(read.optional("PACKAGER_WORK_DIR", tempfile.gettempdir())),
        )
