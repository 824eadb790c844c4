"""The webhooks function end to end against moto and real receivers on 127.0.0.1: a job outcome on the queue is
fanned out per endpoint, delivered signed (the reference implementation verifies it), retried on a compressed
schedule with the same webhook-id, dead-lettered after the last attempt, and stops at a 410.

The queue is driven the way Lambda's SQS event source drives it: receive, invoke, delete what succeeded.
Under guard_network: names resolve only from DNS below; a connection anywhere but 127.0.0.1 raises.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
import pytest
from standardwebhooks.webhooks import Webhook
from ulid import ULID

from functions.common.clock import now_ms
from functions.common.jobs_table import JobsTable
from functions.common.playback_links import SignedPlayback
from functions.common.webhook_signing import new_secret
from functions.common.webhook_tables import DeliveryLog, EndpointsTable
from functions.contracts.job_view import iso_utc, job_view
from functions.contracts.jobs import JobRecord
from functions.contracts.webhooks import DeliveryError, EndpointStatus, new_endpoint, new_endpoint_id
from functions.webhooks import handler as webhooks
from functions.webhooks.adapters import Transport
from functions.webhooks.service import DeliveryTask, HttpAttempt
from tests.functions.cdn_keys import CDN_BASE_URL, CDN_KEY_PAIR_ID, configure_cdn, unsigned_playback
from tests.functions.conftest import create_jobs_table
from tests.functions.webhooks.conftest import completed_job, outcome_event
from tests.functions.webhooks.support import HANG, LOOPBACK, Receiver, create_webhook_tables, guard_network

REGION = "us-east-1"
ALICE, BOB = "user-alice", "user-bob"
ALL_EVENTS = ("job.completed", "job.failed", "job.rejected", "job.expired")
EVENT_TIME = "2026-11-24T03:00:00Z"
DNS = {"receiver.example.test": [LOOPBACK], "rebound.example.test": ["10.0.0.9"]}
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@dataclass
class Deliveries:
    """The delivery queue, its DLQ and the webhook tables, as one test's world."""

    queue_url: str
    queue_arn: str
    dlq_url: str
    context: Any

    @property
    def sqs(self) -> Any:
        return boto3.client("sqs", region_name=REGION)

    def endpoint(self, owner: str, url: str, events: tuple[str, ...] = ALL_EVENTS) -> dict[str, Any]:
        endpoint = new_endpoint(
            endpoint_id=new_endpoint_id(), owner_id=owner, url=url, events=events, secret=new_secret(), now_ms=now_ms()
        )
        EndpointsTable("webhook-endpoints").create(endpoint)
        return endpoint

    def announce(self, job: JobRecord, detail_type: str = "Job Completed") -> None:
        """The bus event as the rule's SQS target delivers it."""
        event = outcome_event(job, detail_type, time=EVENT_TIME)
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(event))

    def receive(self, wait_seconds: int = 1) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds, AttributeNames=["All"]
        )
        return response.get("Messages", [])

    def invoke(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Lambda's SQS event source: one invocation with these records; delete the ones that did not fail."""
        event = {"Records": [self._record(message) for message in messages]}
        response = webhooks.handler(event, self.context)
        failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return response

    def pump(self, until: Callable[[], bool], timeout_seconds: float = 20) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            messages = self.receive()
            if messages:
                self.invoke(messages)
            if until():
                return
        raise AssertionError("the queue did not reach the expected state in time")

    def in_queue(self) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        keys = (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
        return sum(int(attributes[key]) for key in keys)

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])

    def log(self, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
        return list(reversed(DeliveryLog("webhook-deliveries").recent(endpoint["endpointId"], 100)))

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {
                "ApproximateReceiveCount": message["Attributes"]["ApproximateReceiveCount"],
                "SentTimestamp": message["Attributes"]["SentTimestamp"],
                "SenderId": "AIDAEXAMPLE",
                "ApproximateFirstReceiveTimestamp": message["Attributes"]["ApproximateFirstReceiveTimestamp"],
            },
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": REGION,
        }


