"""The packager's handler end to end against moto: SQS records of EventBridge events in, real ffmpeg, the package read
back from S3, and what was announced on the bus."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.common.settings import SettingsError
from functions.contracts.events import PackagingCompleted
from functions.contracts.playback import content_type
from functions.packager import handler
from tests.functions.conftest import REGION, CapturedEvents, FakeLambdaContext
from tests.functions.job_gate_samples import cancel, ensure_running, move_to_next_attempt, withdrawals_reported
from tests.functions.packager.conftest import (
    JOB_ID,
    OUTPUTS,
    OWNER_ID,
    eventbridge_event,
    ffprobe,
    image_size,
    metrics_in,
    rendition_key,
    request_detail,
    source,
    sqs_event,
)

PREFIX = f"outputs/{JOB_ID}/"


@dataclass
class Deployment:
    """The packager deployed against moto, with the renditions the transcoders stored and a bus we can read back."""

    events: CapturedEvents
    context: FakeLambdaContext
    tmp: Path
    work: Path

    def store(self, name: str, path: Path) -> None:
        s3 = boto3.client("s3", region_name=REGION)
        s3.upload_file(str(path), OUTPUTS, rendition_key(name), ExtraArgs={"ContentType": "video/mp4"})

    def invoke(self, *bodies: dict[str, Any] | str, context: Any = None) -> dict[str, Any]:
        """Handle the bodies as one batch; each request's job runs its attempt unless the test made it otherwise."""
        for body in bodies:
            detail = body.get("detail") if isinstance(body, dict) else None
            if isinstance(detail, dict) and "jobId" in detail:
                ensure_running(detail["jobId"], attempt=detail.get("attempt", 1))
        return handler.handler(sqs_event(*bodies), context or self.context)

    def package_keys(self) -> set[str]:
        s3 = boto3.client("s3", region_name=REGION)
        listed = s3.list_objects_v2(Bucket=OUTPUTS, Prefix=PREFIX).get("Contents", [])
        return {item["Key"] for item in listed} - {rendition_key("180p"), rendition_key("360p")}

    def download_package(self) -> Path:
        """Every package file, at its key under a local folder: the layout a player would fetch."""
        s3 = boto3.client("s3", region_name=REGION)
        root = self.tmp / "downloaded"
        for key in self.package_keys():
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(OUTPUTS, key, str(target))
        return root / PREFIX


@pytest.fixture
def deployment(
    buckets: dict[str, str],
    event_bus: CapturedEvents,
    lambda_context: FakeLambdaContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    jobs_table: Any,  # the job gate reads each message's job there
) -> Deployment:
    work = tmp_path / "work"
    monkeypatch.setenv("PACKAGER_WORK_DIR", str(work))
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "packager")
    return Deployment(event_bus, lambda_context, tmp_path, work)


def announced(deployment: Deployment) -> list[tuple[str, dict[str, Any]]]:
    return [(event["detail-type"], event["detail"]) for event in deployment.events.drain()]


# --- the package ------------------------------------------------------------------------------------------------------


