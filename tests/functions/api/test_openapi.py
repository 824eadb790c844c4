"""docs/openapi.json is generated from the api function's typed routes: it is current, and it describes the API
API Gateway actually serves, with every route's body, answers and refusals."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from components.api import ROUTES as GATEWAY_ROUTES
from functions.api import handler as api
from tests.functions.api.conftest import call, http_event

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
ERROR = {"$ref": "#/components/schemas/ErrorBody"}
# A missing or invalid token is refused by API Gateway in its own shape, one without `sub` by the function.
UNAUTHORIZED = {"anyOf": [ERROR, {"$ref": "#/components/schemas/GatewayRefusal"}], "title": "Return"}
JSON = "application/json"


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`METHOD /path` -> the operation."""
    return {
        f"{method.upper()} {path}": operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def test_the_document_is_current() -> None:
    if DOCUMENT.read_text(encoding="utf-8") != api.openapi_json():
        pytest.fail("docs/openapi.json is stale: run `make openapi`")


def test_it_describes_exactly_the_routes_the_gateway_serves_and_which_need_a_token() -> None:
    described = {key: "security" in operation for key, operation in operations(api.openapi_document()).items()}

    assert described == GATEWAY_ROUTES
    assert api.openapi_document()["components"]["securitySchemes"] == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token API Gateway's JWT authorizer accepts; `sub` owns jobs.",
        }
    }


def test_every_route_names_its_body_its_answer_and_its_refusals_in_the_apis_own_error_shape() -> None:
    document = api.openapi_document()
    found = operations(document)

    bodies = {key: op["requestBody"]["content"][JSON]["schema"] for key, op in found.items() if "requestBody" in op}
    assert bodies == {
        "POST /uploads": {"$ref": "#/components/schemas/UploadRequest"},
        "POST /webhooks": {"$ref": "#/components/schemas/WebhookRegistration"},
    }
    answers = {
        key: {status: answer["content"].get(JSON, {}).get("schema") for status, answer in op["responses"].items()}
        for key, op in found.items()
    }
    assert answers == {
        "GET /health": {"200": {"$ref": "#/components/schemas/Health"}},
        "POST /uploads": {
            "201": {"$ref": "#/components/schemas/UploadCreated"},
            "400": ERROR,
            "401": UNAUTHORIZED,
            "409": ERROR,
            "413": ERROR,
            "415": ERROR,
            "429": ERROR,
        },
        "GET /usage": {"200": {"$ref": "#/components/schemas/UsageView"}, "401": UNAUTHORIZED},
        "GET /jobs/{jobId}": {"200": {"$ref": "#/components/schemas/JobView"}, "401": UNAUTHORIZED, "404": ERROR},
        **{
            f"{route} /jobs/{{jobId}}{tail}": {
                "202": {"$ref": "#/components/schemas/JobView"},
                "401": UNAUTHORIZED,
                "404": ERROR,
                "409": ERROR,
            }
            for route, tail in (("DELETE", ""), ("POST", "/retry"), ("POST", "/reprocess"))
        },
        "GET /jobs": {"200": {"$ref": "#/components/schemas/JobPage"}, "400": ERROR, "401": UNAUTHORIZED},
        "POST /webhooks": {
            "201": {"$ref": "#/components/schemas/CreatedWebhook"},
            "400": ERROR,
            "401": UNAUTHORIZED,
            "409": ERROR,
        },
        "GET /webhooks": {"200": {"$ref": "#/components/schemas/WebhookList"}, "401": UNAUTHORIZED},
        "DELETE /webhooks/{webhookId}": {"204": None, "401": UNAUTHORIZED, "404": ERROR},
        "POST /webhooks/{webhookId}/rotate-secret": {
            "200": {"$ref": "#/components/schemas/RotatedSecret"},
            "401": UNAUTHORIZED,
            "404": ERROR,
            "409": ERROR,
        },
        "GET /webhooks/{webhookId}/deliveries": {
            "200": {"$ref": "#/components/schemas/DeliveryList"},
            "400": ERROR,
            "401": UNAUTHORIZED,
            "404": ERROR,
        },
    }
    # Every schema referred to is there, and nothing of Powertools' own 422 answer is left.
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["UploadRequest"]["required"] == ["filename", "contentType", "size"]
    assert schemas["UploadRequest"]["additionalProperties"] is False
    assert schemas["WebhookRegistration"]["properties"]["events"]["items"]["enum"] == [
        "job.completed",
        "job.failed",
        "job.rejected",
        "job.expired",
        "job.canceled",
        "job.deleted",
    ]


def test_query_parameters_are_described() -> None:
    found = operations(api.openapi_document())

    def parameters(key: str) -> list[tuple[str, str, bool]]:
        return [(p["name"], p["in"], p["required"]) for p in found[key].get("parameters", [])]

    assert parameters("GET /jobs") == [("limit", "query", False), ("cursor", "query", False)]
    assert parameters("GET /jobs/{jobId}") == [("jobId", "path", True)]
    assert parameters("GET /webhooks/{webhookId}/deliveries") == [
        ("webhookId", "path", True),
        ("limit", "query", False),
    ]


@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
def test_an_answer_that_does_not_match_its_declared_type_is_a_fault_not_a_refusal(
    jobs_table: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    # GIVEN a service that answers GET /jobs/{jobId} with something that is not a JobView
    class Broken:
        def job(self, owner_id: str, job_id: str) -> dict[str, Any]:
            return {"jobId": job_id}

    monkeypatch.setattr(api, "jobs_service", cache(Broken))  # cached like the real one, which the fixtures reset

    # WHEN / THEN the function fails, as every fault does, rather than blaming the caller
    with pytest.raises(RequestValidationError):
        call(http_event("GET", "/jobs/01JD5Z3K8Q4WJ2V7N6M9P0R1ST"), lambda_context)


def test_a_request_value_powertools_refuses_is_answered_in_the_apis_own_error_shape() -> None:
    refused = RequestValidationError([{"loc": ("query", "limit"), "type": "int_parsing", "msg": "not an integer"}])

    response = api.invalid_request(refused)
    api.metrics.clear_metrics()  # answered outside a request: nothing of it is flushed by a later test

    assert (response.status_code, response.body, response.headers) == (
        400,
        {"error": {"code": "INVALID_REQUEST", "message": "the request does not match the API's description"}},
        {"Content-Type": "application/json", "Cache-Control": "no-store"},
    )
