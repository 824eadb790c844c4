"""What of a MediaConvert job's settings the local stand-in honours, read into plain specs; the rest is refused.

The stand-in makes exactly what the settings ask for, or refuses the job at CreateJob (BadRequestException, naming the
setting), so a local run never silently differs from what MediaConvert would write. Honoured:

- one input, `s3://bucket/key`; `VideoSelector.Rotate` `AUTO` (apply the display matrix) or `DEGREE_0` (the default:
  ignore it); audio selectors choosing the default track;
- `FILE_GROUP` outputs in MP4 (H.264 + optional AAC, index first); any other output group type
  (`HLS_GROUP_SETTINGS`, `DASH_ISO_GROUP_SETTINGS`, ...), container or codec (`FRAME_CAPTURE` in `RAW`, ...) is refused;
- H.264: profile BASELINE/MAIN/HIGH, rate control QVBR (x264 CRF from the quality level, capped by MaxBitrate and the
  HRD buffer), CBR or VBR, GOP size in seconds or frames, scene-change keyframes on or off, frame rate from the source
  or specified, pixel aspect ratio from the source or specified, scaling DEFAULT (fit, then pad) or STRETCH_TO_OUTPUT;
- AAC LC at the given bitrate, sample rate and channels (1.0 or 2.0).

Settings that do not change what a player reads (queue-side options, quality tuning, which only trades encode time)
are accepted without effect; their names are listed in `_ACCEPTED`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from local.mediaconvert.outputs.naming import FILE_GROUP_SETTINGS, PlannedOutput, plan_output_groups


class SettingsNotHonoured(ValueError):
    """The local stand-in cannot make what these settings ask for (answered as BadRequestException)."""


@dataclass(frozen=True)
class InputSpec:
    uri: str
    bucket: str
    key: str
    auto_rotate: bool
    audio_selectors: tuple[str, ...]


@dataclass(frozen=True)
class VideoSpec:
    width: int | None
    height: int | None
    stretch: bool
    """STRETCH_TO_OUTPUT; otherwise DEFAULT: scale to fit, keeping the aspect ratio, and pad."""
    profile: str
    """x264's profile name: baseline, main or high."""
    rate_control: str
    quality_level: int | None
    bitrate: int | None
    max_bitrate: int | None
    buffer_size: int | None
    gop_size: float
    gop_in_frames: bool
    scene_change_keyframes: bool
    frame_rate: tuple[int, int] | None
    """FramerateNumerator/Denominator when specified; None keeps the source's."""
    pixel_aspect: tuple[int, int] | None
    """ParNumerator/Denominator when specified; None keeps the source's."""


@dataclass(frozen=True)
class AudioSpec:
    bitrate: int
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class OutputSpec:
    planned: PlannedOutput
    video: VideoSpec
    audio: AudioSpec | None = None

    @property
    def encode_key(self) -> tuple[VideoSpec, AudioSpec | None]:
        """Outputs with the same key carry the same encode: it is made once and written under each name."""
        return self.video, self.audio


@dataclass(frozen=True)
class JobSpec:
    input: InputSpec
    outputs: tuple[OutputSpec, ...]


# Members accepted without a local effect, by the structure that holds them.
_ACCEPTED = {
    "Settings": {"TimecodeConfig"},
    "Input": {"TimecodeSource"},
    "H264Settings": {"CodecLevel", "QualityTuningLevel", "GopClosedCadence", "InterlaceMode", "EntropyEncoding"},
    "AacSettings": {"CodecProfile", "RateControlMode"},
}
# Values of accepted members that do change the result, and are therefore refused.
_REQUIRED_VALUES = {
    ("H264Settings", "CodecLevel"): {"AUTO"},
    ("H264Settings", "InterlaceMode"): {"PROGRESSIVE"},
    ("H264Settings", "EntropyEncoding"): {"CABAC"},
    ("AacSettings", "CodecProfile"): {"LC"},
    ("AacSettings", "RateControlMode"): {"CBR"},
}
_PROFILES = {"BASELINE": "baseline", "MAIN": "main", "HIGH": "high"}
_CHANNELS = {"CODING_MODE_1_0": 1, "CODING_MODE_2_0": 2}
DEFAULT_QVBR_LEVEL = 7


def _only(where: str, kind: str, value: dict[str, Any], handled: set[str]) -> None:
    """Refuses members this module neither applies nor accepts without effect."""
    accepted = _ACCEPTED.get(kind, set())
    for key, item in value.items():
        if key not in handled and key not in accepted:
            raise SettingsNotHonoured(f"{where}.{key} is not emulated by the local MediaConvert")
        allowed = _REQUIRED_VALUES.get((kind, key))
        if allowed is not None and item not in allowed:
            raise SettingsNotHonoured(f"{where}.{key} {item!r} is not emulated locally (only {sorted(allowed)})")


