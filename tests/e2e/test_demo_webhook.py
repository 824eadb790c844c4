"""The demo's webhook path against the session's local cloud, through the public API only: the receiver the demo
starts, registered as the demo registers it, hears the job's outcome with a signature both verifiers accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.cli.commands import report_webhook, upload_and_follow
from local.cli.receiver import deregister, listen_and_register
from tests.e2e.conftest import RunningCloud, wait_for
from tests.media_samples import make_video

pytestmark = pytest.mark.e2e


def test_the_demo_receiver_gets_the_jobs_verified_webhook(
    pipeline_cloud: RunningCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_video(tmp_path / "demo.mp4", width=426, height=240, seconds=0.5)
    client = pipeline_cloud.client("demo-webhook-owner")
    receiver = listen_and_register(client)
    try:
        assert receiver.secret is not None and receiver.secret.startswith("whsec_")
        [registered] = client.call("GET", "webhooks").body["webhooks"]
        assert (registered["id"], registered["url"]) == (receiver.endpoint_id, receiver.url)

        job = upload_and_follow(client, clip, timeout_seconds=120)
        assert job["status"] == "COMPLETED", job
        assert report_webhook(receiver, client, job, timeout_seconds=30) == 0

        [delivery] = [d for d in receiver.deliveries if d.concerns(job["jobId"])]
        assert (delivery.valid, delivery.verified, delivery.reference_verified, delivery.status) == (
            True,
            True,
            True,
            204,
        )
        assert delivery.webhook_id == f"msg_{job['jobId']}_completed"
        assert (delivery.event_type, delivery.data["jobId"], delivery.data["status"]) == (
            "job.completed",
            job["jobId"],
            "COMPLETED",
        )

        def logged_as_delivered() -> dict[str, object] | None:
            attempts = client.webhook_deliveries(str(receiver.endpoint_id))
            return next((a for a in attempts if a["outcome"] == "delivered"), None)

        attempt = wait_for(logged_as_delivered, 10, message="the delivery log's record of the 204")
        assert (attempt["jobId"], attempt["statusCode"], attempt["attempt"]) == (job["jobId"], 204, 1)
    finally:
        problem = deregister(client, receiver)
        receiver.stop()
    assert problem is None
    assert client.call("GET", "webhooks").body["webhooks"] == []
    out = capsys.readouterr().out
    assert f"data.jobId         {job['jobId']}" in out
    assert "signature verified" in out