@pytest.fixture
def world(aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> Deliveries:
    guard_network(monkeypatch, DNS)
    create_jobs_table()
    create_webhook_tables()
    sqs = boto3.client("sqs", region_name=REGION)
    dlq_url = sqs.create_queue(QueueName="webhooks-dlq")["QueueUrl"]
    queue_url = sqs.create_queue(QueueName="webhooks", Attributes={"VisibilityTimeout": "3"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for name, value in {
        "WEBHOOK_ENDPOINTS_TABLE": "webhook-endpoints",
        "WEBHOOK_DELIVERIES_TABLE": "webhook-deliveries",
        "WEBHOOK_QUEUE_URL": queue_url,
        "WEBHOOK_DLQ_URL": dlq_url,
        "WEBHOOK_RETRY_SCHEDULE": "2,2",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_ALLOWED_ADDRESSES": LOOPBACK,
        "DOWNLOAD_URL_TTL_SECONDS": "600",
        "JOB_RETENTION_DAYS": "30",
    }.items():
        monkeypatch.setenv(name, value)
    configure_cdn(monkeypatch)
    return Deliveries(queue_url, queue_arn, dlq_url, lambda_context)


def job_for(owner: str) -> JobRecord:
    return completed_job(str(ULID()), owner, now_ms())


def iso_ms(text: str) -> int:
    """An ISO-8601 UTC time of the job view (`iso_utc`) back in epoch milliseconds."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def alices_task(
    endpoint_id: str, job_id: str, *, attempt: int, webhook_id: str = "", not_before: int = 0
) -> DeliveryTask:
    """A `job.completed` task for one of alice's endpoints, made by hand as SQS would hand it (over) again."""
    return DeliveryTask(
        webhook_id=webhook_id or f"msg_{job_id}_completed",
        endpoint_id=endpoint_id,
        owner_id=ALICE,
        job_id=job_id,
        event_type="job.completed",
        occurred_at="2026-11-24T03:00:00.000Z",
        attempt=attempt,
        not_before=not_before,
    )


def test_a_job_outcome_reaches_each_subscribed_endpoint_of_its_owner_signed_and_verifiable(world: Deliveries) -> None:
    # GIVEN alice has an endpoint for every event and one for failures only, and bob has one too
    with Receiver([204]) as everything, Receiver([204]) as failures_only, Receiver([204]) as bobs:
        wants_all = world.endpoint(ALICE, everything.url("receiver.example.test"))
        everything.secrets = [wants_all["secret"]]
        world.endpoint(ALICE, failures_only.url(), events=("job.failed",))
        world.endpoint(BOB, bobs.url())
        job = job_for(ALICE)

        # WHEN alice's job completes
        world.announce(job)
        world.pump(until=lambda: len(everything.requests) == 1 and world.in_queue() == 0)

    # THEN exactly one signed delivery, which the reference implementation verifies
    (request,) = everything.requests
    assert request.verified is True
    assert Webhook(wants_all["secret"]).verify(request.body, request.headers)["type"] == "job.completed"
    assert request.headers["webhook-id"] == f"msg_{job.jobId}_completed"
    assert request.headers["host"] == f"receiver.example.test:{everything.port}"
    payload = json.loads(request.body)
    url = payload["data"]["renditions"][0]["url"]
    assert url.startswith(f"https://test-outputs.s3.amazonaws.com/outputs/{job.jobId}/720p.mp4?")
    # the packaged video's links go through the CDN, every one under the same signature for the job's folder
    playback = payload["data"]["playback"]
    links = {"hls": playback["hls"], "poster": playback["poster"], **playback["thumbnails"]}
    folder = f"{CDN_BASE_URL}/outputs/{job.jobId}/"
    assert {name: link.split("?")[0] for name, link in links.items()} == {
        "hls": f"{folder}hls/master.m3u8",
        "poster": f"{folder}poster.jpg",
        "vtt": f"{folder}thumbnails/thumbnails.vtt",
        "sprite": f"{folder}thumbnails/sprite.jpg",
    }
    (signature,) = {link.split("?")[1] for link in links.values()}
    assert f"Key-Pair-Id={CDN_KEY_PAIR_ID}" in signature.split("&")
    delivered = SignedPlayback(urls=links, expires_at_ms=iso_ms(playback["expiresAt"]))
    assert payload == {
        "type": "job.completed",
        "timestamp": "2026-11-24T03:00:00.000Z",
        # exactly what GET /jobs/{id} shows
        "data": job_view(job, lambda key: url, lambda job_id, keys: delivered).model_dump(mode="json"),
    }
    # AND nobody else heard of it: not the failures-only endpoint, not bob
    assert failures_only.requests == [] and bobs.requests == []
    (entry,) = world.log(wants_all)
    assert (entry["outcome"], entry["statusCode"], entry["attempt"], entry["error"]) == ("delivered", 204, 1, None)


def test_a_receiver_failing_twice_then_succeeding_gets_one_logical_delivery(world: Deliveries) -> None:
    with Receiver([500, 503, 200]) as receiver:
        endpoint = world.endpoint(ALICE, receiver.url())
        receiver.secrets = [endpoint["secret"]]
        world.announce(job_for(ALICE))
        world.pump(until=lambda: len(receiver.requests) == 3 and world.in_queue() == 0)

    ids = {request.headers["webhook-id"] for request in receiver.requests}
    assert len(ids) == 1  # the receiver's idempotency key never changes
    assert all(request.verified for request in receiver.requests)
    # The same event each time; only the download links are minted afresh, so a late delivery's links still work.
    payloads = [json.loads(request.body) for request in receiver.requests]
    links = [payload["data"]["renditions"][0].pop("url") for payload in payloads]
    playback = [payload["data"].pop("playback") for payload in payloads]
    assert payloads[0] == payloads[1] == payloads[2]
    assert all("/720p.mp4?" in link for link in links)
    assert all("/hls/master.m3u8?" in links["hls"] for links in playback)
    timestamps = [int(request.headers["webhook-timestamp"]) for request in receiver.requests]
    assert timestamps == sorted(set(timestamps))  # re-signed with a fresh timestamp each time
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert all(1.5 <= gap < 8 for gap in gaps)  # the 2 s schedule, jittered, on SQS delays
    assert [(e["attempt"], e["outcome"], e["statusCode"]) for e in world.log(endpoint)] == [
        (1, "retrying", 500),
        (2, "retrying", 503),
        (3, "delivered", 200),
    ]
    assert world.dead_letters() == []


def test_after_the_last_attempt_the_task_is_dead_lettered_and_a_redrive_tries_once_more(
    world: Deliveries, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a two-attempt schedule and a receiver that fails twice before it recovers
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "1")
    webhooks.dependencies.cache_clear()
    with Receiver([500, 500, 204]) as receiver:
        endpoint = world.endpoint(ALICE, receiver.url())
        job = job_for(ALICE)

        # WHEN alice's job completes and both attempts fail
        world.announce(job)
        world.pump(until=lambda: len(receiver.requests) == 2 and world.in_queue() == 0)

        # THEN the log shows it, the task is parked, and the job shows the failed delivery
        log = world.log(endpoint)
        assert [(e["attempt"], e["outcome"], e["error"]) for e in log] == [
            (1, "retrying", "http_500"),
            (2, "dead-lettered", "http_500"),
        ]
        (parked,) = world.dead_letters()
        assert parked["MessageAttributes"]["reason"]["StringValue"] == "http_500"
        task = DeliveryTask.model_validate_json(parked["Body"])
        assert (task.attempt, task.not_before, task.endpoint_id) == (3, 0, endpoint["endpointId"])
        noted = JobsTable("jobs").get(job.jobId)
        assert (noted.status, noted.version) == ("COMPLETED", job.version + 1)
        failed_at = noted.updatedAt
        assert log[1]["attemptedAt"] <= failed_at <= now_ms()
        assert job_view(noted, str, unsigned_playback).model_dump(mode="json")["webhookFailures"] == [
            {
                "endpointId": endpoint["endpointId"],
                "eventType": "job.completed",
                "attempts": 2,
                "statusCode": 500,
                "error": "http_500",
                "failedAt": iso_utc(failed_at),
            }
        ]

        # WHEN an operator redrives it to the queue, one more attempt is made
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=parked["Body"])
        world.pump(until=lambda: len(receiver.requests) == 3 and world.in_queue() == 0)
    assert world.log(endpoint)[-1]["outcome"] == "delivered"
    # AND the failure stays on the job as it was: a delivery that succeeds leaves the job alone
    assert JobsTable("jobs").get(job.jobId) == noted


def test_each_endpoints_dead_lettered_delivery_shows_once_on_its_owners_job_only(
    world: Deliveries, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a two-attempt schedule; alice has two endpoints that fail differently, bob one that works
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "1")
    webhooks.dependencies.cache_clear()
    with Receiver([503]) as erroring, Receiver([HANG]) as hanging, Receiver([204]) as bobs:
        first = world.endpoint(ALICE, erroring.url())
        second = world.endpoint(ALICE, hanging.url())
        world.endpoint(BOB, bobs.url())
        alices_job, bobs_job = job_for(ALICE), job_for(BOB)

        # WHEN both jobs complete and every attempt to alice's endpoints fails
        world.announce(alices_job)
        world.announce(bobs_job)

        def both_gave_up() -> bool:
            outcomes = [e["outcome"] for e in world.log(first) + world.log(second)]
            return outcomes.count("dead-lettered") == 2 and world.in_queue() == 0 and len(bobs.requests) == 1

        world.pump(until=both_gave_up)

    # THEN alice's job shows one failure per endpoint, in the order they failed, and keeps its status
    noted = JobsTable("jobs").get(alices_job.jobId)
    failures = job_view(noted, str, unsigned_playback).model_dump(mode="json")["webhookFailures"]
    assert sorted((f["endpointId"], f["eventType"], f["attempts"], f["statusCode"], f["error"]) for f in failures) == (
        sorted(
            [
                (first["endpointId"], "job.completed", 2, 503, "http_503"),
                (second["endpointId"], "job.completed", 2, None, "timeout"),
            ]
        )
    )
    assert [f["failedAt"] for f in failures] == sorted(f["failedAt"] for f in failures)
    assert (noted.status, noted.version) == ("COMPLETED", alices_job.version + 2)
    # AND bob's job was never written
    assert JobsTable("jobs").get(bobs_job.jobId) == bobs_job

    # WHEN SQS hands a final task over again (its deletion was lost)
    final = world.log(first)[-1]
    replay = alices_task(first["endpointId"], alices_job.jobId, attempt=final["attempt"], webhook_id=final["webhookId"])
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=replay.to_json())
    world.pump(until=lambda: world.in_queue() == 0)

    # THEN no request is made, the task is parked again, and the job is not written again
    assert len(erroring.requests) == 2
    dlq = world.sqs.get_queue_attributes(QueueUrl=world.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "3"
    assert JobsTable("jobs").get(alices_job.jobId) == noted


def test_a_dead_lettering_cut_short_after_the_log_is_finished_by_the_redelivered_task(world: Deliveries) -> None:
    # GIVEN an invocation logged the last attempt as dead-lettered, then died before noting it or parking the task
    with Receiver([204]) as receiver:
        endpoint = world.endpoint(ALICE, receiver.url())
        job = job_for(ALICE)
        webhook_id = f"msg_{job.jobId}_completed"
        DeliveryLog("webhook-deliveries").finish(
            {
                "endpointId": endpoint["endpointId"],
                "attemptId": f"{webhook_id}#002",
                "attemptedAt": now_ms() - 60_000,
                "webhookId": webhook_id,
                "eventType": "job.completed",
                "jobId": job.jobId,
                "attempt": 2,
                "outcome": "dead-lettered",
                "statusCode": None,
                "error": "connection failed: refused",
                "durationMs": 3,
            }
        )
        task = alices_task(endpoint["endpointId"], job.jobId, attempt=2, webhook_id=webhook_id)

        # WHEN SQS redelivers its task
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=task.to_json())
        world.pump(until=lambda: world.in_queue() == 0)

    # THEN no request is sent again, the job shows the failure (the free text of an attempt logged before errors
    # were coarse codes is shown as its code), and the task is parked
    assert receiver.requests == []
    failures = job_view(JobsTable("jobs").get(job.jobId), str, unsigned_playback).model_dump(mode="json")[
        "webhookFailures"
    ]
    assert [(f["endpointId"], f["attempts"], f["statusCode"], f["error"]) for f in failures] == [
        (endpoint["endpointId"], 2, None, "connect_failed")
    ]
    (parked,) = world.dead_letters()
    assert DeliveryTask.model_validate_json(parked["Body"]).attempt == 3


def test_a_job_deleted_during_its_last_attempt_does_not_stop_the_task_being_parked(
    world: Deliveries, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a two-attempt schedule, a failing receiver, and a job that is deleted while its last attempt is made
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "1")
    webhooks.dependencies.cache_clear()
    with Receiver([500]) as receiver:
        endpoint = world.endpoint(ALICE, receiver.url())
        job = job_for(ALICE)
        post = Transport.post

        def post_then_delete_the_job(transport: Transport, url: str, body: bytes, headers: Any) -> HttpAttempt:
            result = post(transport, url, body, headers)
            if len(receiver.requests) == 2:
                boto3.resource("dynamodb", region_name=REGION).Table("jobs").delete_item(Key={"jobId": job.jobId})
            return result

        monkeypatch.setattr(Transport, "post", post_then_delete_the_job)

        # WHEN both attempts fail
        world.announce(job)
        world.pump(until=lambda: len(receiver.requests) == 2 and world.in_queue() == 0)

    # THEN the attempt is logged and the task parked as for any other job, and no job is written back
    assert [e["outcome"] for e in world.log(endpoint)] == ["retrying", "dead-lettered"]
    (parked,) = world.dead_letters()
    assert DeliveryTask.model_validate_json(parked["Body"]).attempt == 3
    assert "Item" not in boto3.resource("dynamodb", region_name=REGION).Table("jobs").get_item(Key={"jobId": job.jobId})


def test_a_410_disables_the_endpoint_and_nothing_more_is_sent_to_it(world: Deliveries) -> None:
    with Receiver([410]) as receiver:
        endpoint = world.endpoint(ALICE, receiver.url())
        world.announce(job_for(ALICE))
        world.pump(until=lambda: len(receiver.requests) == 1 and world.in_queue() == 0)
        record = EndpointsTable("webhook-endpoints").get(ALICE, endpoint["endpointId"])
        assert (record["status"], record["disabledReason"]) == (EndpointStatus.DISABLED, "HTTP 410 Gone")
        assert [e["outcome"] for e in world.log(endpoint)] == ["endpoint-disabled"]

        world.announce(job_for(ALICE), "Job Failed")
        world.pump(until=lambda: world.in_queue() == 0)
    assert len(receiver.requests) == 1
    assert world.dead_letters() == []


def test_a_hanging_receiver_does_not_hold_up_anyone_elses_delivery(
    world: Deliveries, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "3")
    webhooks.dependencies.cache_clear()
    with Receiver([HANG]) as hanging, Receiver([204]) as alices, Receiver([204]) as bobs:
        stuck = world.endpoint(ALICE, hanging.url())
        healthy = world.endpoint(ALICE, alices.url())
        world.endpoint(BOB, bobs.url())
        world.announce(job_for(ALICE))
        world.announce(job_for(BOB))
        # Fan-out: one task message per endpoint.
        world.pump(until=lambda: world.in_queue() == 3, timeout_seconds=10)
        tasks: list[dict[str, Any]] = []
        for _ in range(10):
            tasks += world.receive()
            if len(tasks) == 3:
                break
        assert len(tasks) == 3

        started = time.monotonic()
        response = world.invoke(tasks)  # one batch holding the hanging endpoint's task and the others
        elapsed = time.monotonic() - started

    assert response == {"batchItemFailures": []}
    # Order, not speed: the others were delivered while the hanging attempt was still waiting for its answer (run one
    # after the other, each would have come after the hang's 3 s cut-off), and the batch lasted at least that long.
    cut_off = hanging.requests[0].at + 3
    assert alices.requests[0].at < cut_off and bobs.requests[0].at < cut_off
    assert elapsed >= 2.9
    (entry,) = world.log(stuck)
    assert (entry["outcome"], entry["error"]) == ("retrying", "timeout")
    assert [e["outcome"] for e in world.log(healthy)] == ["delivered"]


def test_urls_are_checked_again_at_every_delivery_and_redirects_are_not_followed(world: Deliveries) -> None:
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    with Receiver([302], location=metadata) as redirecting:
        rebound = world.endpoint(ALICE, "http://rebound.example.test/hook")  # registered public, resolves private now
        redirect = world.endpoint(ALICE, redirecting.url())
        world.announce(job_for(ALICE))
        world.pump(until=lambda: len(world.log(rebound)) == 1 and len(world.log(redirect)) == 1)
    (refused,) = world.log(rebound)
    assert (refused["outcome"], refused["statusCode"]) == ("retrying", None)
    assert refused["error"] == "refused_address"
    (redirected,) = world.log(redirect)
    assert (redirected["statusCode"], redirected["error"]) == (302, "http_302")
    assert len(redirecting.requests) == 1  # the guard would have raised on a connection to the metadata address


def test_an_endpoint_stored_before_the_port_rule_gets_nothing_on_a_service_port_and_learns_nothing(
    world: Deliveries, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a two-attempt schedule and endpoints registered before ports were checked: SMTP and Redis on a public
    # address, and the same on the name of a receiver that listens (on a port the rule allows)
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "1")
    webhooks.dependencies.cache_clear()
    operators_log = io.StringIO()
    monkeypatch.setattr(webhooks.logger.logger_handler, "stream", operators_log)
    with Receiver([204]) as receiver:
        smtp = world.endpoint(ALICE, "http://8.8.8.8:25/")
        redis = world.endpoint(ALICE, "http://receiver.example.test:6379/hook")
        job = job_for(ALICE)

        # WHEN alice's job completes and every attempt is made
        world.announce(job)
        world.pump(until=lambda: world.in_queue() == 0 and len(world.log(smtp) + world.log(redis)) == 4)

    # THEN nothing was connected to (the guard raises on any address but 127.0.0.1, and the receiver saw nothing),
    # and the log and the job say only that the address was refused: no OS error, address or port
    assert receiver.requests == []
    for endpoint in (smtp, redis):
        assert [(e["outcome"], e["statusCode"], e["error"]) for e in world.log(endpoint)] == [
            ("retrying", None, "refused_address"),
            ("dead-lettered", None, "refused_address"),
        ]
    failures = job_view(JobsTable("jobs").get(job.jobId), str, unsigned_playback).model_dump(mode="json")
    assert sorted((f["endpointId"], f["error"]) for f in failures["webhookFailures"]) == sorted(
        [(smtp["endpointId"], "refused_address"), (redis["endpointId"], "refused_address")]
    )
    # AND the operators' log says exactly why, once per attempt
    failed = [json.loads(line) for line in operators_log.getvalue().splitlines() if "webhook attempt failed" in line]
    assert sorted(line["detail"] for line in failed) == sorted(
        2 * ["refused: the URL's port 25 is not one webhooks may use (80, 443 or 1024-65535)"]
        + 2 * ["refused: the URL's port 6379 belongs to a well-known service (Redis)"]
    )


def test_a_task_that_arrives_before_it_is_due_is_hidden_again(world: Deliveries) -> None:
    with Receiver([204]) as receiver:
        endpoint = world.endpoint(ALICE, receiver.url())
        job = job_for(ALICE)
        task = alices_task(endpoint["endpointId"], job.jobId, attempt=2, not_before=now_ms() + 3_600_000)
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=task.to_json())
        (message,) = world.receive()
        response = world.invoke([message])
        assert response == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
        time.sleep(3.5)  # past the queue's 3 s visibility timeout: the deferral, not the timeout, hides it
        assert world.receive(wait_seconds=0) == []
    assert receiver.requests == [] and world.log(endpoint) == []


