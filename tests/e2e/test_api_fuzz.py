"""The API fuzzed from its own description, docs/openapi.json, with schemathesis against the session's local cloud
(issue 12). The document is read when the tests run, so a route is fuzzed as soon as `make openapi` lists it.

Every operation gets a fixed number of valid and of invalid requests, seeded (a run sends what the last one sent);
no answer may be a 5xx, and each must have a documented status, content type and body. Then, for every route with a
path id, another user's resource must be answered exactly like a missing one.

Each test is a user of its own (the token's `sub`): what it creates, and the per-user quotas it uses up (a 429 is a
documented answer), are its own. A webhook URL is the one input that could reach past this machine, as registering
one resolves its host: every URL sent names an IP address or a numeric host, which nothing looks up, and the only
one the local cloud's address policy admits is 127.0.0.1. The webhooks registered are deleted when a test ends.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from ulid import ULID

from functions.common.ssrf import AddressPolicy, UrlRefused, check_url, parse_allowed_networks
from local.cli.client import ApiClient
from local.cloud import free_port
from tests.e2e.conftest import REPO, RunningCloud

pytestmark = pytest.mark.e2e

DOCUMENT = REPO / "docs" / "openapi.json"
EXAMPLES_PER_MODE = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SEEDED = settings(
    derandomize=True,  # the same requests on every run
    database=None,  # and nothing remembered in .hypothesis/ between runs
    deadline=None,  # a slow answer on a loaded machine is no failure
    suppress_health_check=list(HealthCheck),  # they time the generation, which depends on the machine
)
FUZZ = settings(SEEDED, max_examples=EXAMPLES_PER_MODE)
SIMPLEST = settings(SEEDED, phases=[Phase.generate])  # the first example `find` generates: the simplest, unshrunk
TIMEOUT_SECONDS = 60  # per request
# Hosts that are never looked up: 127.0.0.1 is the one the local cloud admits; the policy refuses the others.
WEBHOOK_HOSTS = ("127.0.0.1", "[::1]", "10.0.0.1", "169.254.169.254", "192.0.2.1", "0x7f.1", "2130706433")
ALLOWED_CONTENT_TYPES = ("video/mp4", "IMAGE/PNG", "audio/mpeg")  # Pulumi.yaml's defaults, in any case
UPLOAD = {"filename": "clip.mp4", "contentType": "video/mp4", "size": 1_000_000}
ULID_CHARACTERS = 26
# Headers that differ on every answer, whatever was asked.
PER_ANSWER_HEADERS = frozenset({"date", "apigw-requestid"})


def operation_keys(document_path: Path) -> set[str]:
    """`METHOD /path` of every operation the document lists, read from its JSON rather than by schemathesis."""
    paths = json.loads(document_path.read_text(encoding="utf-8"))["paths"]
    return {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}


def operations() -> list[APIOperation]:
    """The document's operations, DELETEs last: until then, requests can still find the resources a test made."""
    found = [result.ok() for result in schemathesis.openapi.from_path(DOCUMENT).get_all_operations()]
    return sorted(found, key=lambda operation: operation.method.upper() == "DELETE")


