"""Permissions are enforced locally as AWS enforces them: a copy of the program with one permission broken fails the
way the deployed pipeline would, instead of completing on shared credentials.

Each test copies the program, changes one line of it, runs it in its own local cloud with the e2e config, uploads a
clip through the public API and waits for the failure AWS would show (an AccessDenied and a dead-lettered message, a
delivery the queue's policy refuses, events EventBridge may not deliver to the function), never for a clock.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import E2E_LAYER, REPO, RunningCloud, start_cloud, stop_cloud, wait_for
from tests.e2e.test_pipeline import renditions, start_upload
from tests.media_samples import make_video

pytestmark = pytest.mark.e2e

PROGRAM_FILES = (
    "__main__.py",
    "Pulumi.yaml",
    "Pulumi.dev.yaml",
    ".dockerignore",
    "components",
    "functions",
    "containers",
)
FAILURE_TIMEOUT_SECONDS = 180  # a bound on a hang, not a speed expectation: each wait ends on an event


def copy_of_the_program(target: Path, file: str, old: str, new: str) -> Path:
    """The program as committed, with `old` replaced by `new` (exactly once) in `file`."""
    target.mkdir(parents=True)
    for name in PROGRAM_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    path = target / file
    text = path.read_text()
    assert text.count(old) == 1, f"{file}: the mutation's anchor is not unique or gone: {old!r}"
    path.write_text(text.replace(old, new))
    return target


@contextmanager
def mutated_cloud(tmp_path: Path, file: str, old: str, new: str) -> Iterator[RunningCloud]:
    program = copy_of_the_program(tmp_path / "program", file, old, new)
    cloud = start_cloud(program, tmp_path / "state", [E2E_LAYER])
    try:
        yield cloud
    finally:
        stop_cloud(cloud.process)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4", width=640, height=360, seconds=1.0)


def peek(cloud: RunningCloud, queue_url: str) -> list[dict[str, Any]]:
    sqs = cloud.emulator().client("sqs")
    answer = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"]
    )
    return answer.get("Messages", [])


def cloud_log(cloud: RunningCloud) -> str:
    return (cloud.state_dir / "up.log").read_text()


def test_a_transcoder_without_s3_put_object_is_denied_and_its_message_dead_letters(tmp_path: Path, clip: Path) -> None:
    grants = "*worker_grants(args, list_uploads=True),"
    without_put = (
        '*[__import__("dataclasses").replace(g, actions=tuple(a for a in g.actions if a != "s3:PutObject"))'
        " for g in worker_grants(args, list_uploads=True)],"
    )
    with mutated_cloud(tmp_path, "components/transcoder.py", grants, without_put) as cloud:
        client = cloud.client("alice")
        job_id = start_upload(client, clip)
        dlq = cloud.outputs["deadLetterQueueUrls"]["transcode-240p"]
        wait_for(
            lambda: any(job_id in m["Body"] for m in peek(cloud, dlq)),
            FAILURE_TIMEOUT_SECONDS,
            message="the 240p message in its DLQ after every attempt was denied",
        )
        job = client.job(job_id)
        assert job["status"] == "PROCESSING" and renditions(job)["240p"]["status"] != "COMPLETED", job
        assert "is not authorized to perform: s3:PutObject on resource: arn:aws:s3:::" in cloud_log(cloud)


def test_a_transcode_queue_that_admits_only_eventbridge_never_receives_the_fan_out(tmp_path: Path, clip: Path) -> None:
    policy = "service=args.sender_service,"
    only_events = "service=EVENTS_SERVICE if name.startswith('transcode-') else args.sender_service,"
    with mutated_cloud(tmp_path, "components/work_queue.py", policy, only_events) as cloud:
        client = cloud.client("alice")
        job_id = start_upload(client, clip)

        def refused_to_a_transcode_queue() -> list[dict[str, Any]]:
            return [
                r
                for r in cloud.workers().get("refusals", [])
                if r["service"] == "sns.amazonaws.com" and ":transcode-" in r["destination"]
            ]

        (refusal, *_) = wait_for(
            refused_to_a_transcode_queue, FAILURE_TIMEOUT_SECONDS, message="SNS refused by the transcode queue"
        )
        assert "no resource-based policy allows the sqs:SendMessage action" in refusal["reason"]
        job = client.job(job_id)
        assert job["status"] == "PROCESSING", job
        assert {r["status"] for r in job["renditions"]} == {"QUEUED"}
        for name, url in cloud.outputs["transcodeQueueUrls"].items():
            assert peek(cloud, url) == [], name


def test_a_tracker_permission_for_the_wrong_principal_sends_its_events_to_the_dlq(tmp_path: Path, clip: Path) -> None:
    with mutated_cloud(
        tmp_path,
        "components/tracker.py",
        "function.function_name, EVENTS_SERVICE, rule.arn, child)",
        'function.function_name, "sns.amazonaws.com", rule.arn, child)',
    ) as cloud:
        client = cloud.client("alice")
        job_id = start_upload(client, clip)
        dlq = cloud.outputs["deadLetterQueueUrls"]["tracker"]

        def not_permitted_event_of_the_job() -> dict[str, Any] | None:
            for message in peek(cloud, dlq):
                detail = json.loads(message["Body"]).get("detail") or {}
                attributes = {k: v.get("StringValue") for k, v in (message.get("MessageAttributes") or {}).items()}
                if detail.get("jobId") == job_id and attributes.get("ERROR_CODE") == "NO_PERMISSIONS":
                    return attributes
            return None

        attributes = wait_for(
            not_permitted_event_of_the_job, FAILURE_TIMEOUT_SECONDS, message="a rendition event in the tracker's DLQ"
        )
        assert attributes["RULE_ARN"].startswith("arn:aws:events:") and ":function:tracker-" in attributes["TARGET_ARN"]
        job = client.job(job_id)
        assert job["status"] == "PROCESSING" and {r["status"] for r in job["renditions"]} <= {"QUEUED"}, job