def _input(settings: dict[str, Any]) -> InputSpec:
    inputs = settings.get("Inputs") or []
    if len(inputs) != 1:
        raise SettingsNotHonoured(f"the local MediaConvert encodes exactly one input, not {len(inputs)}")
    source = inputs[0]
    _only("Inputs[0]", "Input", source, {"FileInput", "VideoSelector", "AudioSelectors"})
    uri = str(source.get("FileInput") or "")
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise SettingsNotHonoured(f"Inputs[0].FileInput {uri!r}: the local MediaConvert reads s3://bucket/key only")
    selector = source.get("VideoSelector") or {}
    _only("Inputs[0].VideoSelector", "VideoSelector", selector, {"Rotate"})
    rotate = selector.get("Rotate", "DEGREE_0")
    if rotate not in ("AUTO", "DEGREE_0"):
        raise SettingsNotHonoured(f"Inputs[0].VideoSelector.Rotate {rotate!r} is not emulated (AUTO or DEGREE_0)")
    for name, audio in (source.get("AudioSelectors") or {}).items():
        _only(f"Inputs[0].AudioSelectors[{name!r}]", "AudioSelector", audio, {"DefaultSelection"})
    return InputSpec(
        uri=uri,
        bucket=parts.netloc,
        key=parts.path.lstrip("/"),
        auto_rotate=rotate == "AUTO",
        audio_selectors=tuple(source.get("AudioSelectors") or {}),
    )


def _video(where: str, description: dict[str, Any]) -> VideoSpec:
    _only(where, "VideoDescription", description, {"Width", "Height", "ScalingBehavior", "CodecSettings"})
    scaling = description.get("ScalingBehavior", "DEFAULT")
    if scaling not in ("DEFAULT", "STRETCH_TO_OUTPUT"):
        raise SettingsNotHonoured(f"{where}.ScalingBehavior {scaling!r} is not emulated (DEFAULT, STRETCH_TO_OUTPUT)")
    codec = description.get("CodecSettings") or {}
    if codec.get("Codec") != "H_264":
        raise SettingsNotHonoured(f"{where}: codec {codec.get('Codec')!r} is not emulated (H_264)")
    _only(f"{where}.CodecSettings", "CodecSettings", codec, {"Codec", "H264Settings"})
    h264 = codec.get("H264Settings") or {}
    handled = {
        "CodecProfile",
        "RateControlMode",
        "QvbrSettings",
        "Bitrate",
        "MaxBitrate",
        "HrdBufferSize",
        "GopSize",
        "GopSizeUnits",
        "SceneChangeDetect",
        "FramerateControl",
        "FramerateNumerator",
        "FramerateDenominator",
        "ParControl",
        "ParNumerator",
        "ParDenominator",
    }
    path = f"{where}.CodecSettings.H264Settings"
    _only(path, "H264Settings", h264, handled)
    profile = h264.get("CodecProfile", "MAIN")
    if profile not in _PROFILES:
        raise SettingsNotHonoured(f"{path}.CodecProfile {profile!r} is not emulated ({sorted(_PROFILES)})")
    rate_control = h264.get("RateControlMode", "CBR")
    if rate_control not in ("QVBR", "CBR", "VBR"):
        raise SettingsNotHonoured(f"{path}.RateControlMode {rate_control!r} is not emulated")
    if rate_control == "QVBR" and not h264.get("MaxBitrate"):
        raise SettingsNotHonoured(f"{path}: QVBR needs MaxBitrate")
    if rate_control in ("CBR", "VBR") and not h264.get("Bitrate"):
        raise SettingsNotHonoured(f"{path}: {rate_control} needs Bitrate")
    units = h264.get("GopSizeUnits", "FRAMES")
    if units not in ("FRAMES", "SECONDS"):
        raise SettingsNotHonoured(f"{path}.GopSizeUnits {units!r} is not emulated (FRAMES, SECONDS)")
    frame_rate = None
    if h264.get("FramerateControl") == "SPECIFIED":
        frame_rate = (int(h264["FramerateNumerator"]), int(h264["FramerateDenominator"]))
    pixel_aspect = None
    if h264.get("ParControl") == "SPECIFIED":
        pixel_aspect = (int(h264["ParNumerator"]), int(h264["ParDenominator"]))
    return VideoSpec(
        width=description.get("Width"),
        height=description.get("Height"),
        stretch=scaling == "STRETCH_TO_OUTPUT",
        profile=_PROFILES[profile],
        rate_control=rate_control,
        quality_level=(h264.get("QvbrSettings") or {}).get("QvbrQualityLevel", DEFAULT_QVBR_LEVEL),
        bitrate=h264.get("Bitrate"),
        max_bitrate=h264.get("MaxBitrate"),
        buffer_size=h264.get("HrdBufferSize"),
        gop_size=float(h264.get("GopSize") or 90),
        gop_in_frames=units == "FRAMES",
        scene_change_keyframes=h264.get("SceneChangeDetect", "ENABLED") != "DISABLED",
        frame_rate=frame_rate,
        pixel_aspect=pixel_aspect,
    )