def bearer(cloud: RunningCloud, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {cloud.token(sub)}"}


def webhook_urls() -> st.SearchStrategy[str]:
    """URLs for the webhook routes: any scheme, port and path, but a host that is an IP address or numeric."""
    port = st.one_of(st.just(""), st.integers(min_value=0, max_value=70_000).map(lambda number: f":{number}"))
    return st.builds(
        lambda scheme, host, port, rest: f"{scheme}://{host}{port}/{rest}",
        st.sampled_from(["http", "https", "HTTP", "ftp"]),
        st.sampled_from(WEBHOOK_HOSTS),
        port,
        st.text(max_size=40),  # after the "/" that ends the host, whatever it holds
    )


def steer(case: Case, draw: Callable[[st.SearchStrategy[Any]], Any], own_ids: dict[str, str]) -> None:
    """Replace a few generated values: some path ids with the user's own, some content types with allowed ones, so
    requests also get past the first refusal; and every webhook URL with one whose host is never looked up."""
    for name, value in (case.path_parameters or {}).items():
        if name in own_ids:
            case.path_parameters[name] = draw(st.sampled_from([value, own_ids[name]]))
    if isinstance(case.body, dict):
        if "contentType" in case.body:
            case.body["contentType"] = draw(st.sampled_from([case.body["contentType"], *ALLOWED_CONTENT_TYPES]))
        if isinstance(case.body.get("url"), str):
            case.body["url"] = draw(webhook_urls())


def fuzz(
    operation: APIOperation, mode: GenerationMode, send: Callable[[Case], Response], own_ids: dict[str, str]
) -> None:
    """Up to EXAMPLES_PER_MODE requests of one mode; raises what the checks found, with a curl to repeat each."""

    @FUZZ
    @given(case=operation.as_strategy(mode), data=st.data())
    def answers_as_documented(case: Case, data: st.DataObject) -> None:
        steer(case, data.draw, own_ids)
        case.validate_response(send(case), checks=CHECKS)

    answers_as_documented()


def simplest(strategy: st.SearchStrategy[Any]) -> Any:
    return find(strategy, lambda _: True, settings=SIMPLEST)


def same_shape_missing(resource_id: str) -> str:
    """An ID like `resource_id` (its prefix, then a ULID) that names nothing."""
    return resource_id[:-ULID_CHARACTERS] + str(ULID())


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def delete_webhooks(client: ApiClient) -> None:
    """A registered URL gets the user's job events: none is left registered once a test ends."""
    for webhook in client.call("GET", "webhooks").body["webhooks"]:
        client.delete_webhook(webhook["id"])


@SEEDED
@given(url=webhook_urls())
def test_no_webhook_url_the_fuzzing_sends_names_a_host_to_look_up(url: str) -> None:
    looked_up: list[str] = []
    policy = AddressPolicy(
        allowed=parse_allowed_networks(["127.0.0.1"]), resolver=lambda host, port: looked_up.append(host) or []
    )

    with contextlib.suppress(UrlRefused):  # refused, or admitted (127.0.0.1): either way without a lookup
        check_url(url, policy)

    assert looked_up == []


def test_every_operation_in_the_document_answers_as_documented(
    pipeline_cloud: RunningCloud, http: requests.Session
) -> None:
    user = "api-fuzz"
    client, headers = pipeline_cloud.client(user), bearer(pipeline_cloud, user)
    # GIVEN a job and a webhook of the user's own, so requests that name them reach past "not found"
    job = client.call("POST", "uploads", UPLOAD)
    assert job.status == 201, job
    webhook = client.register_webhook(f"http://127.0.0.1:{free_port()}/api-fuzz")
    own_ids = {"jobId": job.body["jobId"], "webhookId": webhook["id"]}

    answers: defaultdict[str, Counter[int]] = defaultdict(Counter)

    def send(case: Case) -> Response:
        response = case.call(base_url=pipeline_cloud.api_url, session=http, headers=headers, timeout=TIMEOUT_SECONDS)
        answers[case.operation.label][response.status_code] += 1
        return response

    # WHEN each operation gets its valid and its invalid requests
    failures: list[str] = []
    try:
        for operation in operations():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz(operation, mode, send, own_ids)
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to make invalid (GET /health)
                except (AssertionError, BaseExceptionGroup) as failed:  # a check's failure, with a curl to repeat it
                    failures.append(f"{operation.label}, {mode.value} requests: {failed}")
    finally:
        delete_webhooks(client)

    # THEN no answer broke a check, and every operation the document lists was asked, and answered
    assert not failures, "\n\n".join(failures)
    assert {label for label, statuses in answers.items() if statuses} == operation_keys(DOCUMENT)
    # AND the requests got past the refusals to the answers themselves (a job, a form, a webhook, a rotated secret)
    assert answers["GET /jobs/{jobId}"][200] and answers["POST /uploads"][201], answers
    assert answers["POST /webhooks"][201] and answers["POST /webhooks/{webhookId}/rotate-secret"][200], answers


def test_another_users_resource_answers_exactly_like_a_missing_one(
    pipeline_cloud: RunningCloud, http: requests.Session
) -> None:
    # GIVEN a job and a webhook of one user
    owner = pipeline_cloud.client("api-fuzz-owner")
    job = owner.call("POST", "uploads", UPLOAD)
    assert job.status == 201, job
    webhook = owner.register_webhook(f"http://127.0.0.1:{free_port()}/owner")
    owned = {"jobId": job.body["jobId"], "webhookId": webhook["id"]}
    stranger = bearer(pipeline_cloud, "api-fuzz-stranger")

    def answer(case: Case, resource_id: str, name: str) -> tuple[int, Any, dict[str, str]]:
        case.path_parameters = {**case.path_parameters, name: resource_id}
        response = case.call(base_url=pipeline_cloud.api_url, session=http, headers=stranger, timeout=TIMEOUT_SECONDS)
        kept = {key: ", ".join(values) for key, values in response.headers.items() if key not in PER_ANSWER_HEADERS}
        return response.status_code, response.content, kept

    compared: dict[str, int] = {}
    try:
        for operation in operations():
            names, labelled = [parameter.name for parameter in operation.path_parameters], operation.label
            if not names:
                continue
            assert len(names) == 1 and names[0] in owned, f"{labelled}: give the owner a resource for {names}"
            name = names[0]
            # WHEN another user sends the simplest valid request to the owner's resource, and to a missing one
            case = simplest(operation.as_strategy(GenerationMode.POSITIVE))
            steer(case, simplest, own_ids={})  # a webhook URL in the body, if any, names no host to look up
            theirs, missing = answer(case, owned[name], name), answer(case, same_shape_missing(owned[name]), name)
            # THEN both answers are the same refusal: status, body and headers
            assert theirs == missing, labelled
            assert 400 <= theirs[0] < 500, (labelled, theirs)
            compared[labelled] = theirs[0]
        # AND the owner's job and webhook are untouched
        assert owner.job(owned["jobId"])["status"] == job.body["status"]
        assert [hook["id"] for hook in owner.call("GET", "webhooks").body["webhooks"]] == [owned["webhookId"]]
    finally:
        delete_webhooks(owner)

    # AND every route with a path id was compared
    assert set(compared) == {key for key in operation_keys(DOCUMENT) if "{" in key}, compared
