"""The MediaConvert job settings against the real service's contract: botocore's API model, MediaConvert's naming rules,
the fixtures of real events, and the tracker that reads the events back."""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pytest

from functions.common import job_state
from functions.common.renditions import DEFAULT_RENDITIONS, Rendition
from functions.contracts.fanout import EncodePlan, FanOutMessage
from functions.contracts.jobs import JobRecord, PlaybackRecord
from functions.contracts.playback import PackagingStatus
from functions.submit.service import (
    JobTarget,
    UnsupportedByMediaConvert,
    client_request_token,
    create_job_request,
    encode_plans,
)
from functions.tracker import service as tracker
from tests.fixtures import MEDIACONVERT_FIXTURES
from tests.functions.playback_samples import complete_playback
from tests.functions.submit.conftest import processing_job as _processing_job
from tests.functions.submit.mediaconvert_service import create_job_errors, output_group_details, state_change_event

JOB_ID = "01JDEMO0000000000000000000"
NOW = 1_795_000_000_000
ROLE = "arn:aws:iam::123456789012:role/mediaconvert-service-role"
QUEUE = "arn:aws:mediaconvert:us-east-1:123456789012:queues/mediaconvert-jobs"
SD = Rendition(name="480p", height=480, maxVideoBitrateKbps=1200, audioBitrateKbps=96)
UHD = Rendition(name="2160p", height=2160, maxVideoBitrateKbps=16000, audioBitrateKbps=192)


@dataclass(frozen=True)
class Config:
    """A source and a ladder, as ingest would plan and fan them out."""

    width: int
    height: int
    has_audio: bool = True
    ladder: tuple[Rendition, ...] = DEFAULT_RENDITIONS


CONFIGS = {
    "default-ladder": Config(1920, 1080),
    "480p-added": Config(1920, 1080, ladder=(SD, *DEFAULT_RENDITIONS)),
    "no-audio": Config(1920, 1080, has_audio=False),
    "portrait": Config(1080, 1920),
    "portrait-no-audio-480p": Config(1080, 1920, has_audio=False, ladder=(SD, *DEFAULT_RENDITIONS)),
    "small-source-kept-at-its-size": Config(640, 360),
    "4k-ladder": Config(3840, 2160, ladder=(*DEFAULT_RENDITIONS, UHD)),
    "odd-aspect": Config(1442, 1080),
}


def processing_job(config: Config) -> JobRecord:
    """A job ingest accepted for the MediaConvert engine, with the plan ingest makes for this source."""
    return _processing_job(
        job_id=JOB_ID,
        owner_id="owner-1",
        width=config.width,
        height=config.height,
        has_audio=config.has_audio,
        ladder=config.ladder,
        duration_ms=10_000,
    )


def request_for(config: Config, outputs_bucket: str = "dev-outputs") -> tuple[dict[str, Any], list[EncodePlan]]:
    """The CreateJob request the submit function sends for the fan-out message of this config."""
    published = FanOutMessage.for_job(
        processing_job(config), bucket="dev-uploads", key=f"uploads/{JOB_ID}/source", etag="e"
    )
    message = FanOutMessage.model_validate_json(published.body())
    plans = encode_plans(message)
    target = JobTarget(
        job_id=JOB_ID,
        stack="dev",
        source_bucket=message.source.bucket,
        source_key=message.source.key,
        outputs_bucket=outputs_bucket,
        has_audio=message.probe.hasAudio,
        role_arn=ROLE,
        queue_arn=QUEUE,
    )
    return create_job_request(target, plans), plans


# --- the API model -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_every_settings_document_validates_against_the_mediaconvert_model(config: Config) -> None:
    request, plans = request_for(config)

    assert create_job_errors(request) == []
    assert plans  # something was planned, so the document has outputs


def _path(document: dict[str, Any], *keys: str | int) -> tuple[dict[str, Any], str | int]:
    node: Any = document
    for key in keys[:-1]:
        node = node[key]
    return node, keys[-1]


H264 = ("Settings", "OutputGroups", 0, "Outputs", 0, "VideoDescription", "CodecSettings", "H264Settings")
VIDEO = ("Settings", "OutputGroups", 0, "Outputs", 0, "VideoDescription")