def _audio(where: str, descriptions: list[dict[str, Any]], source: InputSpec) -> AudioSpec | None:
    if not descriptions:
        return None
    if len(descriptions) > 1:
        raise SettingsNotHonoured(f"{where}: the local MediaConvert writes at most one audio track per output")
    description = descriptions[0]
    path = f"{where}[0]"
    _only(path, "AudioDescription", description, {"AudioSourceName", "CodecSettings"})
    selector = description.get("AudioSourceName", "Audio Selector 1")
    if selector not in source.audio_selectors:
        raise SettingsNotHonoured(f"{path}.AudioSourceName {selector!r} names no audio selector of the input")
    codec = description.get("CodecSettings") or {}
    if codec.get("Codec") != "AAC":
        raise SettingsNotHonoured(f"{path}: codec {codec.get('Codec')!r} is not emulated (AAC)")
    _only(f"{path}.CodecSettings", "AudioCodecSettings", codec, {"Codec", "AacSettings"})
    aac = codec.get("AacSettings") or {}
    _only(f"{path}.CodecSettings.AacSettings", "AacSettings", aac, {"Bitrate", "SampleRate", "CodingMode"})
    mode = aac.get("CodingMode", "CODING_MODE_2_0")
    if mode not in _CHANNELS:
        raise SettingsNotHonoured(f"{path}: CodingMode {mode!r} is not emulated ({sorted(_CHANNELS)})")
    return AudioSpec(
        bitrate=int(aac.get("Bitrate") or 96_000),
        sample_rate=int(aac.get("SampleRate") or 48_000),
        channels=_CHANNELS[mode],
    )


def _output(where: str, planned: PlannedOutput, source: InputSpec) -> OutputSpec:
    settings = planned.settings
    _only(
        where,
        "Output",
        settings,
        {"ContainerSettings", "Extension", "NameModifier", "VideoDescription", "AudioDescriptions"},
    )
    if "%" in planned.name:
        raise SettingsNotHonoured(f"{where}: output names with '%' are not emulated locally ({planned.name!r})")
    if "VideoDescription" not in settings:
        raise SettingsNotHonoured(f"{where}: the local MediaConvert writes outputs with video only")
    # The codec first: a frame capture (FRAME_CAPTURE in a RAW container) is refused by its codec's name.
    video = _video(f"{where}.VideoDescription", settings["VideoDescription"])
    container_settings = settings.get("ContainerSettings") or {}
    container = container_settings.get("Container")
    _only(f"{where}.ContainerSettings", "FileContainerSettings", container_settings, {"Container", "Mp4Settings"})
    if container != "MP4":
        raise SettingsNotHonoured(f"{where}: file container {container!r} is not emulated (MP4)")
    mp4 = container_settings.get("Mp4Settings") or {}
    _only(f"{where}.ContainerSettings.Mp4Settings", "Mp4Settings", mp4, {"MoovPlacement"})
    if mp4.get("MoovPlacement", "PROGRESSIVE_DOWNLOAD") != "PROGRESSIVE_DOWNLOAD":
        raise SettingsNotHonoured(f"{where}: MoovPlacement {mp4['MoovPlacement']!r} is not emulated")
    return OutputSpec(
        planned=planned,
        video=video,
        audio=_audio(f"{where}.AudioDescriptions", settings.get("AudioDescriptions") or [], source),
    )


def read_job_settings(settings: dict[str, Any]) -> JobSpec:
    """The job as the stand-in will run it; raises SettingsNotHonoured naming the first setting it cannot honour."""
    _only("Settings", "Settings", settings, {"Inputs", "OutputGroups"})
    source = _input(settings)
    for index, group in enumerate(settings.get("OutputGroups") or []):
        where = f"OutputGroups[{index}]"
        _only(where, "OutputGroup", group, {"Name", "OutputGroupSettings", "Outputs"})
        group_settings = group.get("OutputGroupSettings") or {}
        kind = group_settings.get("Type")
        if kind != FILE_GROUP_SETTINGS:
            raise SettingsNotHonoured(f"{where}: {kind} is not emulated (only {FILE_GROUP_SETTINGS})")
        _only(f"{where}.OutputGroupSettings", "OutputGroupSettings", group_settings, {"Type", "FileGroupSettings"})
        if not (group_settings.get("FileGroupSettings") or {}).get("Destination"):
            raise SettingsNotHonoured(f"{where}: the local MediaConvert needs a Destination")
    groups = plan_output_groups(settings)
    if not groups:
        raise SettingsNotHonoured("the job has no output group")
    outputs: list[OutputSpec] = []
    for index, group in enumerate(groups):
        where = f"OutputGroups[{index}]"
        _only(f"{where}.OutputGroupSettings.FileGroupSettings", "FileGroupSettings", group.settings, {"Destination"})
        for position, planned in enumerate(group.outputs):
            outputs.append(_output(f"{where}.Outputs[{position}]", planned, source))
        if not group.outputs:
            raise SettingsNotHonoured(f"{where} has no output")
    for group in groups:
        parts = urlsplit(group.base)
        if parts.scheme != "s3" or not parts.netloc:
            raise SettingsNotHonoured(f"destination {group.base!r}: the local MediaConvert writes to s3://bucket/ only")
    return JobSpec(input=source, outputs=tuple(outputs))
