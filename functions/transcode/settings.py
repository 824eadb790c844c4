"""The transcoder's configuration, read from the environment on every invocation (it is cheap, and tests vary it).

`RENDITION` names the one rendition this function produces (docs/CONTRACTS.md). The encoder knobs are optional:
`FFMPEG_THREADS` (default: the CPUs Lambda gives the function), `FFMPEG_PRESET` (x264 preset, default `veryfast`)
and `FFMPEG_CRF` (quality target under the rendition's bitrate cap, default 23); `TRANSCODE_WORK_DIR` moves the
per-message working directories off /tmp (the local cloud and the tests use it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from functions.common.renditions import Rendition, parse_renditions

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


class SettingsError(RuntimeError):
    """A required environment variable is missing or malformed: a deployment defect, not a retryable event."""


@dataclass(frozen=True)
class TranscodeSettings:
    """What one transcoder function needs to know."""

    rendition: Rendition
    """The rendition this function produces (`RENDITION`, JSON of one `Rendition`)."""
    outputs_bucket: str
    """Bucket the renditions are written to, under `outputs/{jobId}/{rendition}.mp4` (`OUTPUTS_BUCKET`)."""
    event_bus_name: str
    """Custom bus for Rendition Progress / Completed / Failed (`EVENT_BUS_NAME`)."""
    threads: int
    """Encoder threads (`FFMPEG_THREADS`, optional)."""
    preset: str = "veryfast"
    """x264 preset (`FFMPEG_PRESET`, optional): speed against size at the same quality."""
    crf: int = 23
    """x264 constant rate factor (`FFMPEG_CRF`, optional); `-maxrate` caps the bitrate above it."""
    work_root: Path = Path(tempfile.gettempdir())
    """Where the per-message working directories are made (`TRANSCODE_WORK_DIR`, optional; Lambda's /tmp)."""
    reserve_seconds: float = 30.0
    """Time kept back from the invocation for reading the output back, uploading it and announcing it."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TranscodeSettings:
        env = os.environ if environ is None else environ
        required = ("RENDITION", "OUTPUTS_BUCKET", "EVENT_BUS_NAME")
        problems = [f"{name} is not set" for name in required if not env.get(name)]
        rendition = None
        if env.get("RENDITION"):
            try:
                rendition = _parse_rendition(env["RENDITION"])
            except ValueError as err:
                problems.append(f"RENDITION: {err}")
        threads = _positive_int(env, "FFMPEG_THREADS", os.cpu_count() or 2, problems)
        crf = _positive_int(env, "FFMPEG_CRF", cls.crf, problems)
        if not 0 < crf <= 51:
            problems.append(f"FFMPEG_CRF must be 1-51, got {crf}")
        preset = env.get("FFMPEG_PRESET") or cls.preset
        if preset not in X264_PRESETS:
            problems.append(f"FFMPEG_PRESET must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
        if problems or rendition is None:
            raise SettingsError("; ".join(problems))
        return cls(
            rendition=rendition,
            outputs_bucket=env["OUTPUTS_BUCKET"],
            event_bus_name=env["EVENT_BUS_NAME"],
            threads=threads,
            preset=preset,
            crf=crf,
            work_root=Path(env.get("TRANSCODE_WORK_DIR") or tempfile.gettempdir()),
        )


def _parse_rendition(raw: str) -> Rendition:
    """`RENDITION` is one object; a one-element list (the ladder's own format) is accepted too."""
    stripped = raw.strip()
    ladder = parse_renditions(stripped if stripped.startswith("[") else f"[{stripped}]")
    if len(ladder) != 1:
        raise ValueError(f"expected one rendition, got {len(ladder)}")
    return ladder[0]


def _positive_int(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        problems.append(f"{name} must be a positive integer, got {raw!r}")
        return default
    return int(raw)
