"""What counts as media: the kinds the pipeline routes, the containers and image formats it accepts, and the units of
work each kind is cut into."""

from __future__ import annotations

from enum import StrEnum


class MediaType(StrEnum):
    """The fan-out message's `mediaType` attribute, which the consumers' filter policies match."""

    VIDEO = "video"
    IMAGE = "image"
    AUDIO = "audio"


class UnitKind(StrEnum):
    """What one planned rendition (a unit of work in the fan-out) produces."""

    VIDEO = "video"
    """An MP4 rendition of a video (the transcode-{name} functions, or MediaConvert)."""
    IMAGE = "image"
    """A resized, re-encoded image derivative (the images function)."""
    METADATA = "metadata"
    """An image's metadata, which lands on the job as `image` (the images function); no output file."""
    AUDIO = "audio"
    """A loudness-normalised AAC rendition of an audio upload (the audio function)."""
    WAVEFORM = "waveform"
    """A PNG of an audio upload's waveform, drawn from its decoded samples (the audio function)."""


class SegmentPart(StrEnum):
    """What one unit of a segment-parallel rendition makes (docs/CONTRACTS.md "Segment-parallel encoding")."""

    VIDEO = "video"
    """The video of one segment of the source, `[index x seconds, (index + 1) x seconds)`, without audio."""
    AUDIO = "audio"
    """The whole source's audio, once per rendition, so that no segment boundary can cut the AAC stream."""
    STITCH = "stitch"
    """The segments joined without re-encoding and muxed with the audio: the rendition's MP4."""


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


ACCEPTED_AUDIO_DEMUXERS: tuple[str, ...] = (
    "mp3",
    "aac",
    "mov,mp4,m4a,3gp,3g2,mj2",
    "wav",
    "flac",
    "ogg",
    "matroska,webm",
)
"""The demuxers an audio-only upload may be read with (MP3, AAC/ADTS, M4A, WAV, FLAC, Ogg Vorbis/Opus, and WebM/MKA,
which browsers' MediaRecorder writes)."""

AUDIO_DEMUXER_WHITELIST = ",".join(ACCEPTED_AUDIO_DEMUXERS)

ACCEPTED_IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "AVIF")
"""Image formats as Pillow names them, recognised by their content only (never by name or declared type)."""

IMAGE_OUTPUT_FORMATS = {"webp": ("WEBP", "image/webp"), "jpeg": ("JPEG", "image/jpeg")}
"""A derivative's `format` -> (Pillow's format name, its content type); the file is `.webp` or `.jpg`."""
