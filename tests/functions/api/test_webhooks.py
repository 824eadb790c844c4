"""The webhook routes of the api function against moto: registration (with the SSRF check), listing without
secrets, deletion, secret rotation, the delivery log, and one user never seeing another's endpoints."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.api import handler as api
from functions.api.adapters import DynamoEndpoints, ResolvingUrlPolicy
from functions.api.service import ApiError, WebhookRegistration, Webhooks
from functions.api.settings import WebhookSettings
from functions.common import webhook_tables
from functions.common.ssrf import AddressPolicy
from functions.common.webhook_signing import secret_key
from functions.common.webhook_tables import COUNTER_ID, DeliveryLog, EndpointNotFound, EndpointsTable
from functions.contracts.webhooks import new_endpoint, new_endpoint_id, signing_secrets
from local.engine.moto_patches import serialize_dynamodb_requests
from tests.functions.api.conftest import ALICE, BOB, JSON_HEADERS, call, error, http_event
from tests.functions.cdn_keys import configure_cdn
from tests.functions.webhooks.support import create_webhook_tables, guard_network

ALL_EVENTS = ["job.completed", "job.failed", "job.rejected", "job.expired", "job.canceled", "job.deleted"]
HOOK = "https://hooks.example.com/media"
NOW_MS = 1_790_000_000_000
ENV = {
    "MAX_UPLOAD_BYTES": "1000000",
    "MAX_IMAGE_UPLOAD_BYTES": "1000000",
    "MAX_AUDIO_UPLOAD_BYTES": "1000000",
    "ALLOWED_CONTENT_TYPES": "video/mp4",
    "UPLOAD_URL_TTL_SECONDS": "900",
    "DOWNLOAD_URL_TTL_SECONDS": "300",
    "JOB_RETENTION_DAYS": "30",
    "WEBHOOK_ENDPOINTS_TABLE": "webhook-endpoints",
    "WEBHOOK_DELIVERIES_TABLE": "webhook-deliveries",
    "WEBHOOK_SECRET_OVERLAP_SECONDS": "86400",
}
DNS = {"hooks.example.com": ["93.184.215.14"], "intranet.example.com": ["10.1.1.1"], "localhost": ["127.0.0.1"]}
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@pytest.fixture
def app(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    guard_network(monkeypatch, DNS)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    configure_cdn(monkeypatch)
    monkeypatch.setattr(api, "now_ms", lambda: NOW_MS)
    create_webhook_tables()


def register(lambda_context: Any, sub: str = ALICE, **body: Any) -> dict[str, Any]:
    response = call(http_event("POST", "/webhooks", sub=sub, body={"url": HOOK, **body}), lambda_context)
    assert response["statusCode"] == 201, response
    return response["body"]


def stored(owner: str, endpoint_id: str) -> dict[str, Any]:
    return EndpointsTable("webhook-endpoints").get(owner, endpoint_id)


def test_registering_answers_the_endpoint_and_its_secret_once(app: None, lambda_context: Any) -> None:
    # GIVEN alice registers a public URL without naming events
    response = call(http_event("POST", "/webhooks", body={"url": HOOK}), lambda_context)

    # THEN 201: the endpoint, all four event types, active, and its secret
    body = response["body"]
    endpoint_id = body["id"]
    assert response == {
        "statusCode": 201,
        "headers": {**JSON_HEADERS, "Location": f"/webhooks/{endpoint_id}"},
        "body": {
            "id": endpoint_id,
            "url": HOOK,
            "events": ALL_EVENTS,
            "status": "active",
            "createdAt": "2026-09-21T14:13:20.000Z",
            "updatedAt": "2026-09-21T14:13:20.000Z",
            "disabledReason": None,
            "secret": body["secret"],
        },
    }
    assert endpoint_id.startswith("ep_") and len(endpoint_id) == 29
    assert len(secret_key(body["secret"])) == 32
    # AND the record is alice's, with that secret
    record = stored(ALICE, endpoint_id)
    assert (record["ownerId"], record["secret"], record["status"]) == (ALICE, body["secret"], "ACTIVE")


def test_an_endpoint_can_ask_for_some_event_types_only(app: None, lambda_context: Any) -> None:
    body = register(lambda_context, events=["job.failed", "job.expired"])
    assert body["events"] == ["job.failed", "job.expired"]
    assert stored(ALICE, body["id"])["events"] == ["job.failed", "job.expired"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": HOOK, "events": []}, "INVALID_EVENTS"),
        ({"url": HOOK, "events": ["job.created"]}, "INVALID_EVENTS"),
        ({"url": HOOK, "events": ["job.failed", "job.failed"]}, "INVALID_EVENTS"),
        ({"url": HOOK, "events": "job.failed"}, "INVALID_EVENTS"),
        ({"events": ["job.failed"]}, "INVALID_URL"),
        ({"url": 42}, "INVALID_URL"),
        ({"url": HOOK, "secret": "whsec_mine"}, "INVALID_REQUEST"),
        ("[1]", "INVALID_REQUEST"),
        ("{", "INVALID_JSON"),
    ],
)
def test_malformed_registrations_are_refused_and_store_nothing(
    app: None, lambda_context: Any, body: Any, code: str
) -> None:
    response = call(http_event("POST", "/webhooks", body=body), lambda_context)
    assert (response["statusCode"], response["body"]["error"]["code"]) == (400, code)
    assert EndpointsTable("webhook-endpoints").list_for_owner(ALICE) == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "the URL's host resolves to a link-local address"),
        ("http://10.0.0.1/hook", "the URL's host resolves to a private address"),
        ("https://intranet.example.com/hook", "the URL's host resolves to a private address"),
        ("http://localhost:8080/hook", "the URL's host resolves to a loopback address"),
        ("http://[::ffff:127.0.0.1]/hook", "the URL's host resolves to a loopback address"),
        ("http://2130706433/hook", "numeric hosts must be written as four decimal octets"),
        ("ftp://hooks.example.com/", "only http and https URLs are allowed"),
        ("https://unknown.example.com/", "the URL's host does not resolve"),
    ],
)
def test_urls_the_ssrf_policy_refuses_are_refused_at_registration(
    app: None, lambda_context: Any, url: str, reason: str
) -> None:
    response = call(http_event("POST", "/webhooks", body={"url": url}), lambda_context)
    assert response == error(400, "WEBHOOK_URL_REFUSED", f"this URL cannot receive webhooks: {reason}")
    assert EndpointsTable("webhook-endpoints").list_for_owner(ALICE) == []


def test_a_local_cloud_allow_list_admits_its_loopback_receiver(
    app: None, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOWED_ADDRESSES", "127.0.0.1")
    api.webhooks_service.cache_clear()
    assert register(lambda_context, url="http://127.0.0.1:8765/hook")["url"] == "http://127.0.0.1:8765/hook"
    response = call(http_event("POST", "/webhooks", body={"url": "http://10.0.0.1/hook"}), lambda_context)
    assert response["body"]["error"]["code"] == "WEBHOOK_URL_REFUSED"


def test_listing_shows_only_the_callers_endpoints_and_never_a_secret(app: None, lambda_context: Any) -> None:
    first = register(lambda_context)
    second = register(lambda_context, events=["job.completed"])
    bobs = register(lambda_context, sub=BOB)
    # Secrets are per endpoint: no two alike, across endpoints and users.
    assert len({first["secret"], second["secret"], bobs["secret"]}) == 3

    response = call(http_event("GET", "/webhooks"), lambda_context)

    assert response["statusCode"] == 200
    assert [w["id"] for w in response["body"]["webhooks"]] == sorted([first["id"], second["id"]])
    text = json.dumps(response["body"])
    for secret in (first["secret"], second["secret"], bobs["secret"]):
        assert secret not in text
    assert "secret" not in text.lower()
    bob_list = call(http_event("GET", "/webhooks", sub=BOB), lambda_context)["body"]["webhooks"]
    assert [w["id"] for w in bob_list] == [bobs["id"]]


def test_another_users_endpoint_answers_exactly_like_a_missing_one(app: None, lambda_context: Any) -> None:
    alices = register(lambda_context)["id"]
    missing = "ep_01JD5Z3K8Q4WJ2V7N6M9P0R1ST"
    not_found = error(404, "WEBHOOK_NOT_FOUND", "webhook not found")
    for endpoint_id in (alices, missing, "not-an-id"):
        assert call(http_event("DELETE", f"/webhooks/{endpoint_id}", sub=BOB), lambda_context) == not_found
        assert call(http_event("POST", f"/webhooks/{endpoint_id}/rotate-secret", sub=BOB), lambda_context) == not_found
        assert call(http_event("GET", f"/webhooks/{endpoint_id}/deliveries", sub=BOB), lambda_context) == not_found
    assert stored(ALICE, alices)["status"] == "ACTIVE"  # untouched


def test_deleting_removes_the_endpoint(app: None, lambda_context: Any) -> None:
    endpoint_id = register(lambda_context)["id"]
    response = call(http_event("DELETE", f"/webhooks/{endpoint_id}"), lambda_context)
    assert (response["statusCode"], response["body"], response["headers"]) == (204, None, {"Cache-Control": "no-store"})
    assert call(http_event("GET", "/webhooks"), lambda_context)["body"] == {"webhooks": []}
    assert call(http_event("DELETE", f"/webhooks/{endpoint_id}"), lambda_context)["statusCode"] == 404


def test_rotating_issues_a_new_secret_and_keeps_the_old_one_signing_for_the_overlap(
    app: None, lambda_context: Any
) -> None:
    created = register(lambda_context)
    response = call(http_event("POST", f"/webhooks/{created['id']}/rotate-secret"), lambda_context)

    assert response["statusCode"] == 200
    new_secret = response["body"]["secret"]
    assert response["body"] == {
        "id": created["id"],
        "secret": new_secret,
        "previousSecretExpiresAt": "2026-09-22T14:13:20.000Z",  # 24 h overlap
    }
    assert new_secret != created["secret"] and len(secret_key(new_secret)) == 32
    record = stored(ALICE, created["id"])
    assert (record["secret"], record["previousSecret"]) == (new_secret, created["secret"])
    assert signing_secrets(record, NOW_MS + 1000) == [new_secret, created["secret"]]
    assert signing_secrets(record, NOW_MS + 86_400_000) == [new_secret]
    # A second rotation drops the first secret for good: only the one it replaced still overlaps.
    again = call(http_event("POST", f"/webhooks/{created['id']}/rotate-secret"), lambda_context)["body"]["secret"]
    assert signing_secrets(stored(ALICE, created["id"]), NOW_MS + 1000) == [again, new_secret]


def test_the_delivery_log_lists_recent_attempts_newest_first(app: None, lambda_context: Any) -> None:
    endpoint_id = register(lambda_context)["id"]
    log = DeliveryLog("webhook-deliveries")
    for attempt, (outcome, status, error_text) in enumerate(
        # The second was logged before errors were coarse codes: it is shown as the code it stands for.
        [("retrying", 500, "http_500"), ("retrying", None, "timed out after 15 s"), ("delivered", 204, None)],
        start=1,
    ):
        entry = {
            "endpointId": endpoint_id,
            "attemptId": f"msg_J_completed#{attempt:03d}",
            "attemptedAt": NOW_MS + attempt * 1000,
            "webhookId": "msg_J_completed",
            "eventType": "job.completed",
            "jobId": "J",
            "attempt": attempt,
            "outcome": outcome,
            "statusCode": status,
            "error": error_text,
            "durationMs": 12,
        }
        if outcome == "retrying":
            entry["nextAttemptAt"] = NOW_MS + attempt * 1000 + 5000
        log.finish(entry)
    bobs = register(lambda_context, sub=BOB)["id"]
    log.finish({**entry, "endpointId": bobs, "attemptId": "msg_B_failed#001", "jobId": "B"})

    response = call(http_event("GET", f"/webhooks/{endpoint_id}/deliveries", query={"limit": "2"}), lambda_context)

    assert response["statusCode"] == 200
    assert response["body"] == {
        "deliveries": [
            {
                "webhookId": "msg_J_completed",
                "event": "job.completed",
                "jobId": "J",
                "attempt": 3,
                "outcome": "delivered",
                "statusCode": 204,
                "error": None,
                "attemptedAt": "2026-09-21T14:13:23.000Z",
                "durationMs": 12,
                "nextAttemptAt": None,
            },
            {
                "webhookId": "msg_J_completed",
                "event": "job.completed",
                "jobId": "J",
                "attempt": 2,
                "outcome": "retrying",
                "statusCode": None,
                "error": "timeout",
                "attemptedAt": "2026-09-21T14:13:22.000Z",
                "durationMs": 12,
                "nextAttemptAt": "2026-09-21T14:13:27.000Z",
            },
        ]
    }
    everything = call(http_event("GET", f"/webhooks/{endpoint_id}/deliveries"), lambda_context)["body"]["deliveries"]
    assert [d["attempt"] for d in everything] == [3, 2, 1]
    assert {d["jobId"] for d in everything} == {"J"}  # bob's attempts stay bob's
    bad = call(http_event("GET", f"/webhooks/{endpoint_id}/deliveries", query={"limit": "0"}), lambda_context)
    assert bad["body"]["error"]["code"] == "INVALID_LIMIT"


def test_an_account_holds_at_most_ten_endpoints(app: None, lambda_context: Any) -> None:
    for _ in range(10):
        register(lambda_context)
    response = call(http_event("POST", "/webhooks", body={"url": HOOK}), lambda_context)
    assert response == error(409, "TOO_MANY_WEBHOOKS", "an account can register at most 10 webhooks")
    assert register(lambda_context, sub=BOB)["url"] == HOOK  # the limit is per account


def test_a_wrong_method_on_a_webhook_path_says_which_are_allowed(app: None, lambda_context: Any) -> None:
    response = call(http_event("PUT", "/webhooks/ep_01JD5Z3K8Q4WJ2V7N6M9P0R1ST"), lambda_context)
    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "DELETE"


def test_webhook_routes_fail_loudly_when_their_tables_are_not_configured(
    app: None, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBHOOK_ENDPOINTS_TABLE")
    api.webhooks_service.cache_clear()
    with pytest.raises(RuntimeError, match="WEBHOOK_ENDPOINTS_TABLE is required"):
        api.handler(http_event("GET", "/webhooks"), lambda_context)


# --- issue 12: webhooks are no port scanner, and the cap holds under concurrency -------------------------------------


@pytest.mark.parametrize("port", [22, 25, 6379, 11211])
def test_a_public_host_on_another_services_port_is_refused_at_registration(
    app: None, lambda_context: Any, port: int
) -> None:
    # GIVEN a public address (nothing to resolve) on the port of SSH, SMTP, Redis or memcached
    # WHEN alice registers it
    response = call(http_event("POST", "/webhooks", body={"url": f"http://8.8.8.8:{port}/"}), lambda_context)

    # THEN it is refused like any URL the SSRF policy refuses, and nothing is stored (the network guard proves no
    # packet was sent: any connection but to 127.0.0.1 raises)
    assert response["statusCode"] == 400, response
    assert response["body"]["error"]["code"] == "WEBHOOK_URL_REFUSED"
    assert response["body"]["error"]["message"].startswith(f"this URL cannot receive webhooks: the URL's port {port} ")
    assert EndpointsTable("webhook-endpoints").list_for_owner(ALICE) == []


def test_a_stacks_port_list_replaces_the_rule_at_registration(
    app: None, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOWED_PORTS", "8443")
    api.webhooks_service.cache_clear()
    assert register(lambda_context, url="https://hooks.example.com:8443/media")["url"].endswith(":8443/media")
    refused = call(http_event("POST", "/webhooks", body={"url": HOOK}), lambda_context)
    assert refused == error(400, "WEBHOOK_URL_REFUSED", "this URL cannot receive webhooks: the URL's port must be 8443")


def _register_concurrently(owner: str, count: int) -> list[tuple[str, str]]:
    """`count` registrations by one owner at once, each as its own Lambda instance would make it (own clients); the
    outcome of each: ("created", id) or ("refused", error code)."""
    settings = WebhookSettings.from_env()
    start = threading.Barrier(count)

    def one(_: int) -> tuple[str, str]:
        service = Webhooks(
            endpoints=DynamoEndpoints(EndpointsTable(settings.endpoints_table, boto3.resource("dynamodb"))),
            deliveries=DeliveryLog(settings.deliveries_table, boto3.resource("dynamodb")),
            urls=ResolvingUrlPolicy(AddressPolicy()),
            secret_overlap_seconds=settings.secret_overlap_seconds,
        )
        start.wait()
        try:
            created = service.register(owner, WebhookRegistration(url=HOOK), now_ms=NOW_MS)
        except ApiError as refused:
            return ("refused", f"{int(refused.status)} {refused.code}")
        return ("created", created.id)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_twenty_concurrent_registrations_create_exactly_ten_endpoints(app: None, lambda_context: Any) -> None:
    # GIVEN the moto backend applies each request atomically, as DynamoDB does (the local cloud's correction)
    serialize_dynamodb_requests()

    # WHEN alice fires 20 registrations at once
    outcomes = _register_concurrently(ALICE, 20)

    # THEN exactly 10 are created and 10 refused with the cap's answer; the table holds exactly those 10
    created = sorted(value for kind, value in outcomes if kind == "created")
    refused = [value for kind, value in outcomes if kind == "refused"]
    assert (len(created), refused) == (10, ["409 TOO_MANY_WEBHOOKS"] * 10)
    listed = call(http_event("GET", "/webhooks"), lambda_context)["body"]["webhooks"]
    assert sorted(w["id"] for w in listed) == created

    # AND a delete frees exactly one slot, even when two registrations race for it
    assert call(http_event("DELETE", f"/webhooks/{created[0]}"), lambda_context)["statusCode"] == 204
    again = _register_concurrently(ALICE, 2)
    assert sorted(kind for kind, _ in again) == ["created", "refused"]
    assert len(call(http_event("GET", "/webhooks"), lambda_context)["body"]["webhooks"]) == 10
    assert register(lambda_context, sub=BOB)["url"] == HOOK  # still per account


def test_endpoints_made_before_the_counter_are_counted_before_the_first_change(app: None, lambda_context: Any) -> None:
    # GIVEN alice's ten endpoints were stored before there was a counter (plain puts, as the table held them)
    table = boto3.resource("dynamodb").Table("webhook-endpoints")
    old = [f"ep_01JD5Z3K8Q4WJ2V7N6M9P0R1{n:02d}" for n in range(10)]
    for endpoint_id in old:
        table.put_item(
            Item=new_endpoint(
                endpoint_id=endpoint_id, owner_id=ALICE, url=HOOK, events=ALL_EVENTS, secret="whsec_x", now_ms=NOW_MS
            )
        )

    # THEN an eleventh is refused: the counter starts from a count of what is there
    full = call(http_event("POST", "/webhooks", body={"url": HOOK}), lambda_context)
    assert full == error(409, "TOO_MANY_WEBHOOKS", "an account can register at most 10 webhooks")
    counter = table.get_item(Key={"ownerId": ALICE, "endpointId": COUNTER_ID}, ConsistentRead=True)["Item"]
    assert counter["endpointCount"] == 10
    # AND the counter is nobody's endpoint: not listed, not deletable, not found
    assert len(call(http_event("GET", "/webhooks"), lambda_context)["body"]["webhooks"]) == 10
    with pytest.raises(EndpointNotFound):
        EndpointsTable("webhook-endpoints").get(ALICE, COUNTER_ID)
    with pytest.raises(EndpointNotFound):
        EndpointsTable("webhook-endpoints").delete(ALICE, COUNTER_ID)

    # WHEN one old endpoint is deleted, one slot opens
    assert call(http_event("DELETE", f"/webhooks/{old[0]}"), lambda_context)["statusCode"] == 204
    register(lambda_context)
    assert call(http_event("POST", "/webhooks", body={"url": HOOK}), lambda_context)["statusCode"] == 409
    # AND bob, whose first change is a delete of something he does not have, gets a counter of zero
    missing = call(http_event("DELETE", f"/webhooks/{old[1]}", sub=BOB), lambda_context)
    assert missing == error(404, "WEBHOOK_NOT_FOUND", "webhook not found")
    assert table.get_item(Key={"ownerId": BOB, "endpointId": COUNTER_ID})["Item"]["endpointCount"] == 0


class _ConflictingTransactions:
    """DynamoDB's answer to a transaction that met another on the same item, `conflicts` times, then the real one."""

    def __init__(self, client: Any, conflicts: int) -> None:
        self._client = client
        self.conflicts = conflicts
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **request: Any) -> Any:
        self.calls += 1
        if self.conflicts:
            self.conflicts -= 1
            reasons = [{"Code": "TransactionConflict"}, {"Code": "None"}]
            response = {"Error": {"Code": "TransactionCanceledException"}, "CancellationReasons": reasons}
            raise ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]
        return self._client.transact_write_items(**request)