@pytest.mark.media
def test_a_packaging_request_stores_the_ladder_and_announces_it(
    deployment: Deployment, ladder: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN both renditions of a job in the outputs bucket
    for name, path in ladder.items():
        deployment.store(name, path)

    # WHEN the tracker's Packaging Requested arrives through the queue
    response = deployment.invoke(eventbridge_event(request_detail()))

    # THEN the record succeeded and exactly one Packaging Completed went on the bus, naming what is in the bucket
    assert response == {"batchItemFailures": []}
    ((detail_type, detail),) = announced(deployment)
    assert detail_type == "Packaging Completed"
    package = PackagingCompleted.model_validate(detail).package
    assert detail == {"jobId": JOB_ID, "ownerId": OWNER_ID, "package": package.model_dump(mode="json")}
    assert package.bucket == OUTPUTS
    assert package.hlsKey == f"{PREFIX}hls/master.m3u8"
    assert [v.rendition for v in package.variants] == ["180p", "360p"]
    assert package.poster.key == f"{PREFIX}poster.jpg"
    assert (package.thumbnails.vttKey, package.thumbnails.spriteKey) == (
        f"{PREFIX}thumbnails/thumbnails.vtt",
        f"{PREFIX}thumbnails/sprite.jpg",
    )
    keys = deployment.package_keys()
    segments = sum(variant.segments for variant in package.variants)
    assert len(keys) == 1 + 2 * len(package.variants) + segments + 3  # master, index+init each, segments, 3 images
    # AND every file has its Content-Type and metadata naming the job
    s3 = boto3.client("s3", region_name=REGION)
    for key in keys:
        head = s3.head_object(Bucket=OUTPUTS, Key=key)
        assert head["ContentType"] == content_type(key), key
        assert head["Metadata"] == {"job-id": JOB_ID, "rendition": "playback"}
    # AND the downloaded package plays from disk, and its images are the sizes announced
    folder = deployment.download_package()
    streams = json.loads(ffprobe("-show_streams", "-of", "json", str(folder / "hls/master.m3u8")))["streams"]
    assert sorted((s["width"], s["height"]) for s in streams if s["codec_type"] == "video") == [(320, 180), (640, 360)]
    assert image_size(folder / "poster.jpg") == (package.poster.width, package.poster.height) == (640, 360)
    assert image_size(folder / "thumbnails/sprite.jpg") == (package.thumbnails.width, package.thumbnails.height)
    # AND nothing is left in the working directory
    assert list(deployment.work.iterdir()) == []
    # AND the package is counted, with how long it took and how big it is
    emitted = metrics_in(capsys.readouterr().out)
    assert emitted["PackagesCompleted"] == 1
    assert emitted["PackageBytes"] == sum(s3.head_object(Bucket=OUTPUTS, Key=key)["ContentLength"] for key in keys)
    assert 0 < emitted["PackagingSeconds"] < 60
    assert "PackagesFailed" not in emitted


@pytest.mark.media
def test_a_missing_rendition_is_announced_as_failed_without_naming_where_it_was(
    deployment: Deployment, ladder: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.store("180p", ladder["180p"])  # 360p was never stored

    response = deployment.invoke(eventbridge_event(request_detail()))

    assert response == {"batchItemFailures": []}
    assert announced(deployment) == [
        (
            "Packaging Failed",
            {
                "jobId": JOB_ID,
                "ownerId": OWNER_ID,
                "error": {"code": "PACKAGING_FAILED", "message": "rendition 360p is missing from the job's outputs"},
            },
        )
    ]
    assert deployment.package_keys() == set()
    emitted = metrics_in(capsys.readouterr().out)
    assert emitted["PackagesFailed"] == 1
    assert "PackagesCompleted" not in emitted


def test_a_rendition_outside_the_outputs_bucket_is_refused_and_never_read(deployment: Deployment) -> None:
    # GIVEN a request naming an upload (the packager may not read the uploads bucket, and must not try)
    boto3.client("s3", region_name=REGION).put_object(Bucket="test-uploads", Key=rendition_key("180p"), Body=b"x")
    detail = request_detail(source("180p", bucket="test-uploads"))

    response = deployment.invoke(eventbridge_event(detail))

    assert response == {"batchItemFailures": []}
    ((detail_type, failed),) = announced(deployment)
    assert detail_type == "Packaging Failed"
    assert failed["error"] == {"code": "PACKAGING_FAILED", "message": "rendition 180p is not in the outputs bucket"}
    assert not deployment.work.exists() or list(deployment.work.iterdir()) == []


# --- what is dropped and what is retried ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        {"jobId": JOB_ID},  # a bare detail, not an EventBridge event
        eventbridge_event(request_detail(), detail_type="Job Completed"),
        eventbridge_event(request_detail(), source_name="someone-else"),
        eventbridge_event({"jobId": JOB_ID, "ownerId": OWNER_ID, "durationMs": 1000, "renditions": []}),
        eventbridge_event({"ownerId": OWNER_ID, "durationMs": 1000, "renditions": [source("180p")]}),
    ],
    ids=["not-json", "not-an-event", "other-detail-type", "other-source", "no-renditions", "no-job"],
)
def test_a_message_that_is_not_a_packaging_request_is_dropped_not_retried(
    deployment: Deployment, body: dict[str, Any] | str, capsys: pytest.CaptureFixture[str]
) -> None:
    response = deployment.invoke(body)

    assert response == {"batchItemFailures": []}
    assert announced(deployment) == []
    assert metrics_in(capsys.readouterr().out) == {"MessagesDropped": 1}


