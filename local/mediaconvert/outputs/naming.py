"""Where MediaConvert writes a job's outputs, by the service's naming rules, and how its COMPLETE event lists them.

- A file group's output is `<base><NameModifier>.<extension>`; a frame capture adds `.NNNNNNN` (seven digits, from
  0) before the extension. The base is the destination's file part, or the input's file name without its extension
  when the destination ends in `/`.
- An HLS group's master playlist is `<base>.m3u8`, each variant's playlist `<base><NameModifier>.m3u8` and its
  segments `<base><NameModifier>_NNNNN.ts` (five digits, from 1), all in the destination's folder.
- The COMPLETE event's `outputGroupDetails` has one entry per output group: `FILE_GROUP` with the output paths,
  `HLS_GROUP` with the master playlist in `playlistFilePaths` and the variant playlists as outputs.

The tests' fake service and the local cloud's stand-in both name outputs with this module, so they cannot disagree.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CONTAINER_EXTENSIONS = {"MP4": "mp4", "M3U8": "m3u8", "RAW": "jpg"}
FILE_GROUP_SETTINGS = "FILE_GROUP_SETTINGS"
HLS_GROUP_SETTINGS = "HLS_GROUP_SETTINGS"
FRAME_CAPTURE = "FRAME_CAPTURE"


@dataclass(frozen=True)
class PlannedOutput:
    """One output of one output group, with the name MediaConvert gives it."""

    group_type: str
    """`FILE_GROUP` or `HLS_GROUP`, as the COMPLETE event names the group."""
    name: str
    """`s3://bucket/key` without the extension: `<base><NameModifier>`."""
    extension: str
    settings: dict[str, Any]
    """The output's settings as CreateJob received them (member names)."""

    @property
    def is_frame_capture(self) -> bool:
        return self.video_codec == FRAME_CAPTURE

    @property
    def video_codec(self) -> str | None:
        video = self.settings.get("VideoDescription") or {}
        return (video.get("CodecSettings") or {}).get("Codec")

    @property
    def path(self) -> str:
        """The output's file (a frame capture's first image)."""
        return frame_capture_path(self, 0) if self.is_frame_capture else f"{self.name}.{self.extension}"


@dataclass(frozen=True)
class PlannedGroup:
    type: str
    """`FILE_GROUP` or `HLS_GROUP`."""
    base: str
    """`s3://bucket/key` prefix every output name starts with."""
    settings: dict[str, Any]
    """FileGroupSettings or HlsGroupSettings."""
    outputs: tuple[PlannedOutput, ...]

    @property
    def playlist(self) -> str | None:
        """The HLS master playlist."""
        return f"{self.base}.m3u8" if self.type == "HLS_GROUP" else None


def frame_capture_path(output: PlannedOutput, index: int) -> str:
    return f"{output.name}.{index:07d}.{output.extension}"


def hls_segment_pattern(output: PlannedOutput) -> str:
    """The file name pattern of a variant's segments, printf-style as ffmpeg's hls muxer takes it."""
    return f"{posixpath.basename(urlsplit(output.name).path)}_%05d.ts"


def _base(destination: str, input_uri: str) -> str:
    """A destination ending in '/' takes the input's file name (without extension) as the base name."""
    if destination.endswith("/"):
        return destination + posixpath.splitext(posixpath.basename(urlsplit(input_uri).path))[0]
    return destination


def _extension(output: dict[str, Any]) -> str:
    container = (output.get("ContainerSettings") or {}).get("Container", "")
    return str(output.get("Extension") or CONTAINER_EXTENSIONS.get(container, container.lower()))


def plan_output_groups(settings: dict[str, Any]) -> list[PlannedGroup]:
    """Every FILE_GROUP and HLS_GROUP of the job settings with its outputs' names; other group types are skipped."""
    input_uri = settings["Inputs"][0]["FileInput"]
    groups: list[PlannedGroup] = []
    for group in settings["OutputGroups"]:
        group_settings = group["OutputGroupSettings"]
        if group_settings["Type"] == FILE_GROUP_SETTINGS:
            kind, specific = "FILE_GROUP", group_settings["FileGroupSettings"]
        elif group_settings["Type"] == HLS_GROUP_SETTINGS:
            kind, specific = "HLS_GROUP", group_settings["HlsGroupSettings"]
        else:
            continue
        base = _base(specific["Destination"], input_uri)
        extension = "m3u8" if kind == "HLS_GROUP" else None
        outputs = tuple(
            PlannedOutput(
                group_type=kind,
                name=base + output.get("NameModifier", ""),
                extension=extension or _extension(output),
                settings=output,
            )
            for output in group["Outputs"]
        )
        groups.append(PlannedGroup(type=kind, base=base, settings=specific, outputs=outputs))
    return groups


@dataclass(frozen=True)
class OutputMeasure:
    """What the COMPLETE event says about an output that was written."""

    paths: tuple[str, ...]
    duration_ms: int
    width: int
    height: int


def _video_details(output: dict[str, Any]) -> dict[str, int]:
    video = output.get("VideoDescription") or {}
    return {"widthInPx": video.get("Width", 0), "heightInPx": video.get("Height", 0)}


def output_group_details(
    settings: dict[str, Any], duration_ms: int, measured: Mapping[str, OutputMeasure] | None = None
) -> list[dict[str, Any]]:
    """`outputGroupDetails` of a COMPLETE event for these job settings.

    Outputs found in `measured` (keyed by `PlannedOutput.path`) report what was written; the others the settings'
    frame size and `duration_ms`.
    """
    groups: list[dict[str, Any]] = []
    for group in plan_output_groups(settings):
        details = []
        for output in group.outputs:
            measure = (measured or {}).get(output.path)
            if measure is None:
                details.append(
                    {
                        "outputFilePaths": [output.path],
                        "durationInMs": duration_ms,
                        "videoDetails": _video_details(output.settings),
                    }
                )
            else:
                details.append(
                    {
                        "outputFilePaths": list(measure.paths),
                        "durationInMs": measure.duration_ms,
                        "videoDetails": {"widthInPx": measure.width, "heightInPx": measure.height},
                    }
                )
        entry: dict[str, Any] = {"type": group.type, "outputDetails": details}
        if group.playlist is not None:
            entry = {"type": group.type, "playlistFilePaths": [group.playlist], "outputDetails": details}
        groups.append(entry)
    return groups