@pytest.mark.parametrize(("conflicts", "outcome"), [(3, "created"), (100, "409 CONCURRENT_CHANGE")])
def test_conflicting_transactions_are_retried_and_a_lasting_conflict_is_a_409(
    app: None, monkeypatch: pytest.MonkeyPatch, conflicts: int, outcome: str
) -> None:
    monkeypatch.setattr(webhook_tables.time, "sleep", lambda seconds: None)
    table = EndpointsTable("webhook-endpoints")
    EndpointsTable("webhook-endpoints").create(
        new_endpoint(endpoint_id=new_endpoint_id(), owner_id=ALICE, url=HOOK, events=ALL_EVENTS, secret="s", now_ms=1)
    )  # alice has a counter
    conflicting = _ConflictingTransactions(table._table.meta.client, conflicts)
    table._table.meta.client = conflicting
    service = Webhooks(
        endpoints=DynamoEndpoints(table),
        deliveries=DeliveryLog("webhook-deliveries"),
        urls=ResolvingUrlPolicy(AddressPolicy()),
        secret_overlap_seconds=60,
    )
    try:
        service.register(ALICE, WebhookRegistration(url=HOOK), now_ms=NOW_MS)
        result = "created"
    except ApiError as refused:
        result = f"{int(refused.status)} {refused.code}"
        assert refused.message == "the account's webhooks changed meanwhile; try again"
    assert result == outcome
    assert conflicting.calls == min(conflicts + 1, webhook_tables.TRANSACTION_ATTEMPTS)
    assert len(EndpointsTable("webhook-endpoints").list_for_owner(ALICE)) == (2 if outcome == "created" else 1)
