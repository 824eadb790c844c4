"""HLS playlists as MediaConvert writes them: the master playlist over a group's variants, and media playlists with
whole-second durations when the group asks for `ManifestDurationFormat: INTEGER`. Pure text and arithmetic, apart from
reading segment sizes from disk.

A variant's `#EXT-X-STREAM-INF` carries its peak and average bit rate (from its segments' sizes and durations), the
RFC 6381 codecs of its streams, its resolution (when `StreamInfResolution` is INCLUDE) and frame rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

# avc1.PPCCLL: profile_idc and constraint flags as x264 writes them for each profile; the level comes from the stream.
_AVC_PROFILES = {
    "Constrained Baseline": "42c0",
    "Baseline": "4200",
    "Main": "4d40",
    "High": "6400",
}
_AAC_OBJECT_TYPES = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}
_EXTINF = re.compile(r"^#EXTINF:(?P<duration>[0-9.]+),", re.MULTILINE)


class PlaylistError(ValueError):
    """A media playlist without segments, or a stream whose codec has no RFC 6381 name here."""


@dataclass(frozen=True)
class Variant:
    playlist: str
    """The variant playlist's file name, relative to the master (single directory)."""
    peak_bitrate: int
    average_bitrate: int
    codecs: str
    width: int
    height: int
    frame_rate: float | None


def segments(media_playlist: str) -> list[tuple[float, str]]:
    """(duration, uri) of each segment of a media playlist."""
    lines = [line.strip() for line in media_playlist.splitlines() if line.strip()]
    found = []
    for index, line in enumerate(lines):
        match = _EXTINF.match(line)
        if match and index + 1 < len(lines) and not lines[index + 1].startswith("#"):
            found.append((float(match.group("duration")), lines[index + 1]))
    return found


def bitrates(playlist: Path) -> tuple[int, int]:
    """(peak, average) bits per second over the variant's segments, from their sizes on disk."""
    listed = segments(playlist.read_text())
    if not listed:
        raise PlaylistError(f"{playlist.name} lists no segments")
    peak, total_bits, total_seconds = 0.0, 0, 0.0
    for duration, uri in listed:
        bits = (playlist.parent / uri).stat().st_size * 8
        total_bits += bits
        total_seconds += duration
        if duration > 0:
            peak = max(peak, bits / duration)
    return math.ceil(peak), math.ceil(total_bits / total_seconds) if total_seconds else 0


def avc_codec(profile: str | None, level: int | None) -> str:
    if profile not in _AVC_PROFILES or not level:
        raise PlaylistError(f"H.264 profile {profile!r} level {level!r} has no RFC 6381 name here")
    return f"avc1.{_AVC_PROFILES[profile]}{level:02x}"


def aac_codec(profile: str | None) -> str:
    return f"mp4a.40.{_AAC_OBJECT_TYPES.get(profile or 'LC', 2)}"


def master_playlist(variants: list[Variant], include_resolution: bool) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in variants:
        attributes = [
            f"BANDWIDTH={variant.peak_bitrate}",
            f"AVERAGE-BANDWIDTH={variant.average_bitrate}",
            f'CODECS="{variant.codecs}"',
        ]
        if include_resolution:
            attributes.append(f"RESOLUTION={variant.width}x{variant.height}")
        if variant.frame_rate:
            attributes.append(f"FRAME-RATE={variant.frame_rate:.3f}")
        lines += [f"#EXT-X-STREAM-INF:{','.join(attributes)}", variant.playlist]
    return "\n".join(lines) + "\n"


def with_integer_durations(media_playlist: str) -> str:
    """`#EXTINF` durations rounded to whole seconds (the target duration, a ceiling, already covers them)."""
    return _EXTINF.sub(lambda m: f"#EXTINF:{round(float(m.group('duration')))},", media_playlist)
