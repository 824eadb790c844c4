"""Job management through the public API of the local cloud: DELETE /jobs/{id} cancels a running job (a MediaConvert
job gets CancelJob, Lambda work stops) and leaves nothing of it in either bucket; POST /jobs/{id}/reprocess runs a
COMPLETED job again as its next attempt; the owner's endpoint hears `job.canceled` and `job.deleted`.

Storage and MediaConvert are read through the emulator only to check what the API promises; nothing is set up there.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest

from local.cli.client import ApiClient
from local.permissions.roles import ADMIN_CREDENTIALS
from tests.e2e.conftest import RunningCloud, wait_for
from tests.e2e.test_operator_cli import ops
from tests.e2e.test_pipeline import busy_worker, follow, renditions, start_upload
from tests.media_samples import make_video

pytestmark = pytest.mark.e2e

JOB_TIMEOUT_SECONDS = 300
"""Generous: the session's other jobs share two cores with these."""


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("job-management")
    return {
        "short": make_video(folder / "short.mp4", width=640, height=360, seconds=2.0),
        # Seconds of encoding per rendition, so a DELETE lands while a transcoder works on it.
        "long": make_video(folder / "long.mp4", width=1280, height=720, seconds=30.0),
    }


class _Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append({"webhook-id": self.headers.get("webhook-id"), **json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def hooks() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()


def stored_keys(cloud: RunningCloud, job_id: str) -> list[str]:
    """Every object of the job in both buckets (read through the emulator, as an auditor would)."""
    s3 = cloud.emulator().client("s3")
    found: list[str] = []
    for bucket, prefix in (
        (cloud.outputs["uploadsBucket"], f"uploads/{job_id}/"),
        (cloud.outputs["outputsBucket"], f"outputs/{job_id}/"),
    ):
        found += [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return found


def job_record(cloud: RunningCloud, job_id: str) -> dict[str, Any]:
    item = (
        cloud.emulator()
        .client("dynamodb")
        .get_item(TableName=cloud.outputs["jobsTable"], Key={"jobId": {"S": job_id}}, ConsistentRead=True)["Item"]
    )
    return item


def status_of(client: ApiClient, job_id: str, wanted: str) -> dict[str, Any] | None:
    job = client.job(job_id)
    return job if job["status"] == wanted else None


def quiet(cloud: RunningCloud, *functions: str) -> bool:
    """No worker of these functions is running an invocation (what it may still write has been written)."""
    return all(busy_worker(cloud, name) is None for name in functions)


def test_deleting_a_completed_job_deletes_every_file_and_tells_its_owner(
    pipeline_cloud: RunningCloud, clips: dict[str, Path], hooks: str
) -> None:
    client = pipeline_cloud.client("deleter")
    endpoint = client.register_webhook(hooks, events=["job.deleted", "job.canceled"])
    job_id = start_upload(client, clips["short"])
    assert follow(client, job_id, JOB_TIMEOUT_SECONDS)["status"] == "COMPLETED"
    assert f"uploads/{job_id}/source" in stored_keys(pipeline_cloud, job_id)

    answer = client.call("DELETE", f"jobs/{job_id}")

    assert answer.status == 202 and answer.body["status"] == "COMPLETED"  # finished: nothing to cancel
    assert answer.body["deletionRequestedAt"] and answer.body["playback"] is None
    assert all(r["url"] is None for r in answer.body["renditions"])
    deleted = wait_for(lambda: status_of(client, job_id, "DELETED"), 120, message="the job DELETED")
    assert all(r["url"] is None for r in deleted["renditions"])
    assert stored_keys(pipeline_cloud, job_id) == []
    heard = wait_for(
        lambda: [h for h in _Hooks.received if h["data"]["jobId"] == job_id], 120, message="the job.deleted webhook"
    )
    assert [h["type"] for h in heard] == ["job.deleted"]  # it was not running: no job.canceled
    # a deleted job is gone for good: neither retried nor reprocessed, and deleting it again changes nothing
    assert client.call("POST", f"jobs/{job_id}/reprocess").status == 409
    assert client.call("DELETE", f"jobs/{job_id}").body["status"] == "DELETED"
    client.delete_webhook(endpoint["id"])
    # the operator reads every step of it, and who made it
    history = ops(pipeline_cloud, "history", job_id)
    assert history.returncode == 0, history.stderr
    for step in (
        "ingest: status AWAITING_UPLOAD -> VALIDATING",
        "playback QUEUED",
        "tracker: status PROCESSING -> COMPLETED",
        "api: deletion asked for",
        "tracker: status COMPLETED -> DELETED",
        "tracker: outcome DELETED announced",
    ):
        assert step in history.stdout, (step, history.stdout)


def test_deleting_a_running_lambda_job_stops_its_work_and_leaves_nothing(
    pipeline_cloud: RunningCloud, clips: dict[str, Path], hooks: str
) -> None:
    client = pipeline_cloud.client("canceler")
    endpoint = client.register_webhook(hooks, events=["job.deleted", "job.canceled"])
    job_id = start_upload(client, clips["long"])
    wait_for(
        lambda: any(r["status"] == "PROCESSING" for r in client.job(job_id)["renditions"]),
        JOB_TIMEOUT_SECONDS,
        message="a transcoder working on the job",
    )

    answer = client.call("DELETE", f"jobs/{job_id}")

    assert answer.status == 202 and answer.body["status"] == "CANCELED"
    assert {r["status"] for r in answer.body["renditions"]} <= {"CANCELED", "COMPLETED"}
    wait_for(lambda: status_of(client, job_id, "DELETED"), 120, message="the job DELETED")
    # Whatever a transcoder was doing when the job was canceled, it stops (the job gate) and nothing it wrote stays.
    wait_for(lambda: quiet(pipeline_cloud, "transcode-", "packager"), 120, message="the transcoders idle")
    wait_for(lambda: stored_keys(pipeline_cloud, job_id) == [], 60, message="no file of the job left")
    heard = wait_for(
        lambda: len([h for h in _Hooks.received if h["data"]["jobId"] == job_id]) >= 2 and _Hooks.received,
        120,
        message="job.canceled and job.deleted",
    )
    assert sorted(h["type"] for h in heard if h["data"]["jobId"] == job_id) == ["job.canceled", "job.deleted"]
    client.delete_webhook(endpoint["id"])


def test_deleting_a_mediaconvert_job_cancels_it_in_mediaconvert(
    pipeline_cloud: RunningCloud, long_source: Path
) -> None:
    client = pipeline_cloud.client("mc-canceler")
    job_id = start_upload(client, long_source)
    recorded = wait_for(
        lambda: job_record(pipeline_cloud, job_id).get("mediaconvert"),
        JOB_TIMEOUT_SECONDS,
        message="the job's MediaConvert job",
    )
    mediaconvert_job_id = recorded["M"]["jobId"]["S"]

    answer = client.call("DELETE", f"jobs/{job_id}")

    assert answer.status == 202 and answer.body["status"] == "CANCELED"
    mediaconvert = boto3.client(
        "mediaconvert",
        endpoint_url=pipeline_cloud.deployment["mediaconvertEndpoint"],
        region_name=pipeline_cloud.deployment["region"],
        aws_access_key_id=ADMIN_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=ADMIN_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=ADMIN_CREDENTIALS["AWS_SESSION_TOKEN"],
    )
    wait_for(
        lambda: mediaconvert.get_job(Id=mediaconvert_job_id)["Job"]["Status"] == "CANCELED",
        120,
        message="the MediaConvert job CANCELED",
    )
    wait_for(lambda: status_of(client, job_id, "DELETED"), 120, message="the job DELETED")
    assert stored_keys(pipeline_cloud, job_id) == []


def test_reprocessing_a_completed_job_runs_its_next_attempt(
    pipeline_cloud: RunningCloud, clips: dict[str, Path]
) -> None:
    client = pipeline_cloud.client("reprocessor")
    job_id = start_upload(client, clips["short"])
    first = follow(client, job_id, JOB_TIMEOUT_SECONDS)
    assert first["status"] == "COMPLETED" and first["attempt"] == 1

    answer = client.call("POST", f"jobs/{job_id}/reprocess")

    assert answer.status == 202 and answer.body["attempt"] == 2 and answer.body["status"] == "VALIDATING"
    again = follow(client, job_id, JOB_TIMEOUT_SECONDS)
    assert again["status"] == "COMPLETED" and again["attempt"] == 2, again
    assert renditions(again)["240p"]["status"] == "COMPLETED" and renditions(again)["240p"]["url"]
    assert again["playback"] is not None
    assert client.call("POST", f"jobs/{job_id}/retry").body["error"]["code"] == "JOB_NOT_RETRYABLE"
