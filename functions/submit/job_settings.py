"""The MediaConvert CreateJob request for one pipeline job: a pure function of the plan, no AWS here.

One MediaConvert job makes every QUEUED rendition, in the layout the Lambda engine uses (docs/CONTRACTS.md, "Keys"):

- `outputs/{jobId}/{rendition}.mp4`: one FILE_GROUP per rendition whose destination names the file
  (`s3://outputs/outputs/{jobId}/{rendition}`, no NameModifier). MediaConvert names a file group's outputs
  `<base><NameModifier>.<extension>`, the base being the destination's file part or else the input's name
  (`source`), so several outputs in one group could never be called exactly `{rendition}.mp4`.
- `outputs/{jobId}/hls/index.m3u8`: an HLS adaptive-bitrate package of the same ladder, one variant per
  rendition (`index_{rendition}.m3u8`, 6-second segments of whole GOPs).
- `outputs/{jobId}/thumbnails/thumb.NNNNNNN.jpg`: a frame every 10 s (at most 60) at the smallest rendition's size.

Every video output is H.264 High, QVBR capped at the rendition's `maxVideoBitrateKbps` (buffer twice that, like
the Lambda encoder's `-bufsize`), 2-second closed GOPs without scene-change keyframes (so renditions switch at the
same instants), square pixels, the source's frame rate; AAC stereo at the rendition's audio bitrate only when the
source has audio. `Rotate: AUTO` applies the source's display matrix, so the display-oriented plan comes out upright.
All of it is Basic-tier on-demand pricing (AVC, single pass): see the README's cost model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from functions.transcode.messages import EncodePlan

OUTPUT_PREFIX = "outputs/"
GOP_SECONDS = 2.0
HLS_SEGMENT_SECONDS = 6  # three GOPs
QVBR_QUALITY_LEVEL = 7
THUMBNAIL_INTERVAL_SECONDS = 10
MAX_THUMBNAILS = 60
THUMBNAIL_QUALITY = 80
AUDIO_SELECTOR = "Audio Selector 1"
AUDIO_SAMPLE_RATE = 48_000
STATUS_UPDATE_INTERVAL = "SECONDS_10"  # the shortest: progress shows even on short jobs
# What MediaConvert encodes: frames of 32 to 8192 pixels a side (VideoDescription Width/Height).
MIN_SIDE, MAX_SIDE = 32, 8192
MAX_CLIENT_REQUEST_TOKEN = 64


class UnsupportedByMediaConvert(ValueError):
    """The plan asks for something MediaConvert cannot make (a frame side outside 32-8192 pixels)."""


@dataclass(frozen=True)
class JobTarget:
    """Everything the request depends on besides the ladder."""

    job_id: str
    """The pipeline's job (a ULID); names the output folder and the request token."""
    stack: str
    """The stack, which the tracker's rule matches in `userMetadata.pipeline`."""
    source_bucket: str
    source_key: str
    outputs_bucket: str
    has_audio: bool
    """Whether the source has an audio stream (no audio selector or AAC otherwise)."""
    role_arn: str
    """The service role MediaConvert assumes to read the upload and write the outputs."""
    queue_arn: str
    """The stack's on-demand queue."""


def client_request_token(job_id: str) -> str:
    """MediaConvert's idempotency token: the same job ID asks for the same MediaConvert job."""
    if not job_id or len(job_id) > MAX_CLIENT_REQUEST_TOKEN or not job_id.isascii():
        raise ValueError(f"job id {job_id!r} cannot be a client request token (1-64 ASCII characters)")
    return job_id


def output_folder(outputs_bucket: str, job_id: str) -> str:
    """`s3://{bucket}/outputs/{jobId}/`, where every output of the job goes."""
    return f"s3://{outputs_bucket}/{OUTPUT_PREFIX}{job_id}/"


def _check_size(plan: EncodePlan) -> None:
    if not (MIN_SIDE <= plan.width <= MAX_SIDE and MIN_SIDE <= plan.height <= MAX_SIDE):
        raise UnsupportedByMediaConvert(
            f"rendition {plan.name} is {plan.width}x{plan.height}; MediaConvert encodes {MIN_SIDE} to {MAX_SIDE} "
            "pixels a side"
        )


def h264_video(plan: EncodePlan) -> dict[str, Any]:
    """The VideoDescription of one rendition (MP4 and HLS alike, so both packages carry the same encode)."""
    max_bitrate = plan.maxVideoBitrateKbps * 1000
    return {
        "Width": plan.width,
        "Height": plan.height,
        "ScalingBehavior": "DEFAULT",
        "CodecSettings": {
            "Codec": "H_264",
            "H264Settings": {
                "CodecProfile": "HIGH",
                "CodecLevel": "AUTO",
                "RateControlMode": "QVBR",
                "QvbrSettings": {"QvbrQualityLevel": QVBR_QUALITY_LEVEL},
                "MaxBitrate": max_bitrate,
                "HrdBufferSize": 2 * max_bitrate,
                "QualityTuningLevel": "SINGLE_PASS_HQ",
                "GopSize": GOP_SECONDS,
                "GopSizeUnits": "SECONDS",
                "GopClosedCadence": 1,
                "SceneChangeDetect": "DISABLED",
                "FramerateControl": "INITIALIZE_FROM_SOURCE",
                "ParControl": "SPECIFIED",
                "ParNumerator": 1,
                "ParDenominator": 1,
                "InterlaceMode": "PROGRESSIVE",
                "EntropyEncoding": "CABAC",
            },
        },
    }


