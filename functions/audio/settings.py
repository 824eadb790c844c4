"""The audio function's configuration, read from the environment on every invocation (it is cheap, and tests vary it).

`LOUDNESS_TARGET_LUFS` is the integrated loudness (EBU R128) every AAC rendition is normalised to: -23 is the
broadcast target (EBU R128 itself), -16 and -14 what podcast and streaming services ask for. `UPLOADS_BUCKET` is the
only bucket a source is read from. `AUDIO_WORK_DIR` moves the per-unit working directories off /tmp (the local cloud
and the tests use it). `JOBS_TABLE_NAME` is the table the job gate reads (`functions/common/job_gate.py`).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from functions.common.job_gate import GATE_CHECK_SECONDS
from functions.common.settings import EnvironmentReader

MIN_LOUDNESS_LUFS = -70.0
MAX_LOUDNESS_LUFS = -5.0
"""ffmpeg's `loudnorm` accepts integrated targets from -70 to -5 LUFS."""

AUDIO_RESERVE_SECONDS = 30.0
"""What the function keeps back from its timeout to read an output back, upload it and announce it."""


@dataclass(frozen=True)
class AudioSettings:
    """What the audio function needs to know."""

    uploads_bucket: str
    """The bucket uploads are read from (`UPLOADS_BUCKET`); a message naming another one is refused."""
    outputs_bucket: str
    """Bucket the outputs are written to, under `outputs/{jobId}/{unit}.{m4a|png}` (`OUTPUTS_BUCKET`)."""
    event_bus_name: str
    """Custom bus for Rendition Progress / Completed / Failed (`EVENT_BUS_NAME`)."""
    jobs_table_name: str
    """The jobs table (`JOBS_TABLE_NAME`), read (never written) to ask whether the work is still wanted."""
    loudness_target_lufs: float
    """Integrated loudness of the AAC rendition, in LUFS (`LOUDNESS_TARGET_LUFS`, -70 to -5)."""
    work_root: Path = Path(tempfile.gettempdir())
    """Where the per-unit working directories are made (`AUDIO_WORK_DIR`, optional; Lambda's /tmp)."""
    reserve_seconds: float = AUDIO_RESERVE_SECONDS
    """Time kept back from the invocation for reading the output back, uploading it and announcing it."""
    gate_check_seconds: float = GATE_CHECK_SECONDS
    """How often a long decode asks whether the work is still wanted."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AudioSettings:
        read = EnvironmentReader(environ)
        uploads_bucket = read.required("UPLOADS_BUCKET")
        outputs_bucket = read.required("OUTPUTS_BUCKET")
        event_bus_name = read.required("EVENT_BUS_NAME")
        jobs_table_name = read.required("JOBS_TABLE_NAME")
        target = -23.0
        if read.required("LOUDNESS_TARGET_LUFS"):
            target = read.parsed("LOUDNESS_TARGET_LUFS", parse_loudness_target, target)
        read.done("audio function")
        return cls(
            uploads_bucket=uploads_bucket,
            outputs_bucket=outputs_bucket,
            event_bus_name=event_bus_name,
            jobs_table_name=jobs_table_name,
            loudness_target_lufs=target,
            work_root=Path(read.optional("AUDIO_WORK_DIR", tempfile.gettempdir())),
        )


def parse_loudness_target(raw: str) -> float:
    """A number of LUFS from -70 to -5 (`-23`, `-16.5`)."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number of LUFS, got {raw!r}") from None
    if not math.isfinite(value) or not MIN_LOUDNESS_LUFS <= value <= MAX_LOUDNESS_LUFS:
        raise ValueError(f"must be from {MIN_LOUDNESS_LUFS:g} to {MAX_LOUDNESS_LUFS:g} LUFS, got {raw!r}")
    return value
