"""Where MediaConvert writes a job's outputs, by the service's naming rules, and how its COMPLETE event lists them.

- A file group's output is `<base><NameModifier>.<extension>`. The base is the destination's file part, or the
  input's file name without its extension when the destination ends in `/`.
- The COMPLETE event's `outputGroupDetails` has one `FILE_GROUP` entry per file group, with its outputs' paths.

The tests' fake service and the local cloud's stand-in both name outputs with this module, so they cannot disagree.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CONTAINER_EXTENSIONS = {"MP4": "mp4"}
FILE_GROUP_SETTINGS = "FILE_GROUP_SETTINGS"
FILE_GROUP = "FILE_GROUP"


@dataclass(frozen=True)
class PlannedOutput:
    """One output of one file group, with the name MediaConvert gives it."""

    name: str
    """`s3://bucket/key` without the extension: `<base><NameModifier>`."""
    extension: str
    settings: dict[str, Any]
    """The output's settings as CreateJob received them (member names)."""

    @property
    def path(self) -> str:
        """The output's file."""
        return f"{self.name}.{self.extension}"


@dataclass(frozen=True)
class PlannedGroup:
    base: str
    """`s3://bucket/key` prefix every output name starts with."""
    settings: dict[str, Any]
    """FileGroupSettings."""
    outputs: tuple[PlannedOutput, ...]


def _base(destination: str, input_uri: str) -> str:
    """A destination ending in '/' takes the input's file name (without extension) as the base name."""
    if destination.endswith("/"):
        return destination + posixpath.splitext(posixpath.basename(urlsplit(input_uri).path))[0]
    return destination


def _extension(output: dict[str, Any]) -> str:
    container = (output.get("ContainerSettings") or {}).get("Container", "")
    return str(output.get("Extension") or CONTAINER_EXTENSIONS.get(container, container.lower()))


def plan_output_groups(settings: dict[str, Any]) -> list[PlannedGroup]:
    """Every FILE_GROUP of the job settings with its outputs' names; other group types are skipped."""
    input_uri = settings["Inputs"][0]["FileInput"]
    groups: list[PlannedGroup] = []
    for group in settings["OutputGroups"]:
        group_settings = group["OutputGroupSettings"]
        if group_settings["Type"] != FILE_GROUP_SETTINGS:
            continue
        specific = group_settings["FileGroupSettings"]
        base = _base(specific["Destination"], input_uri)
        outputs = tuple(
            PlannedOutput(name=base + output.get("NameModifier", ""), extension=_extension(output), settings=output)
            for output in group["Outputs"]
        )
        groups.append(PlannedGroup(base=base, settings=specific, outputs=outputs))
    return groups


@dataclass(frozen=True)
class OutputMeasure:
    """What the COMPLETE event says about an output that was written."""

    duration_ms: int
    width: int
    height: int


def _detail(output: PlannedOutput, duration_ms: int, measure: OutputMeasure | None) -> dict[str, Any]:
    if measure is None:
        video = output.settings.get("VideoDescription") or {}
        measure = OutputMeasure(duration_ms, video.get("Width", 0), video.get("Height", 0))
    return {
        "outputFilePaths": [output.path],
        "durationInMs": measure.duration_ms,
        "videoDetails": {"widthInPx": measure.width, "heightInPx": measure.height},
    }


def output_group_details(
    settings: dict[str, Any], duration_ms: int, measured: Mapping[str, OutputMeasure] | None = None
) -> list[dict[str, Any]]:
    """`outputGroupDetails` of a COMPLETE event for these job settings.

    Outputs found in `measured` (keyed by `PlannedOutput.path`) report what was written; the others the settings'
    frame size and `duration_ms`.
    """
    return [
        {
            "type": FILE_GROUP,
            "outputDetails": [
                _detail(output, duration_ms, (measured or {}).get(output.path)) for output in group.outputs
            ],
        }
        for group in plan_output_groups(settings)
    ]
