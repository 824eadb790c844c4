"""The media pipeline end to end on the local cloud: the real Pulumi program, real functions, real ffmpeg.

Clients act only through the public HTTP API and the presigned upload form. The emulator is touched only to
inject faults (a duplicated S3 event) and to look at dead-letter queues and output objects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from local.cli.client import FINAL_STATUSES, ApiClient, download, post_form, request
from local.runtime.auth import AuthorizerSettings, SigningKey, issue_token
from tests.e2e.conftest import RunningCloud, wait_for
from tests.media_samples import is_faststart, make_video, probe

pytestmark = pytest.mark.e2e

JOB_TIMEOUT_SECONDS = 120
UNKNOWN_JOB_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4", width=640, height=360, seconds=2.0)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough that a 360p encode takes seconds, so a test can kill the worker in the middle of it."""
    return make_video(tmp_path_factory.mktemp("media") / "long.mp4", width=1280, height=720, seconds=40.0)


def start_upload(client: ApiClient, path: Path, content_type: str = "video/mp4") -> str:
    created = client.create_upload(path, content_type)
    assert created["status"] == "AWAITING_UPLOAD"
    assert post_form(created["upload"]["url"], created["upload"]["fields"], path) in (200, 201, 204)
    return str(created["jobId"])


def follow(client: ApiClient, job_id: str, timeout: float = JOB_TIMEOUT_SECONDS) -> dict[str, Any]:
    job = client.follow(job_id, timeout_seconds=timeout)
    assert job["status"] in FINAL_STATUSES, f"job {job_id} still {job['status']} after {timeout} s: {job}"
    return job


def renditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in job["renditions"]}


def busy_worker(cloud: RunningCloud, function_fragment: str) -> int | None:
    for name, function in cloud.workers()["functions"].items():
        if function_fragment in name:
            for worker in function["workers"]:
                if worker["busySince"] is not None:
                    return int(worker["pid"])
    return None


def function_stats(cloud: RunningCloud, function_fragment: str) -> dict[str, int]:
    return next(f["stats"] for name, f in cloud.workers()["functions"].items() if function_fragment in name)


def test_happy_path_video(pipeline_cloud: RunningCloud, clip: Path, tmp_path: Path) -> None:
    client = pipeline_cloud.client("alice")
    job = follow(client, start_upload(client, clip))

    assert job["status"] == "COMPLETED", job
    assert (job["mediaType"], job["engine"], job["progress"], job["error"]) == ("video", "lambda", 100, None)
    assert (job["probe"]["width"], job["probe"]["height"]) == (640, 360)
    assert job["source"] == {"filename": "clip.mp4", "contentType": "video/mp4", "size": clip.stat().st_size}
    by_name = renditions(job)
    assert sorted(by_name) == ["240p", "360p"]
    for name, height in (("240p", 240), ("360p", 360)):
        rendition = by_name[name]
        assert rendition["status"] == "COMPLETED"
        local_copy = download(rendition["url"], tmp_path / f"{name}.mp4")
        info = probe(local_copy)
        video = next(s for s in info["streams"] if s["codec_type"] == "video")
        audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
        assert (video["codec_name"], video["height"], video["width"] % 2) == ("h264", height, 0)
        assert abs(video["width"] / video["height"] - 16 / 9) < 0.02
        assert audio["codec_name"] == "aac"
        assert abs(float(info["format"]["duration"]) - 2.0) < 0.2
        assert (rendition["width"], rendition["height"]) == (video["width"], video["height"])
        assert rendition["bytes"] == local_copy.stat().st_size
        assert is_faststart(local_copy)


def test_rejected_upload_carries_its_reason(pipeline_cloud: RunningCloud, tmp_path: Path) -> None:
    not_media = tmp_path / "holiday.mp4"
    not_media.write_bytes(b"this is a text file pretending to be a video\n" * 200)
    client = pipeline_cloud.client("alice")
    job = follow(client, start_upload(client, not_media))

    assert job["status"] == "REJECTED"
    assert job["error"]["code"] == "UNSUPPORTED_FORMAT"
    assert job["error"]["message"]
    assert all(r["status"] != "COMPLETED" for r in job["renditions"])


def test_the_upload_form_refuses_more_bytes_than_declared(pipeline_cloud: RunningCloud, clip: Path) -> None:
    client = pipeline_cloud.client("alice")
    created = client.create_upload(clip)
    bigger = clip.with_name("bigger.mp4")
    bigger.write_bytes(clip.read_bytes() + b"\0" * 1024)

    assert post_form(created["upload"]["url"], created["upload"]["fields"], bigger) == 400
    time.sleep(1)
    assert client.job(created["jobId"])["status"] == "AWAITING_UPLOAD"


def test_another_users_job_answers_like_a_missing_one(pipeline_cloud: RunningCloud, clip: Path) -> None:
    alice, bob = pipeline_cloud.client("alice"), pipeline_cloud.client("bob")
    job_id = alice.create_upload(clip)["jobId"]

    assert alice.call("GET", f"jobs/{job_id}").status == 200
    theirs, missing = bob.call("GET", f"jobs/{job_id}"), bob.call("GET", f"jobs/{UNKNOWN_JOB_ID}")
    assert (theirs.status, missing.status) == (404, 404)
    assert theirs.body["error"]["code"] == missing.body["error"]["code"]
    assert job_id not in [j["jobId"] for j in bob.call("GET", "jobs").body["jobs"]]


