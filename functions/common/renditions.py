"""The rendition ladder: stack config in, plain data out. Shared by the Pulumi program and the functions."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Rendition:
    """One output of the ladder, e.g. 720p H.264 capped at 3 Mbit/s with 128 kbit/s AAC."""

    name: str
    """Short name used in queue names, output keys and the API (`720p`)."""
    height: int
    """Target height in pixels; the width follows the source's display aspect ratio."""
    maxVideoBitrateKbps: int
    """Cap on the video bitrate."""
    audioBitrateKbps: int
    """AAC bitrate when the source has audio."""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").isalnum() or len(self.name) > 20:
            raise ValueError(f"rendition name {self.name!r} must be 1-20 letters, digits or '-'")
        for field_name in ("height", "maxVideoBitrateKbps", "audioBitrateKbps"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"rendition {self.name}: {field_name} must be a positive integer, got {value!r}")
        if self.height % 2:
            raise ValueError(f"rendition {self.name}: height must be even for H.264 4:2:0, got {self.height}")


DEFAULT_RENDITIONS: tuple[Rendition, ...] = (
    Rendition(name="720p", height=720, maxVideoBitrateKbps=3000, audioBitrateKbps=128),
    Rendition(name="1080p", height=1080, maxVideoBitrateKbps=6000, audioBitrateKbps=160),
)


def parse_renditions(raw: list[dict] | str) -> list[Rendition]:
    """Renditions from config or an environment variable; unknown keys, duplicates and empty ladders are errors."""
    items = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise ValueError("renditions must be a non-empty list")
    ladder: list[Rendition] = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(f"rendition must be an object, got {item!r}")
        try:
            ladder.append(Rendition(**item))
        except TypeError as err:
            raise ValueError(f"rendition {item!r}: {err}") from err
    names = [r.name for r in ladder]
    if len(set(names)) != len(names):
        raise ValueError(f"rendition names must be unique: {names}")
    return sorted(ladder, key=lambda r: r.height)


def rendition_to_json(rendition: Rendition) -> str:
    """One rendition in the config's own key spelling (the transcoder's `RENDITION`)."""
    return json.dumps(asdict(rendition), separators=(",", ":"))


def renditions_to_json(ladder: list[Rendition] | tuple[Rendition, ...]) -> str:
    return json.dumps([asdict(r) for r in ladder], separators=(",", ":"))
