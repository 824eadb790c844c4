"""The transcoder's configuration, read from the environment on every invocation (it is cheap, and tests vary it).

`RENDITION` names the one rendition this function produces (docs/CONTRACTS.md). The encoder knobs are optional:
`FFMPEG_THREADS` (default: the CPUs Lambda gives the function), `FFMPEG_PRESET` (x264 preset, default `veryfast`)
and `FFMPEG_CRF` (quality target under the rendition's bitrate cap, default 23); `TRANSCODE_WORK_DIR` moves the
per-message working directories off /tmp (the local cloud and the tests use it). `JOBS_TABLE_NAME` is the table the
job gate reads (`functions/common/job_gate.py`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from functions.common.job_gate import GATE_CHECK_SECONDS
from functions.common.renditions import Rendition, parse_renditions
from functions.common.settings import EnvironmentReader
from functions.contracts.fanout import TRANSCODE_RESERVE_SECONDS

# The presets x264 knows, fastest first. `ultrafast` disables CABAC and 8x8 transforms, so its output is signalled
# as Constrained Baseline even with `-profile:v high`; `superfast` is the fastest that yields High profile.
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
# x264 runs at most 128 threads (X264_THREAD_MAX).
MAX_THREADS = 128


@dataclass(frozen=True)
class TranscodeSettings:
    """What one transcoder function needs to know."""

    rendition: Rendition
    """The rendition this function produces (`RENDITION`, JSON of one `Rendition`)."""
    outputs_bucket: str
    """Bucket the renditions are written to, under `outputs/{jobId}/{rendition}.mp4` (`OUTPUTS_BUCKET`)."""
    event_bus_name: str
    """Custom bus for Rendition Progress / Completed / Failed (`EVENT_BUS_NAME`)."""
    jobs_table_name: str
    """The jobs table (`JOBS_TABLE_NAME`), read (never written) to ask whether the work is still wanted."""
    threads: int
    """Encoder threads (`FFMPEG_THREADS`, optional)."""
    preset: str = "veryfast"
    """x264 preset (`FFMPEG_PRESET`, optional): speed against size at the same quality."""
    crf: int = 23
    """x264 constant rate factor (`FFMPEG_CRF`, optional); `-maxrate` caps the bitrate above it."""
    work_root: Path = Path(tempfile.gettempdir())
    """Where the per-message working directories are made (`TRANSCODE_WORK_DIR`, optional; Lambda's /tmp)."""
    reserve_seconds: float = TRANSCODE_RESERVE_SECONDS
    """Time kept back from the invocation for reading the output back, uploading it and announcing it."""
    gate_check_seconds: float = GATE_CHECK_SECONDS
    """How often the encode asks whether the work is still wanted."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TranscodeSettings:
        read = EnvironmentReader(environ)
        rendition_raw = read.required("RENDITION")
        outputs_bucket = read.required("OUTPUTS_BUCKET")
        event_bus_name = read.required("EVENT_BUS_NAME")
        jobs_table_name = read.required("JOBS_TABLE_NAME")
        rendition = read.parsed("RENDITION", _parse_rendition, None) if rendition_raw else None
        threads = read.integer("FFMPEG_THREADS", 1, MAX_THREADS, default=os.cpu_count() or 2)
        crf = read.integer("FFMPEG_CRF", 1, 51, default=cls.crf)
        preset = read.optional("FFMPEG_PRESET", cls.preset)
        if preset not in X264_PRESETS:
            read.problem(f"FFMPEG_PRESET must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
        read.done("transcode function")
        assert rendition is not None  # done() raised when RENDITION was missing or unreadable
        return cls(
            rendition=rendition,
            outputs_bucket=outputs_bucket,
            event_bus_name=event_bus_name,
            jobs_table_name=jobs_table_name,
            threads=threads,
            preset=preset,
            crf=crf,
            work_root=Path(read.optional("TRANSCODE_WORK_DIR", tempfile.gettempdir())),
        )


def _parse_rendition(raw: str) -> Rendition:
    """`RENDITION` is one object; a one-element list (the ladder's own format) is accepted too."""
    ladder = parse_renditions(raw if raw.startswith("[") else f"[{raw}]")
    if len(ladder) != 1:
        raise ValueError(f"expected one rendition, got {len(ladder)}")
    return ladder[0]