@pytest.mark.parametrize(
    ("keys", "value", "complaint"),
    [
        (("Settings", "Inputs", 0, "FileInputs"), "s3://b/k", "Unknown parameter"),  # misspelt key
        ((*VIDEO, "Width"), "1280", "Invalid type"),  # a string where an integer belongs
        ((*H264, "RateControlMode"), "CRF", "is not one of"),  # not in the enum
        ((*H264, "QvbrSettings", "QvbrQualityLevel"), 11, "> max 10"),
        ((*VIDEO, "Height"), 16, "< min 32"),
        (
            ("Settings", "OutputGroups", 0, "OutputGroupSettings", "FileGroupSettings", "Destination"),
            "outputs/x",
            "^s3",
        ),
        (("StatusUpdateInterval",), "SECONDS_5", "is not one of"),
        (("Priority",), 51, "> max 50"),
    ],
)
def test_a_deliberately_wrong_document_fails(keys: tuple[str | int, ...], value: Any, complaint: str) -> None:
    request, _ = request_for(CONFIGS["default-ladder"])
    node, last = _path(request, *keys)
    node[last] = value

    errors = create_job_errors(request)

    assert any(complaint in error for error in errors), errors


def test_a_missing_required_member_fails() -> None:
    request, _ = request_for(CONFIGS["default-ladder"])
    del request["Role"]

    assert any("Role" in error for error in create_job_errors(request))


@pytest.mark.parametrize(("width", "height"), [(16, 16), (30, 32), (8194, 4320)])
def test_frames_mediaconvert_cannot_encode_are_refused_before_submission(width: int, height: int) -> None:
    target = JobTarget(JOB_ID, "dev", "up", "uploads/x/source", "out", True, ROLE, QUEUE)
    with pytest.raises(UnsupportedByMediaConvert, match="32 to 8192"):
        create_job_request(target, [EncodePlan("720p", width, height, 3000, 128)])


def test_the_request_token_is_the_job_id_and_must_fit_mediaconvert() -> None:
    assert client_request_token(JOB_ID) == JOB_ID
    for bad in ("", "x" * 65, "jöb"):
        with pytest.raises(ValueError, match="client request token"):
            client_request_token(bad)


def test_each_attempt_has_a_request_token_of_its_own_within_mediaconverts_limit() -> None:
    assert [client_request_token(JOB_ID, attempt) for attempt in (1, 2, 12)] == [
        JOB_ID,
        f"{JOB_ID}-a2",
        f"{JOB_ID}-a12",
    ]
    with pytest.raises(ValueError, match="client request token"):
        client_request_token("x" * 62, 2)  # 62 characters fit alone, not with "-a2"


def test_a_later_attempt_is_named_in_the_user_metadata_as_a_string() -> None:
    first = JobTarget(JOB_ID, "dev", "up", f"uploads/{JOB_ID}/validated", "out", True, ROLE, QUEUE)
    second = dataclasses.replace(first, attempt=2)
    plans = [EncodePlan("720p", 1280, 720, 3000, 128)]

    assert create_job_request(first, plans)["UserMetadata"] == {"jobId": JOB_ID, "pipeline": "dev"}
    request = create_job_request(second, plans)
    assert request["UserMetadata"] == {"jobId": JOB_ID, "pipeline": "dev", "attempt": "2"}
    assert request["ClientRequestToken"] == f"{JOB_ID}-a2"
    assert create_job_errors(request) == []


# --- what the settings say -------------------------------------------------------------------------------------