def aac_audio(plan: EncodePlan) -> list[dict[str, Any]]:
    aac = {
        "Bitrate": plan.audioBitrateKbps * 1000,
        "CodecProfile": "LC",
        "CodingMode": "CODING_MODE_2_0",
        "RateControlMode": "CBR",
        "SampleRate": AUDIO_SAMPLE_RATE,
    }
    return [{"AudioSourceName": AUDIO_SELECTOR, "CodecSettings": {"Codec": "AAC", "AacSettings": aac}}]


def _av(plan: EncodePlan, has_audio: bool) -> dict[str, Any]:
    output: dict[str, Any] = {"VideoDescription": h264_video(plan)}
    if has_audio:
        output["AudioDescriptions"] = aac_audio(plan)
    return output


def _file_group(name: str, destination: str, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Name": name,
        "OutputGroupSettings": {"Type": "FILE_GROUP_SETTINGS", "FileGroupSettings": {"Destination": destination}},
        "Outputs": outputs,
    }


def mp4_groups(folder: str, plans: Sequence[EncodePlan], has_audio: bool) -> list[dict[str, Any]]:
    """One file group per rendition, writing `{folder}{rendition}.mp4` with the index first (fast start)."""
    container = {"Container": "MP4", "Mp4Settings": {"MoovPlacement": "PROGRESSIVE_DOWNLOAD"}}
    return [
        _file_group(
            f"MP4 {plan.name}",
            f"{folder}{plan.name}",
            [{"ContainerSettings": container, "Extension": "mp4", **_av(plan, has_audio)}],
        )
        for plan in plans
    ]


def hls_group(folder: str, plans: Sequence[EncodePlan], has_audio: bool) -> dict[str, Any]:
    """`{folder}hls/index.m3u8` with one variant per rendition, `index_{rendition}.m3u8`."""
    settings = {
        "Destination": f"{folder}hls/index",
        "SegmentLength": HLS_SEGMENT_SECONDS,
        "SegmentLengthControl": "GOP_MULTIPLE",
        "MinSegmentLength": 0,
        "SegmentControl": "SEGMENTED_FILES",
        "DirectoryStructure": "SINGLE_DIRECTORY",
        "ManifestDurationFormat": "INTEGER",
        "OutputSelection": "MANIFESTS_AND_SEGMENTS",
        "CodecSpecification": "RFC_4281",
        "StreamInfResolution": "INCLUDE",
        "ProgramDateTime": "EXCLUDE",
        "ClientCache": "ENABLED",
        "ManifestCompression": "NONE",
    }
    outputs = [
        {"NameModifier": f"_{plan.name}", "ContainerSettings": {"Container": "M3U8"}, **_av(plan, has_audio)}
        for plan in plans
    ]
    return {
        "Name": "HLS",
        "OutputGroupSettings": {"Type": "HLS_GROUP_SETTINGS", "HlsGroupSettings": settings},
        "Outputs": outputs,
    }


def thumbnail_group(folder: str, plans: Sequence[EncodePlan]) -> dict[str, Any]:
    """JPEG frame captures every THUMBNAIL_INTERVAL_SECONDS at the smallest rendition's size."""
    smallest = min(plans, key=lambda p: p.width * p.height)
    capture = {
        "FramerateNumerator": 1,
        "FramerateDenominator": THUMBNAIL_INTERVAL_SECONDS,
        "MaxCaptures": MAX_THUMBNAILS,
        "Quality": THUMBNAIL_QUALITY,
    }
    video = {
        "Width": smallest.width,
        "Height": smallest.height,
        "CodecSettings": {"Codec": "FRAME_CAPTURE", "FrameCaptureSettings": capture},
    }
    output = {"ContainerSettings": {"Container": "RAW"}, "Extension": "jpg", "VideoDescription": video}
    return _file_group("Thumbnails", f"{folder}thumbnails/thumb", [output])


def job_settings(target: JobTarget, plans: Sequence[EncodePlan]) -> dict[str, Any]:
    """CreateJob's `Settings`: the source as the one input, then MP4, HLS and thumbnail output groups."""
    if not plans:
        raise ValueError(f"job {target.job_id}: no QUEUED rendition to encode")
    for plan in plans:
        _check_size(plan)
    source: dict[str, Any] = {
        "FileInput": f"s3://{target.source_bucket}/{target.source_key}",
        "TimecodeSource": "ZEROBASED",
        "VideoSelector": {"Rotate": "AUTO"},
    }
    if target.has_audio:
        source["AudioSelectors"] = {AUDIO_SELECTOR: {"DefaultSelection": "DEFAULT"}}
    folder = output_folder(target.outputs_bucket, target.job_id)
    return {
        "TimecodeConfig": {"Source": "ZEROBASED"},
        "Inputs": [source],
        "OutputGroups": [
            *mp4_groups(folder, plans, target.has_audio),
            hls_group(folder, plans, target.has_audio),
            thumbnail_group(folder, plans),
        ],
    }


def create_job_request(target: JobTarget, plans: Sequence[EncodePlan]) -> dict[str, Any]:
    """The keyword arguments of `mediaconvert.create_job` for this job."""
    return {
        "Role": target.role_arn,
        "Queue": target.queue_arn,
        "ClientRequestToken": client_request_token(target.job_id),
        "StatusUpdateInterval": STATUS_UPDATE_INTERVAL,
        "UserMetadata": {"jobId": target.job_id, "pipeline": target.stack},
        "Settings": job_settings(target, plans),
    }