def test_a_duplicated_outcome_event_delivers_once(world: Deliveries) -> None:
    with Receiver([204]) as receiver:
        endpoint = world.endpoint(ALICE, receiver.url())
        job = job_for(ALICE)
        world.announce(job)
        world.announce(job)  # EventBridge delivers at least once
        # the duplicate task, meeting the first one's claim while it sends, comes back after the claim's lease
        world.pump(until=lambda: world.in_queue() <= 1 and len(receiver.requests) >= 1)
    assert len(receiver.requests) == 1
    assert [(e["attempt"], e["outcome"]) for e in world.log(endpoint)] == [(1, "delivered")]


def test_tasks_that_need_no_attempt_are_dropped_without_a_request(world: Deliveries) -> None:
    with Receiver([204]) as receiver:
        alices = world.endpoint(ALICE, receiver.url())
        deleted = world.endpoint(ALICE, receiver.url())
        job = job_for(ALICE)
        base = {
            "webhook_id": f"msg_{job.jobId}_completed",
            "owner_id": ALICE,
            "job_id": job.jobId,
            "event_type": "job.completed",
            "occurred_at": "2026-11-24T03:00:00.000Z",
            "attempt": 1,
            "not_before": 0,
        }
        EndpointsTable("webhook-endpoints").delete(ALICE, deleted["endpointId"])
        tasks = [
            DeliveryTask(**{**base, "endpoint_id": deleted["endpointId"]}),  # deleted since the fan-out
            DeliveryTask(**{**base, "endpoint_id": alices["endpointId"], "owner_id": BOB}),  # not bob's endpoint
            DeliveryTask(**{**base, "endpoint_id": alices["endpointId"], "job_id": str(ULID())}),  # job gone
        ]
        for task in tasks:
            world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=task.to_json())
        world.pump(until=lambda: world.in_queue() == 0)
    assert receiver.requests == []
    assert world.log(alices) == [] and world.dead_letters() == []