def _groups(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {group["Name"]: group for group in request["Settings"]["OutputGroups"]}


def test_the_request_names_the_job_the_stack_the_queue_and_the_role() -> None:
    request, _ = request_for(CONFIGS["default-ladder"])

    assert {k: request[k] for k in ("Role", "Queue", "ClientRequestToken", "StatusUpdateInterval", "UserMetadata")} == {
        "Role": ROLE,
        "Queue": QUEUE,
        "ClientRequestToken": JOB_ID,
        "StatusUpdateInterval": "SECONDS_10",
        "UserMetadata": {"jobId": JOB_ID, "pipeline": "dev"},
    }
    assert request["Settings"]["Inputs"] == [
        {
            "FileInput": f"s3://dev-uploads/uploads/{JOB_ID}/source",
            "TimecodeSource": "ZEROBASED",
            "VideoSelector": {"Rotate": "AUTO"},
            "AudioSelectors": {"Audio Selector 1": {"DefaultSelection": "DEFAULT"}},
        }
    ]


def test_each_rendition_is_one_mp4_file_group_and_nothing_else_is_made() -> None:
    request, _ = request_for(CONFIGS["480p-added"])
    groups = _groups(request)
    folder = f"s3://dev-outputs/outputs/{JOB_ID}/"

    assert list(groups) == ["MP4 480p", "MP4 720p", "MP4 1080p"]  # no HLS group, no frame captures: the packager's
    for name, size, kbps, audio_kbps in [
        ("480p", (854, 480), 1200, 96),
        ("720p", (1280, 720), 3000, 128),
        ("1080p", (1920, 1080), 6000, 160),
    ]:
        group = groups[f"MP4 {name}"]
        (mp4,) = group["Outputs"]
        assert group["OutputGroupSettings"] == {
            "Type": "FILE_GROUP_SETTINGS",
            "FileGroupSettings": {"Destination": f"{folder}{name}"},
        }
        assert "NameModifier" not in mp4
        assert mp4["ContainerSettings"] == {
            "Container": "MP4",
            "Mp4Settings": {"MoovPlacement": "PROGRESSIVE_DOWNLOAD"},
        }
        video = mp4["VideoDescription"]
        assert (video["Width"], video["Height"]) == size
        h264 = video["CodecSettings"]["H264Settings"]
        assert (h264["RateControlMode"], h264["MaxBitrate"], h264["HrdBufferSize"]) == (
            "QVBR",
            kbps * 1000,
            kbps * 2000,
        )
        assert (h264["CodecProfile"], h264["GopSize"], h264["GopSizeUnits"]) == ("HIGH", 2.0, "SECONDS")
        assert (h264["GopClosedCadence"], h264["SceneChangeDetect"]) == (1, "DISABLED")
        assert h264["QualityTuningLevel"] != "MULTI_PASS_HQ"  # Basic tier
        (audio,) = mp4["AudioDescriptions"]
        assert audio["CodecSettings"]["AacSettings"]["Bitrate"] == audio_kbps * 1000
        assert audio["CodecSettings"]["AacSettings"]["CodingMode"] == "CODING_MODE_2_0"


def test_a_source_without_audio_gets_no_audio_selector_and_no_aac() -> None:
    request, _ = request_for(CONFIGS["no-audio"])

    assert "AudioSelectors" not in request["Settings"]["Inputs"][0]
    for group in request["Settings"]["OutputGroups"]:
        assert all("AudioDescriptions" not in output for output in group["Outputs"]), group["Name"]


def test_only_queued_renditions_are_encoded_at_their_planned_display_size() -> None:
    request, _ = request_for(Config(1080, 1920, ladder=(*DEFAULT_RENDITIONS, UHD)))  # 2160p is SKIPPED
    groups = _groups(request)

    assert list(groups) == ["MP4 720p", "MP4 1080p"]
    sizes = [
        (g["Outputs"][0]["VideoDescription"]["Width"], g["Outputs"][0]["VideoDescription"]["Height"])
        for g in groups.values()
    ]
    assert sizes == [(720, 1280), (1080, 1920)]  # portrait stays portrait


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_mediaconvert_makes_only_the_mp4s_never_an_hls_package_or_frame_captures(config: Config) -> None:
    """The packager makes HLS, the poster and the thumbnails from the MP4s for both engines (contracts/playback.py)."""
    request, plans = request_for(config)
    groups = request["Settings"]["OutputGroups"]

    assert [g["OutputGroupSettings"]["Type"] for g in groups] == ["FILE_GROUP_SETTINGS"] * len(plans)
    outputs = [output for group in groups for output in group["Outputs"]]
    assert [o["ContainerSettings"]["Container"] for o in outputs] == ["MP4"] * len(plans)
    assert {o["VideoDescription"]["CodecSettings"]["Codec"] for o in outputs} == {"H_264"}
    destinations = [g["OutputGroupSettings"]["FileGroupSettings"]["Destination"] for g in groups]
    assert destinations == [f"s3://dev-outputs/outputs/{JOB_ID}/{plan.name}" for plan in plans]
    assert not any("/hls" in d or "/thumbnails" in d for d in destinations)


# --- the events the settings produce, read back by the tracker ------------------------------------------------


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((MEDIACONVERT_FIXTURES / f"{name}.json").read_text())


def test_the_fixtures_name_files_exactly_as_these_settings_do() -> None:
    request, _ = request_for(CONFIGS["default-ladder"], outputs_bucket="dev-outputs")
    fixture = _fixture("complete")["detail"]["outputGroupDetails"]
    ours = output_group_details(request["Settings"], duration_ms=10_000)

    def paths(groups: list[dict[str, Any]], kind: str) -> set[str]:
        found = {p for g in groups if g["type"] == kind for d in g["outputDetails"] for p in d["outputFilePaths"]}
        return found | {p for g in groups if g["type"] == kind for p in g.get("playlistFilePaths", [])}

    assert paths(ours, "FILE_GROUP") == paths(fixture, "FILE_GROUP")
    assert {g["type"] for g in ours} == {"FILE_GROUP"}
    # the fixture is a real event of a job that also had an HLS group; the tracker ignores that group
    assert paths(fixture, "HLS_GROUP") == {f"s3://dev-outputs/outputs/{JOB_ID}/hls/index.m3u8"} | {
        f"s3://dev-outputs/outputs/{JOB_ID}/hls/index_{name}.m3u8" for name in ("720p", "1080p")
    }


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_a_complete_event_built_from_the_settings_completes_every_rendition_and_asks_for_the_package(
    config: Config,
) -> None:
    request, plans = request_for(config)
    event = state_change_event(request, "COMPLETE", mediaconvert_job_id="1795000000000-abc123")
    change = tracker.parse_job_state_change(event["detail"])
    job = processing_job(config)

    transition = tracker.mediaconvert_transition(change, now=NOW + 1, sizes={})
    assert transition is not None
    asking = transition(copy.deepcopy(job))

    assert asking is not None and asking.status == "PROCESSING"
    assert asking.playback == PlaybackRecord(status=PackagingStatus.QUEUED, requestedAt=NOW + 1)
    assert asking.hls is None
    for plan in plans:
        rendition = asking.renditions[plan.name]
        assert rendition.status == "COMPLETED", plan.name
        assert (rendition.bucket, rendition.key) == ("dev-outputs", f"outputs/{JOB_ID}/{plan.name}.mp4")
        assert (rendition.width, rendition.height, rendition.engine) == (
            plan.width,
            plan.height,
            "mediaconvert",
        )
    assert {r.name for r in asking.renditions_in_order() if r.status == "COMPLETED"} == {p.name for p in plans}
    request_detail = tracker.packaging_request(asking)
    assert [(s.rendition, s.key, s.width, s.height) for s in request_detail.renditions] == [
        (plan.name, f"outputs/{JOB_ID}/{plan.name}.mp4", plan.width, plan.height) for plan in plans
    ]
    assert [r.name for r in job_state.packaging_sources(asking)] == [plan.name for plan in plans]  # ladder order
    assert complete_playback(asking, now=NOW + 2).status == "COMPLETED"


def test_hls_variants_and_frame_captures_in_a_complete_event_are_not_taken_for_renditions() -> None:
    # GIVEN a COMPLETE event of these settings, plus the groups a job of an earlier release also made
    request, _ = request_for(CONFIGS["default-ladder"])
    detail = state_change_event(request, "COMPLETE", mediaconvert_job_id="m")["detail"]
    legacy = [g for g in _fixture("complete")["detail"]["outputGroupDetails"] if g["type"] == "HLS_GROUP"]
    captures = {
        "type": "FILE_GROUP",
        "outputDetails": [
            {
                "outputFilePaths": [f"s3://dev-outputs/outputs/{JOB_ID}/thumbnails/thumb.0000000.jpg"],
                "durationInMs": 10_000,
                "videoDetails": {"widthInPx": 1280, "heightInPx": 720},
            }
        ],
    }
    detail["outputGroupDetails"] += [*legacy, captures]
    assert len(legacy) == 1

    change = tracker.parse_job_state_change(detail)

    # THEN only the MP4s are renditions, and the job asks for its package without recording an HLS master
    assert sorted(o.rendition for o in tracker.rendition_outputs(change)) == ["1080p", "720p"]
    transition = tracker.mediaconvert_transition(change, now=NOW + 1, sizes={})
    assert transition is not None
    asking = transition(processing_job(CONFIGS["default-ladder"]))
    assert asking is not None
    assert (asking.status, asking.hls, asking.playback.status) == ("PROCESSING", None, PackagingStatus.QUEUED)
