"""The images function's configuration, read from the environment on every invocation (it is cheap, and tests vary it).

docs/CONTRACTS.md "Environment variables": `MAX_IMAGE_PIXELS` bounds what is decoded; the watermark is
`WATERMARK_TEXT` or `WATERMARK_LOGO_KEY` (a PNG in the outputs bucket; it wins when both are set), drawn at
`WATERMARK_OPACITY` and spanning `WATERMARK_SCALE` of the image's width. Neither text nor logo: no watermark.
`MAX_IMAGE_UPLOAD_BYTES` (optional) bounds the source read; `IMAGES_WORK_DIR` (optional) moves the per-unit working
directories off /tmp. `JOBS_TABLE_NAME` is the table the job gate reads (`functions/common/job_gate.py`).
"""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from functions.common.settings import EnvironmentReader

NO_CAP = sys.maxsize
DEFAULT_MAX_IMAGE_UPLOAD_BYTES = 50 * 1024 * 1024
DEFAULT_WATERMARK_OPACITY = 0.5
DEFAULT_WATERMARK_SCALE = 0.25


@dataclass(frozen=True)
class ImagesSettings:
    """What the images function needs to know."""

    uploads_bucket: str
    """The only bucket a source may be read from (`UPLOADS_BUCKET`)."""
    outputs_bucket: str
    """Where derivatives, `metadata.json` and the watermark logo are (`OUTPUTS_BUCKET`)."""
    event_bus_name: str
    """Custom bus for Rendition Progress / Completed / Failed (`EVENT_BUS_NAME`)."""
    jobs_table_name: str
    """The jobs table (`JOBS_TABLE_NAME`), read (never written) to ask whether the work is still wanted."""
    max_image_pixels: int
    """Width x height above which an image is not decoded (`MAX_IMAGE_PIXELS`); Pillow's bomb guard is set to it."""
    max_image_bytes: int = DEFAULT_MAX_IMAGE_UPLOAD_BYTES
    """The largest source read (`MAX_IMAGE_UPLOAD_BYTES`, optional): ingest's limit, checked again."""
    watermark_text: str = ""
    """Text drawn on derivatives planned with a watermark (`WATERMARK_TEXT`, optional)."""
    watermark_logo_key: str = ""
    """Key of a PNG in the outputs bucket drawn instead of the text (`WATERMARK_LOGO_KEY`, optional)."""
    watermark_opacity: float = DEFAULT_WATERMARK_OPACITY
    """0 (invisible) to 1 (opaque) (`WATERMARK_OPACITY`)."""
    watermark_scale: float = DEFAULT_WATERMARK_SCALE
    """The fraction of the image's width the mark spans, above 0 up to 1 (`WATERMARK_SCALE`)."""
    work_root: Path = Path(tempfile.gettempdir())
    """Where the per-unit working directories are made (`IMAGES_WORK_DIR`, optional; Lambda's /tmp)."""

    @property
    def watermark_configured(self) -> bool:
        return bool(self.watermark_text or self.watermark_logo_key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ImagesSettings:
        """Raises `SettingsError` naming every variable that is missing or malformed."""
        read = EnvironmentReader(environ)
        settings = cls(
            uploads_bucket=read.text("UPLOADS_BUCKET"),
            outputs_bucket=read.text("OUTPUTS_BUCKET"),
            event_bus_name=read.text("EVENT_BUS_NAME"),
            jobs_table_name=read.text("JOBS_TABLE_NAME"),
            max_image_pixels=read.integer("MAX_IMAGE_PIXELS", 1, NO_CAP),
            max_image_bytes=read.integer("MAX_IMAGE_UPLOAD_BYTES", 1, NO_CAP, default=DEFAULT_MAX_IMAGE_UPLOAD_BYTES),
            watermark_text=read.raw("WATERMARK_TEXT"),
            watermark_logo_key=read.raw("WATERMARK_LOGO_KEY").lstrip("/"),
            watermark_opacity=_fraction(read, "WATERMARK_OPACITY", DEFAULT_WATERMARK_OPACITY, allow_zero=True),
            watermark_scale=_fraction(read, "WATERMARK_SCALE", DEFAULT_WATERMARK_SCALE, allow_zero=False),
            work_root=Path(read.optional("IMAGES_WORK_DIR", tempfile.gettempdir())),
        )
        read.done("images function")
        return settings


def _fraction(read: EnvironmentReader, name: str, default: float, *, allow_zero: bool) -> float:
    """A number from 0 (or just above it) to 1; `default` when unset."""
    low = "0" if allow_zero else "above 0"

    def parse(raw: str) -> float:
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0) and value <= 1):
            raise ValueError(f"must be a number from {low} to 1, got {raw!r}")
        return value

    return read.parsed(name, parse, default)