def test_messages_that_are_neither_tasks_nor_outcomes_fail_or_are_ignored(world: Deliveries) -> None:
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody="not json")
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps({"kind": "webhook-delivery"}))
    other = outcome_event(detail_type="Rendition Completed", detail={"jobId": "J"})
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(other))
    messages: list[dict[str, Any]] = []
    for _ in range(10):
        messages += world.receive()
        if len(messages) == 3:
            break
    response = world.invoke(messages)
    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    by_body = {message["Body"]: message["MessageId"] for message in messages}
    assert failed == {by_body["not json"], by_body[json.dumps({"kind": "webhook-delivery"})]}


def test_an_attempt_abandoned_by_a_crash_is_made_again_but_one_in_flight_waits_for_its_lease(world: Deliveries) -> None:
    with Receiver([204]) as receiver:
        abandoned = world.endpoint(ALICE, receiver.url())
        in_flight = world.endpoint(ALICE, receiver.url("receiver.example.test"))
        job = job_for(ALICE)
        webhook_id = f"msg_{job.jobId}_completed"
        log = DeliveryLog("webhook-deliveries")
        for endpoint, claimed_ms_ago in ((abandoned, 10 * 60_000), (in_flight, 5_000)):
            claim = {
                "endpointId": endpoint["endpointId"],
                "attemptId": f"{webhook_id}#001",
                "attemptedAt": now_ms() - claimed_ms_ago,
                "webhookId": webhook_id,
                "eventType": "job.completed",
                "jobId": job.jobId,
                "attempt": 1,
            }
            log.claim(claim, lease_ms=0)  # an invocation claimed attempt 1, then (for the first) died

        world.announce(job)
        world.pump(until=lambda: world.in_queue() == 1 and len(receiver.requests) >= 1)
        delayed = world.sqs.get_queue_attributes(
            QueueUrl=world.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]["ApproximateNumberOfMessagesDelayed"]
    assert [request.headers["host"] for request in receiver.requests] == [f"{LOOPBACK}:{receiver.port}"]
    assert [e["outcome"] for e in world.log(abandoned)] == ["delivered"]
    assert [e["outcome"] for e in world.log(in_flight)] == ["sending"]  # still its owner's to finish
    # ... and its task is not dropped: it comes back when the claim's lease has run out (if its claimer died meanwhile,
    # it then takes the claim over, as for the abandoned one)
    assert delayed == "1"