def test_each_record_of_a_batch_ends_on_its_own(deployment: Deployment) -> None:
    # GIVEN a malformed message and a request for renditions that are not there
    response = deployment.invoke("not json", eventbridge_event(request_detail(source("180p"))))

    # THEN neither is retried: one was dropped, the other failed for good
    assert response == {"batchItemFailures": []}
    assert [detail_type for detail_type, _ in announced(deployment)] == ["Packaging Failed"]


def test_a_bus_that_does_not_take_the_event_returns_the_record_to_the_queue(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")

    response = deployment.invoke(eventbridge_event(request_detail(source("180p"))))

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert metrics_in(capsys.readouterr().out) == {"PackagingRetries": 1}


def test_too_little_time_left_returns_the_record_to_the_queue(deployment: Deployment) -> None:
    @dataclass
    class AlmostOut(FakeLambdaContext):
        def get_remaining_time_in_millis(self) -> int:
            return 20_000

    response = deployment.invoke(eventbridge_event(request_detail()), context=AlmostOut())

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert announced(deployment) == []


def test_working_directories_left_by_a_killed_invocation_are_removed(deployment: Deployment) -> None:
    # GIVEN a warm sandbox whose previous invocation hit the Lambda timeout mid-package
    stale = deployment.work / "packager-k1ll3d"
    (stale / "renditions").mkdir(parents=True)
    (stale / "renditions" / "1080p.mp4").write_bytes(b"x" * 1024)

    deployment.invoke("not json")

    assert not stale.exists()


@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
def test_a_misconfigured_function_fails_the_invocation(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THUMBNAIL_INTERVAL_SECONDS", "5")

    with pytest.raises(SettingsError, match="THUMBNAIL_INTERVAL_SECONDS must be a multiple of 2"):
        deployment.invoke(eventbridge_event(request_detail()))


# --- the job gate -----------------------------------------------------------------------------------------------------


def test_a_canceled_jobs_request_is_dropped_without_an_event_or_a_file(
    deployment: Deployment,
    ladder: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN both renditions of a job its owner canceled while its packaging request was queued
    for name, path in ladder.items():
        deployment.store(name, path)
    ensure_running(JOB_ID)
    cancel(JOB_ID)

    # WHEN the request arrives
    response = deployment.invoke(eventbridge_event(request_detail()))

    # THEN the record succeeds, nothing is packaged or announced, and the drop is logged and counted
    assert response == {"batchItemFailures": []}
    assert announced(deployment) == []
    assert deployment.package_keys() == set()
    output = capsys.readouterr().out
    assert withdrawals_reported(caplog.records, output) == (["the job was deleted"], 1.0)
    assert metrics_in(output) == {"WorkWithdrawn": 1}


def test_a_request_of_an_earlier_attempt_is_dropped_once_the_job_runs_the_next(deployment: Deployment) -> None:
    ensure_running(JOB_ID)
    move_to_next_attempt(JOB_ID)

    assert deployment.invoke(eventbridge_event(request_detail(source("180p")))) == {"batchItemFailures": []}

    assert announced(deployment) == []


def test_a_later_attempts_failure_names_its_attempt(deployment: Deployment) -> None:
    # GIVEN the second attempt's request, naming a rendition that is not in the bucket
    request = request_detail(source("180p")) | {"attempt": 2}

    assert deployment.invoke(eventbridge_event(request)) == {"batchItemFailures": []}

    ((detail_type, detail),) = announced(deployment)
    assert (detail_type, detail["attempt"], detail["error"]["code"]) == ("Packaging Failed", 2, "PACKAGING_FAILED")