def test_missing_expired_and_badly_signed_tokens_are_401(pipeline_cloud: RunningCloud, tmp_path: Path) -> None:
    url = pipeline_cloud.api_url + "jobs"
    settings = AuthorizerSettings.load(pipeline_cloud.state_dir)
    stranger_key = SigningKey.load_or_create(tmp_path / "another-issuer")
    wrong_audience = AuthorizerSettings(issuer=settings.issuer, audiences=("someone-else",))
    own_key = SigningKey.load_or_create(pipeline_cloud.state_dir)
    refused = {
        "missing": None,
        "expired": pipeline_cloud.token("alice", ttl=-30),
        "badly signed": issue_token(stranger_key, settings, "alice"),
        "wrong audience": issue_token(own_key, wrong_audience, "alice"),
        "garbage": "not.a.token",
    }
    for case, token in refused.items():
        response = request("GET", url, token)
        assert (response.status, response.body) == (401, {"message": "Unauthorized"}), case
    assert request("GET", url, pipeline_cloud.token("alice")).status == 200
    assert request("GET", pipeline_cloud.api_url + "health").status == 200


def _ingest_queue_url(cloud: RunningCloud) -> str:
    """The queue the uploads bucket notifies, as the program wired it."""
    emulator = cloud.emulator()
    notification = emulator.client("s3").get_bucket_notification_configuration(Bucket=cloud.outputs["uploadsBucket"])
    queue_name = notification["QueueConfigurations"][0]["QueueArn"].rsplit(":", 1)[1]
    return str(emulator.client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"])


def _s3_event(bucket: str, key: str, size: int, etag: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "duplicate",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key, "size": size, "eTag": etag},
                },
            }
        ]
    }


def test_duplicated_s3_event_yields_one_set_of_outputs(pipeline_cloud: RunningCloud, clip: Path) -> None:
    client = pipeline_cloud.client("alice")
    job_id = start_upload(client, clip)
    job = follow(client, job_id)
    assert job["status"] == "COMPLETED"
    emulator = pipeline_cloud.emulator()
    s3, sqs = emulator.client("s3"), emulator.client("sqs")
    outputs_bucket, uploads_bucket = pipeline_cloud.outputs["outputsBucket"], pipeline_cloud.outputs["uploadsBucket"]

    def outputs() -> dict[str, Any]:
        listing = s3.list_objects_v2(Bucket=outputs_bucket, Prefix=f"outputs/{job_id}/").get("Contents", [])
        return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listing}

    before = outputs()
    source = s3.head_object(Bucket=uploads_bucket, Key=f"uploads/{job_id}/source")
    duplicate = _s3_event(uploads_bucket, f"uploads/{job_id}/source", source["ContentLength"], source["ETag"][1:-1])
    queue_url = _ingest_queue_url(pipeline_cloud)
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(duplicate))

    def drained() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        return attributes["ApproximateNumberOfMessages"] == "0" == attributes["ApproximateNumberOfMessagesNotVisible"]

    wait_for(drained, 30, message="the duplicate consumed")
    time.sleep(2)  # anything the duplicate had started downstream would show by now
    folder = f"outputs/{job_id}/"
    made = [f"{folder}240p.mp4", f"{folder}360p.mp4", f"{folder}hls/master.m3u8", f"{folder}poster.jpg"]
    assert set(made) <= set(before)  # and the rest of the playback package
    assert outputs() == before
    again = client.job(job_id)
    assert (again["status"], again["updatedAt"]) == ("COMPLETED", job["updatedAt"])


def test_worker_killed_mid_transcode_is_retried_and_the_job_completes(
    pipeline_cloud: RunningCloud, long_clip: Path
) -> None:
    client = pipeline_cloud.client("alice")
    crashes_before = function_stats(pipeline_cloud, "transcode-360p")["crashes"]
    job_id = start_upload(client, long_clip)

    def encoding_360p() -> int | None:
        job = client.job(job_id)
        assert job["status"] not in FINAL_STATUSES, job
        rendition = renditions(job).get("360p") or {}
        return busy_worker(pipeline_cloud, "transcode-360p") if rendition.get("status") == "PROCESSING" else None

    pid = wait_for(encoding_360p, 60, interval=0.05, message="the 360p transcode to start")
    os.kill(pid, signal.SIGKILL)
    job = follow(client, job_id)

    assert job["status"] == "COMPLETED", job
    assert renditions(job)["360p"]["status"] == "COMPLETED"
    assert renditions(job)["360p"]["height"] == 360
    assert function_stats(pipeline_cloud, "transcode-360p")["crashes"] == crashes_before + 1


