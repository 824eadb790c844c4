"""The local MediaConvert stand-in on its own, in this process: boto3's real MediaConvert client against its endpoint,
a moto server for S3 and EventBridge, real ffmpeg. Events are read from an SQS queue a default-bus rule feeds, matched
by the pattern the program's tracker rule uses."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.common.media_tools import ffmpeg_path
from functions.contracts.fanout import EncodePlan
from functions.submit.service import JobTarget, create_job_request
from functions.tracker import service as tracker_view
from local.engine.emulator import ACCOUNT_ID, FAKE_CREDENTIALS, Emulator
from local.mediaconvert.jobs import JobStore
from local.mediaconvert.outputs.ffmpeg import FfmpegFailed, output_size, qvbr_crf, run_ffmpeg
from local.mediaconvert.service import MediaConvertStandIn, StandInOptions
from local.mediaconvert.settings import read_job_settings
from local.runtime.clock import LocalClock
from tests.fixtures import MEDIACONVERT_FIXTURES
from tests.media_samples import make_video, probe

pytestmark = pytest.mark.media

FIXTURES = MEDIACONVERT_FIXTURES
REGION = "us-east-1"
PLANS = [
    EncodePlan(name="240p", width=426, height=240, maxVideoBitrateKbps=400, audioBitrateKbps=64),
    EncodePlan(name="360p", width=640, height=360, maxVideoBitrateKbps=800, audioBitrateKbps=96),
]
FINISHED = ("COMPLETE", "ERROR", "CANCELED")
ORDER = {"PROGRESSING": 0, "INPUT_INFORMATION": 1, "STATUS_UPDATE": 2}


@dataclass
class StandIn:
    service: MediaConvertStandIn
    client: Any
    emulator: Emulator
    uploads: str
    outputs: str
    events_queue: str
    stack: str

    def request(
        self, job_id: str, *, queue: str = "jobs", key: str | None = None, audio: bool = True
    ) -> dict[str, Any]:
        target = JobTarget(
            job_id=job_id,
            stack=self.stack,
            source_bucket=self.uploads,
            source_key=key or f"uploads/{job_id}/source",
            outputs_bucket=self.outputs,
            has_audio=audio,
            role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/mediaconvert",
            queue_arn=self.service.jobs.queue_arn(queue),
        )
        return create_job_request(target, PLANS)

    def upload(self, job_id: str, path: Path) -> None:
        self.emulator.client("s3").upload_file(str(path), self.uploads, f"uploads/{job_id}/source")

    def wait(self, mediaconvert_job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.client.get_job(Id=mediaconvert_job_id)["Job"]
            if job["Status"] in FINISHED:
                return job
            time.sleep(0.1)
        pytest.fail(f"MediaConvert job {mediaconvert_job_id} not finished after {timeout} s")

    def events(self, mediaconvert_job_id: str, until: str, timeout: float = 20) -> list[dict[str, Any]]:
        """The job's events as the rule delivered them, up to the first with status `until`."""
        sqs = self.emulator.client("sqs")
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in sqs.receive_message(
                QueueUrl=self.events_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                event = json.loads(message["Body"])
                if event["detail"]["jobId"] == mediaconvert_job_id:
                    seen.append(event)
            if any(e["detail"]["status"] == until for e in seen):
                return sorted(seen, key=lambda e: (e["detail"]["timestamp"], ORDER.get(e["detail"]["status"], 3)))
        pytest.fail(f"no {until} event for {mediaconvert_job_id}; saw {[e['detail']['status'] for e in seen]}")


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandIn]:
    emulator = Emulator(region=REGION)
    emulator.start()
    suffix = uuid.uuid4().hex[:8]
    uploads, outputs, stack = f"uploads-{suffix}", f"outputs-{suffix}", f"stack-{suffix}"
    s3, sqs, events = emulator.client("s3"), emulator.client("sqs"), emulator.client("events")
    s3.create_bucket(Bucket=uploads)
    s3.create_bucket(Bucket=outputs)
    queue_url = sqs.create_queue(QueueName=f"mediaconvert-events-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "source": [tracker_view.MEDIACONVERT_SOURCE],
        "detail-type": [tracker_view.MEDIACONVERT_DETAIL_TYPE],
        "detail": {"userMetadata": {"pipeline": [stack]}},
    }
    events.put_rule(Name=f"mediaconvert-{suffix}", EventPattern=json.dumps(pattern))
    events.put_targets(Rule=f"mediaconvert-{suffix}", Targets=[{"Id": "capture", "Arn": queue_arn}])
    options = StandInOptions(account_id=ACCOUNT_ID, region=REGION, work_dir=tmp_path / "work", clock=LocalClock(0.01))
    service = MediaConvertStandIn(emulator, options)
    service.add_queue("jobs")
    service.add_queue("held", status="PAUSED")
    service.start()
    client = boto3.session.Session().client(
        "mediaconvert",
        region_name=REGION,
        endpoint_url=service.endpoint,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    try:
        yield StandIn(service, client, emulator, uploads, outputs, queue_url, stack)
    finally:
        service.stop()
        emulator.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4", width=640, height=360, seconds=3.0, fps=10)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "long.mp4", width=640, height=360, seconds=60.0, fps=25)


def error_of(call: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


# --- the API --------------------------------------------------------------------------------------------------


def test_create_job_answers_submitted_and_a_repeated_token_gets_the_same_job(standin: StandIn) -> None:
    request = standin.request("01JOB0000000000000000000A1", queue="held")

    created = standin.client.create_job(**request)
    repeated = standin.client.create_job(**request)
    other = standin.client.create_job(**{**request, "ClientRequestToken": "another-token"})

    job = created["Job"]
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert job["Status"] == "SUBMITTED"
    assert job["Arn"] == f"arn:aws:mediaconvert:{REGION}:{ACCOUNT_ID}:jobs/{job['Id']}"
    assert (job["Queue"], job["Role"], job["UserMetadata"]) == (
        request["Queue"],
        request["Role"],
        request["UserMetadata"],
    )
    assert repeated["Job"]["Id"] == job["Id"]
    assert other["Job"]["Id"] != job["Id"]
    described = standin.client.get_job(Id=job["Id"])["Job"]
    assert described["Settings"] == request["Settings"]  # every member survives the wire both ways
    assert (described["Status"], described["ClientRequestToken"]) == ("SUBMITTED", request["ClientRequestToken"])


def test_the_token_holds_for_a_minute() -> None:
    now = [1_000.0]
    store = JobStore(REGION, ACCOUNT_ID, clock=lambda: now[0])
    target = JobTarget("01JOB", "s", "u", "uploads/01JOB/source", "o", True, "arn:aws:iam::1:role/r", "Default")
    request = {**create_job_request(target, PLANS), "Queue": store.queue_arn("Default")}
    spec = read_job_settings(request["Settings"])

    first, created, _ = store.create(request, spec, admit=lambda job: None)
    now[0] += 59.9
    within, again, _ = store.create(request, spec, admit=lambda job: None)
    now[0] += 0.2
    after, fresh, _ = store.create(request, spec, admit=lambda job: None)

    assert (created, again, fresh) == (True, False, True)
    assert within is first
    assert after.id != first.id


def test_list_jobs_filters_by_queue_and_status_and_pages(standin: StandIn) -> None:
    held = [standin.client.create_job(**standin.request(f"held-{i}", queue="held"))["Job"]["Id"] for i in range(3)]
    standin.client.cancel_job(Id=held[0])
    default = standin.client.create_job(**{**standin.request("elsewhere", queue="held"), "Queue": "Default"})["Job"]

    newest_first = standin.client.list_jobs(Queue="held", MaxResults=2)
    rest = standin.client.list_jobs(Queue="held", MaxResults=2, NextToken=newest_first["NextToken"])
    by_arn = standin.client.list_jobs(Queue=standin.service.jobs.queue_arn("held"), Order="ASCENDING")
    canceled = standin.client.list_jobs(Status="CANCELED")

    assert [j["Id"] for j in newest_first["Jobs"]] == [held[2], held[1]]
    assert ([j["Id"] for j in rest["Jobs"]], rest.get("NextToken")) == ([held[0]], None)
    assert [j["Id"] for j in by_arn["Jobs"]] == held
    assert [j["Id"] for j in canceled["Jobs"]] == [held[0]]
    assert default["Id"] in [j["Id"] for j in standin.client.list_jobs(Queue="Default")["Jobs"]]
    assert error_of(lambda: standin.client.list_jobs(NextToken="bm90IG91cnM="))[:2] == (400, "BadRequestException")
    assert error_of(lambda: standin.client.list_jobs(Queue="nope"))[:2] == (404, "NotFoundException")


def test_cancel_job_cancels_a_submitted_job_and_announces_it(standin: StandIn) -> None:
    request = standin.request("01JOB0000000000000000000C1", queue="held")
    job_id = standin.client.create_job(**request)["Job"]["Id"]

    answer = standin.client.cancel_job(Id=job_id)

    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert standin.client.get_job(Id=job_id)["Job"]["Status"] == "CANCELED"
    [event] = standin.events(job_id, until="CANCELED")
    assert (event["source"], event["detail-type"], event["resources"]) == (
        "aws.mediaconvert",
        "MediaConvert Job State Change",
        [f"arn:aws:mediaconvert:{REGION}:{ACCOUNT_ID}:jobs/{job_id}"],
    )
    fixture = json.loads((FIXTURES / "canceled.json").read_text())["detail"]
    assert set(event["detail"]) == set(fixture)
    assert event["detail"]["userMetadata"] == request["UserMetadata"]
    assert event["detail"]["queue"] == request["Queue"]
    assert error_of(lambda: standin.client.cancel_job(Id=job_id))[:2] == (409, "ConflictException")
    assert error_of(lambda: standin.client.get_job(Id="1700000000000-nosuch"))[:2] == (404, "NotFoundException")


def _mutated(request: dict[str, Any], change: Any) -> dict[str, Any]:
    copied = copy.deepcopy(request)
    change(copied["Settings"])
    return copied


def _hls_group(settings: dict[str, Any]) -> dict[str, Any]:
    """An HLS group over the first rendition, as the program asked for before the packager made HLS."""
    rendition = settings["OutputGroups"][0]["Outputs"][0]
    folder = settings["OutputGroups"][0]["OutputGroupSettings"]["FileGroupSettings"]["Destination"].rsplit("/", 1)[0]
    return {
        "Name": "HLS",
        "OutputGroupSettings": {
            "Type": "HLS_GROUP_SETTINGS",
            "HlsGroupSettings": {"Destination": f"{folder}/hls/index", "SegmentLength": 6, "MinSegmentLength": 0},
        },
        "Outputs": [
            {
                "NameModifier": "_240p",
                "ContainerSettings": {"Container": "M3U8"},
                "VideoDescription": copy.deepcopy(rendition["VideoDescription"]),
                "AudioDescriptions": copy.deepcopy(rendition["AudioDescriptions"]),
            }
        ],
    }


def _frame_capture_group(settings: dict[str, Any]) -> dict[str, Any]:
    """Thumbnails as a FILE_GROUP of JPEG frame captures, as the program asked for before the packager made them."""
    folder = settings["OutputGroups"][0]["OutputGroupSettings"]["FileGroupSettings"]["Destination"].rsplit("/", 1)[0]
    capture = {"FramerateNumerator": 1, "FramerateDenominator": 10, "MaxCaptures": 10, "Quality": 80}
    return {
        "Name": "Thumbnails",
        "OutputGroupSettings": {
            "Type": "FILE_GROUP_SETTINGS",
            "FileGroupSettings": {"Destination": f"{folder}/thumbnails/thumb"},
        },
        "Outputs": [
            {
                "ContainerSettings": {"Container": "RAW"},
                "VideoDescription": {
                    "Width": 640,
                    "Height": 360,
                    "CodecSettings": {"Codec": "FRAME_CAPTURE", "FrameCaptureSettings": capture},
                },
            }
        ],
    }


def _first_h264(settings: dict[str, Any]) -> dict[str, Any]:
    return settings["OutputGroups"][0]["Outputs"][0]["VideoDescription"]["CodecSettings"]["H264Settings"]


def test_what_it_cannot_honour_or_the_model_forbids_is_a_bad_request(standin: StandIn) -> None:
    request = standin.request("01JOB0000000000000000000B1")
    assert {g["OutputGroupSettings"]["Type"] for g in request["Settings"]["OutputGroups"]} == {"FILE_GROUP_SETTINGS"}
    as_is = {
        **request,
        "Queue": standin.service.jobs.queue_arn("held"),
        "ClientRequestToken": "as-the-program-sends-it",
    }
    standin.client.create_job(**as_is)  # honoured as it is: each refusal below is the change's
    refused = {
        "Rotate": _mutated(request, lambda s: s["Inputs"][0]["VideoSelector"].update(Rotate="DEGREES_90")),
        "DASH_ISO_GROUP_SETTINGS": _mutated(
            request, lambda s: s["OutputGroups"][0]["OutputGroupSettings"].update(Type="DASH_ISO_GROUP_SETTINGS")
        ),
        "OutputGroups[2]: HLS_GROUP_SETTINGS": _mutated(request, lambda s: s["OutputGroups"].append(_hls_group(s))),
        "OutputGroups[2].Outputs[0].VideoDescription: codec 'FRAME_CAPTURE'": _mutated(
            request, lambda s: s["OutputGroups"].append(_frame_capture_group(s))
        ),
        "exactly one input": _mutated(request, lambda s: s["Inputs"].append(copy.deepcopy(s["Inputs"][0]))),
        "AudioSourceName": _mutated(request, lambda s: s["Inputs"][0].pop("AudioSelectors")),
        # a bound botocore never checks (it checks min only): the model's max, from the service
        "QvbrQualityLevel: 11 > max 10": _mutated(
            request, lambda s: _first_h264(s)["QvbrSettings"].update(QvbrQualityLevel=11)
        ),
    }
    for expected, body in refused.items():
        status, code, message = error_of(lambda body=body: standin.client.create_job(**body))
        assert (status, code) == (400, "BadRequestException"), expected
        assert expected in message, message
    # What botocore leaves to the service (it checks types, not bounds, when told not to validate): the model's min.
    unchecked = boto3.session.Session().client(
        "mediaconvert",
        region_name=REGION,
        endpoint_url=standin.service.endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(parameter_validation=False),
    )
    too_narrow = _mutated(request, lambda s: s["OutputGroups"][0]["Outputs"][0]["VideoDescription"].update(Width=16))
    status, code, message = error_of(lambda: unchecked.create_job(**too_narrow))
    assert (status, code) == (400, "BadRequestException")
    assert "VideoDescription.Width: 16 < min 32" in message
    missing_queue = {**request, "Queue": standin.service.jobs.queue_arn("missing")}
    assert error_of(lambda: standin.client.create_job(**missing_queue))[:2] == (404, "NotFoundException")
    assert [j["Queue"] for j in standin.client.list_jobs()["Jobs"]] == [standin.service.jobs.queue_arn("held")]


# --- running jobs ---------------------------------------------------------------------------------------------


def test_a_job_writes_every_output_then_completes_with_their_details(standin: StandIn, clip: Path) -> None:
    standin.upload("01JOB0000000000000000000R1", clip)
    request = standin.request("01JOB0000000000000000000R1")

    job_id = standin.client.create_job(**request)["Job"]["Id"]
    job = standin.wait(job_id)
    events = standin.events(job_id, until="COMPLETE")

    assert (job["Status"], job["JobPercentComplete"]) == ("COMPLETE", 100), job.get("ErrorMessage")
    statuses = [e["detail"]["status"] for e in events]
    assert statuses[:2] == ["PROGRESSING", "INPUT_INFORMATION"] and statuses[-1] == "COMPLETE"
    assert set(statuses[2:-1]) <= {"STATUS_UPDATE"}
    complete = events[-1]["detail"]
    fixture = json.loads((FIXTURES / "complete.json").read_text())["detail"]
    assert set(complete) == set(fixture) - {"warnings"}
    fixture_detail = fixture["outputGroupDetails"][0]["outputDetails"][0]
    folder = f"s3://{standin.outputs}/outputs/01JOB0000000000000000000R1/"
    # one FILE_GROUP per rendition, each with its one MP4, as it was written
    assert [g["type"] for g in complete["outputGroupDetails"]] == ["FILE_GROUP"] * len(PLANS)
    for plan, group in zip(PLANS, complete["outputGroupDetails"], strict=True):
        assert set(group) == {"type", "outputDetails"}
        [detail] = group["outputDetails"]
        assert set(detail) == set(fixture_detail)
        assert detail["outputFilePaths"] == [f"{folder}{plan.name}.mp4"]
        assert detail["videoDetails"] == {"widthInPx": plan.width, "heightInPx": plan.height}
        assert abs(detail["durationInMs"] - 3000) <= 100, plan.name
    listing = standin.emulator.client("s3").list_objects_v2(
        Bucket=standin.outputs, Prefix="outputs/01JOB0000000000000000000R1/"
    )
    written = {f"s3://{standin.outputs}/{o['Key']}" for o in listing.get("Contents", [])}
    assert written == {f"{folder}{plan.name}.mp4" for plan in PLANS}  # nothing else: no playlists, no thumbnails
    assert job["OutputGroupDetails"] == [
        {
            "OutputDetails": [
                {
                    "DurationInMs": d["durationInMs"],
                    "VideoDetails": {
                        "WidthInPx": d["videoDetails"]["widthInPx"],
                        "HeightInPx": d["videoDetails"]["heightInPx"],
                    },
                }
                for d in g["outputDetails"]
            ]
        }
        for g in complete["outputGroupDetails"]
    ]
    change = tracker_view.parse_job_state_change(complete)
    outputs = {o.rendition: o for o in tracker_view.rendition_outputs(change)}
    assert sorted(outputs) == ["240p", "360p"]
    for plan in PLANS:
        output = outputs[plan.name]
        assert (output.bucket, output.key) == (standin.outputs, f"outputs/01JOB0000000000000000000R1/{plan.name}.mp4")
        assert (output.width, output.height) == (plan.width, plan.height)
        assert abs((output.duration_ms or 0) - 3000) <= 100


def test_an_mp4_output_is_what_its_description_says(standin: StandIn, clip: Path, tmp_path: Path) -> None:
    standin.upload("01JOB0000000000000000000M1", clip)
    job_id = standin.client.create_job(**standin.request("01JOB0000000000000000000M1"))["Job"]["Id"]
    assert standin.wait(job_id)["Status"] == "COMPLETE"

    local = tmp_path / "240p.mp4"
    standin.emulator.client("s3").download_file(
        standin.outputs, "outputs/01JOB0000000000000000000M1/240p.mp4", str(local)
    )
    info = probe(local)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["profile"], video["width"], video["height"]) == ("h264", "High", 426, 240)
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("aac", "48000", 2)
    assert int(info["format"]["bit_rate"]) < 400_000 + 64_000 + 20_000  # QVBR capped at MaxBitrate


def test_an_input_it_cannot_read_or_open_ends_in_error_with_mediaconverts_codes(standin: StandIn) -> None:
    standin.emulator.client("s3").put_object(
        Bucket=standin.uploads, Key="uploads/text/source", Body=b"not media " * 100
    )
    missing = standin.client.create_job(**standin.request("missing"))["Job"]["Id"]
    text = standin.client.create_job(**standin.request("text"))["Job"]["Id"]

    unread, unopened = standin.wait(missing), standin.wait(text)

    assert (unread["Status"], unread["ErrorCode"]) == ("ERROR", 1040)
    assert unread["ErrorMessage"].startswith(
        f"Unable to open input file [s3://{standin.uploads}/uploads/missing/source]"
    )
    assert (unopened["Status"], unopened["ErrorCode"]) == ("ERROR", 1010)
    [event] = [e for e in standin.events(missing, until="ERROR") if e["detail"]["status"] == "ERROR"]
    fixture = json.loads((FIXTURES / "error.json").read_text())["detail"]
    assert set(event["detail"]) == set(fixture)
    assert (event["detail"]["errorCode"], event["detail"]["errorMessage"]) == (1040, unread["ErrorMessage"])


def test_canceling_a_progressing_job_stops_it(standin: StandIn, long_clip: Path) -> None:
    standin.upload("01JOB0000000000000000000K1", long_clip)
    job_id = standin.client.create_job(**standin.request("01JOB0000000000000000000K1"))["Job"]["Id"]

    deadline = time.monotonic() + 30
    while standin.client.get_job(Id=job_id)["Job"].get("CurrentPhase") != "TRANSCODING":
        assert time.monotonic() < deadline, "the job never started transcoding"
        time.sleep(0.05)
    standin.client.cancel_job(Id=job_id)
    job = standin.wait(job_id, timeout=15)

    assert job["Status"] == "CANCELED"
    statuses = [e["detail"]["status"] for e in standin.events(job_id, until="CANCELED")]
    assert "COMPLETE" not in statuses and statuses[-1] == "CANCELED"
    listing = standin.emulator.client("s3").list_objects_v2(Bucket=standin.outputs)
    assert listing.get("KeyCount") == 0  # outputs are written only once every encode is done


# --- the pure parts -------------------------------------------------------------------------------------------


def test_commands_follow_the_settings() -> None:
    assert (qvbr_crf(7), qvbr_crf(10), qvbr_crf(1)) == (23, 11, 47)
    assert output_size(None, 240, (1280, 720)) == (426, 240)
    assert output_size(640, None, (1080, 1920)) == (640, 1138)
    assert output_size(None, None, (640, 360)) == (640, 360)


def test_a_stuck_ffmpeg_is_killed_at_its_timeout() -> None:
    endless = [ffmpeg_path(), "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=5", "-f", "null", "-"]
    started = time.monotonic()

    with pytest.raises(FfmpegFailed, match="did not finish within"):
        run_ffmpeg([*endless, "-progress", "pipe:1"], on_progress=lambda *_: None, cancelled=lambda: False, timeout=1)

    assert time.monotonic() - started < 10
