"""Issue 12's webhook weaknesses, attacked again through the session's local cloud and its public API only.

- Port probing: a public host on another service's port (SSH, SMTP, Redis, memcached) is refused at registration by
  the port rule alone; nothing is stubbed here, and nothing leaves the machine, because an IP literal needs no lookup
  and registration never connects. A delivery that fails tells the client a coarse code, never an OS error, an
  address or a port.
- The cap: 20 registrations fired at once by one user leave at most 10 endpoints.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from components.webhooks import MANAGEMENT_ACTIONS
from local.cli.client import HttpResponse
from local.permissions.access import Principal, decide
from local.permissions.enforcement import transaction_requests
from tests.e2e.conftest import RunningCloud, wait_for
from tests.e2e.test_pipeline import follow, start_upload

pytestmark = pytest.mark.e2e

CAP = 10
LOOPBACK = "127.0.0.1"


@pytest.mark.parametrize("port", [22, 25, 6379, 11211])
def test_a_public_host_on_another_services_port_is_refused_at_registration(
    pipeline_cloud: RunningCloud, port: int
) -> None:
    client = pipeline_cloud.client(f"port-prober-{port}")

    response = client.call("POST", "webhooks", {"url": f"http://8.8.8.8:{port}/"})

    assert response.status == 400, response.body
    assert response.body["error"]["code"] == "WEBHOOK_URL_REFUSED"
    assert response.body["error"]["message"].startswith(f"this URL cannot receive webhooks: the URL's port {port} ")
    assert client.call("GET", "webhooks").body == {"webhooks": []}


def test_twenty_concurrent_registrations_leave_at_most_ten_endpoints(pipeline_cloud: RunningCloud) -> None:
    client = pipeline_cloud.client("webhook-cap-racer")

    def register(index: int) -> HttpResponse | None:
        """The answer, or None when the connection was reset (the local gateway's listen queue is short under a burst
        of connections; such a request may or may not have reached the API)."""
        try:
            return client.call("POST", "webhooks", {"url": f"http://{LOOPBACK}:{40000 + index}/hook"})
        except ConnectionResetError:
            return None

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(register, range(20)))

    answered = [answer for answer in answers if answer is not None]
    created = {answer.body["id"] for answer in answered if answer.status == 201}
    refused = [answer for answer in answered if answer.status != 201]
    assert all((a.status, a.body["error"]["code"]) == (409, "TOO_MANY_WEBHOOKS") for a in refused), refused
    listed = {w["id"] for w in client.call("GET", "webhooks").body["webhooks"]}
    assert len(listed) <= CAP
    assert created <= listed and len(listed - created) <= answers.count(None)
    assert len(answered) < CAP or len(listed) == CAP  # with 10 or more answered, the cap was reached, not passed

    # A delete frees one slot, and only one.
    client.delete_webhook(sorted(listed)[0])
    first, second = register(0), register(1)
    assert first is not None and first.status == 201, first
    assert second is not None and (second.status, second.body["error"]["code"]) == (409, "TOO_MANY_WEBHOOKS")


def test_a_failed_delivery_tells_the_client_a_coarse_code_only(pipeline_cloud: RunningCloud, tmp_path: Path) -> None:
    # GIVEN an endpoint on a local port nothing listens on (the local cloud admits 127.0.0.1 receivers)
    probe = socket.socket()
    probe.bind((LOOPBACK, 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    client = pipeline_cloud.client("webhook-coarse-errors")
    endpoint = client.register_webhook(f"http://{LOOPBACK}:{closed_port}/hook", events=["job.rejected"])

    # WHEN a job of that user is rejected (a file that is no media) and every attempt fails
    garbage = tmp_path / "not-media.mp4"
    garbage.write_bytes(b"this is not a video" * 64)
    job = follow(client, start_upload(client, garbage))
    assert job["status"] == "REJECTED", job

    def gave_up() -> dict[str, Any] | None:
        failures = client.job(job["jobId"])["webhookFailures"]
        return failures[0] if failures else None

    failure = wait_for(gave_up, 60, message="the dead-lettered delivery on the job")

    # THEN the job and the delivery log say `connect_failed`, and nothing about the OS error, address or port
    assert (failure["endpointId"], failure["statusCode"], failure["error"]) == (endpoint["id"], None, "connect_failed")
    attempts = client.webhook_deliveries(endpoint["id"])
    assert attempts and {a["error"] for a in attempts} == {"connect_failed"}
    shown = repr(attempts) + repr(failure)
    for leak in ("Errno", "refused", "Connection", str(closed_port)):
        assert leak not in shown


def test_the_local_cloud_authorizes_a_transaction_item_by_item() -> None:
    # The endpoints' create and delete are transactions; IAM has no action for them and decides each item as the
    # action it performs, on its own table, which is what the api's grant allows.
    account, region = "123456789012", "us-east-1"
    endpoints = f"arn:aws:dynamodb:{region}:{account}:table/webhooks-endpoints"
    grant = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(MANAGEMENT_ACTIONS), "Resource": endpoints}],
    }
    api = Principal(account=account, role_arn=f"arn:aws:iam::{account}:role/api-role")

    def decisions(*items: dict[str, Any]) -> list[tuple[str, bool]]:
        requests = transaction_requests(
            {"TransactItems": list(items)}, "dynamodb:TransactWriteItems", account, region, {}
        )
        return [(request.action, decide(api, request, [grant]).allowed) for request in requests]

    update = {"Update": {"TableName": "webhooks-endpoints", "Key": {}, "UpdateExpression": "SET n = n + :one"}}
    put = {"Put": {"TableName": "webhooks-endpoints", "Item": {}}}
    delete = {"Delete": {"TableName": "webhooks-endpoints", "Key": {}}}
    assert decisions(update, put) == [("dynamodb:UpdateItem", True), ("dynamodb:PutItem", True)]
    assert decisions(update, delete) == [("dynamodb:UpdateItem", True), ("dynamodb:DeleteItem", True)]
    # Not granted: a condition check, and any item on another table.
    check = {"ConditionCheck": {"TableName": "webhooks-endpoints", "Key": {}, "ConditionExpression": "x"}}
    elsewhere = {"Put": {"TableName": "jobs", "Item": {}}}
    assert decisions(check, elsewhere) == [("dynamodb:ConditionCheckItem", False), ("dynamodb:PutItem", False)]
    requests = transaction_requests({"TransactItems": [put]}, "dynamodb:TransactWriteItems", account, region, {})
    assert requests[0].resources == (endpoints,)
    assert requests[0].context == {"dynamodb:EnclosingOperation": "TransactWriteItems"}