def test_poison_message_reaches_the_dlq_and_its_job_fails_with_a_reason(
    pipeline_cloud: RunningCloud, long_clip: Path
) -> None:
    """A message that crashes its consumer on every delivery (as an input that exhausts memory would)."""
    client = pipeline_cloud.client("alice")
    job_id = start_upload(client, long_clip)
    dead_letter_urls = list(pipeline_cloud.outputs["deadLetterQueueUrls"].values())
    sqs = pipeline_cloud.emulator().client("sqs")

    def in_a_dlq() -> bool:
        for url in dead_letter_urls:
            peeked = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            if any(job_id in m["Body"] for m in peeked.get("Messages", [])):
                return True
        return False

    def crash_or_dead_lettered() -> bool:
        pid = busy_worker(pipeline_cloud, "transcode-360p")
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        return in_a_dlq()

    wait_for(crash_or_dead_lettered, 60, interval=0.1, message="the poison message in a dead-letter queue")
    assert client.job(job_id)["status"] == "PROCESSING"
    # The job's deadline arrives: the next sweep fails it, however long the dead-lettering took on this machine.
    pass_processing_deadline(pipeline_cloud, job_id)
    job = follow(client, job_id, timeout=90)

    assert job["status"] == "FAILED", job
    assert job["error"]["code"] == "PROCESSING_TIMEOUT"
    assert job["error"]["message"]
    assert renditions(job)["240p"]["status"] == "COMPLETED"
    assert renditions(job)["360p"]["status"] != "COMPLETED"

    # Its owner retries it: ingest plans the next attempt again from the upload it validated and fans it out. (The
    # 40 s source is long to encode again: the owner then deletes it, which stops that work; the reprocess test in
    # test_job_management.py follows a next attempt to COMPLETED.)
    retried = client.call("POST", f"jobs/{job_id}/retry")
    assert retried.status == 202 and retried.body["attempt"] == 2, retried.body
    planned = wait_for(
        lambda: (j := client.job(job_id))["status"] == "PROCESSING" and j, 120, message="attempt 2 planned"
    )
    assert planned["attempt"] == 2 and planned["error"] is None
    assert {r["status"] for r in planned["renditions"]} <= {"QUEUED", "PROCESSING", "COMPLETED"}
    assert client.call("DELETE", f"jobs/{job_id}").body["status"] == "CANCELED"


def pass_processing_deadline(cloud: RunningCloud, job_id: str) -> None:
    """Fault injection standing in for the clock: the job's deadline becomes now (the sweep's index key)."""
    cloud.emulator().client("dynamodb").update_item(
        TableName=cloud.outputs["jobsTable"],
        Key={"jobId": {"S": job_id}},
        UpdateExpression="SET deadlineAt = :now",
        ConditionExpression="attribute_exists(deadlineAt)",
        ExpressionAttributeValues={":now": {"N": str(int(time.time() * 1000))}},
    )


def test_twenty_concurrent_uploads_all_reach_a_final_state(pipeline_cloud: RunningCloud, tmp_path: Path) -> None:
    small = make_video(tmp_path / "small.mp4", width=426, height=240, seconds=0.5)

    def one_client(index: int) -> dict[str, Any]:
        client = pipeline_cloud.client(f"user-{index}")
        return follow(client, start_upload(client, small), timeout=180)

    with ThreadPoolExecutor(max_workers=20) as pool:
        jobs = list(pool.map(one_client, range(20)))

    assert len({j["jobId"] for j in jobs}) == 20
    assert [j["status"] for j in jobs] == ["COMPLETED"] * 20, [j.get("error") for j in jobs]
    for job in jobs:
        assert renditions(job)["240p"]["status"] == "COMPLETED"
        assert renditions(job)["360p"]["status"] == "SKIPPED"  # no upscaling


class _Receiver(BaseHTTPRequestHandler):
    deliveries: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def _standard_webhooks_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_job_outcome_is_delivered_to_a_signed_webhook(pipeline_cloud: RunningCloud, clip: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = pipeline_cloud.client("webhook-owner")
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        endpoint = client.call("POST", "webhooks", {"url": url})
        assert endpoint.status == 201, endpoint.body
        job_id = start_upload(client, clip)
        assert follow(client, job_id)["status"] == "COMPLETED"

        def delivered() -> tuple[dict[str, str], bytes] | None:
            return next((d for d in _Receiver.deliveries if job_id.encode() in d[1]), None)

        headers, body = wait_for(delivered, 30, message="the webhook delivery")
    finally:
        server.shutdown()
        server.server_close()
    payload = json.loads(body)
    assert (payload["type"], payload["data"]["jobId"], payload["data"]["status"]) == (
        "job.completed",
        job_id,
        "COMPLETED",
    )
    # job.completed carries the playback links, as GET /jobs/{id} shows them, and they play through the CDN
    playback = payload["data"]["playback"]
    assert set(playback) == {"hls", "poster", "thumbnails", "expiresAt"}
    master = request("GET", playback["hls"])
    assert master.status == 200 and str(master.body).startswith("#EXTM3U"), master.body
    expected = _standard_webhooks_signature(endpoint.body["secret"], headers, body)
    assert expected in headers["webhook-signature"].split(" ")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