def test_a_redelivered_task_whose_attempt_already_failed_requeues_the_retry_once(world: Deliveries) -> None:
    with Receiver([500, 204]) as receiver:
        endpoint = world.endpoint(ALICE, receiver.url())
        world.announce(job_for(ALICE))
        world.pump(until=lambda: world.in_queue() == 0 and len(receiver.requests) == 2)
        # SQS hands the attempt-1 task over again (its deletion was lost): the retry it queues meets attempt 2's claim.
        first = world.log(endpoint)[0]
        replay = alices_task(endpoint["endpointId"], first["jobId"], attempt=1, webhook_id=first["webhookId"])
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=replay.to_json())
        world.pump(until=lambda: world.in_queue() == 0)
    assert len(receiver.requests) == 2
    assert [(e["attempt"], e["outcome"]) for e in world.log(endpoint)] == [(1, "retrying"), (2, "delivered")]


HUNG_ATTEMPT_TIMEOUT_SECONDS = 20
"""Far longer than starting ten threads takes even on a loaded machine: a timeout here means an attempt waited."""


def release_once_reached(reached: Receiver, held: Receiver) -> None:
    """Let `held`'s hung requests go once `reached` has a request, or after a hung attempt's timeout at the latest."""
    deadline = time.monotonic() + HUNG_ATTEMPT_TIMEOUT_SECONDS + 5
    while not reached.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    held.release.set()


def test_a_full_batch_runs_every_attempt_at_once_even_on_a_one_cpu_function(
    world: Deliveries, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncio's default executor would have five threads here: the tenth attempt would wait behind hung ones, and
    # start only once one of them had timed out.
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", str(HUNG_ATTEMPT_TIMEOUT_SECONDS))
    webhooks.dependencies.cache_clear()
    with Receiver([HANG]) as hanging, Receiver([204]) as healthy:
        hung = [world.endpoint(ALICE, hanging.url()) for _ in range(9)]
        fast = world.endpoint(ALICE, healthy.url())
        world.announce(job_for(ALICE))
        world.pump(until=lambda: world.in_queue() == 10, timeout_seconds=10)
        tasks: list[dict[str, Any]] = []
        for _ in range(20):
            tasks += world.receive()
            if len(tasks) == 10:
                break
        assert len(tasks) == 10
        tasks.sort(key=lambda message: json.loads(message["Body"])["endpointId"] == fast["endpointId"])  # it goes last
        # The hung endpoints are let go as soon as the healthy one is reached. Order, not speed, is what is checked:
        # had the healthy attempt waited for a thread, a hung attempt would have timed out before it was reached.
        release = threading.Thread(target=release_once_reached, args=(healthy, hanging), daemon=True)
        release.start()
        world.invoke(tasks)
        release.join()
    assert len(hanging.requests) == 9
    assert not [e for endpoint in hung for e in world.log(endpoint) if e["error"] == DeliveryError.TIMEOUT]
    assert [e["outcome"] for e in world.log(fast)] == ["delivered"]
