"""The api function: API Gateway HTTP API (payload 2.0) in front of the jobs, the presigned S3 forms and webhooks.

Thin on purpose: each route reads the caller and the request, calls the pure modules beside it, and answers.
The JWT authorizer in API Gateway has verified the token; the caller is its `sub` claim. Every refusal is an
ApiError answered as `{"error": {"code", "message"}}`; anything else is a fault and surfaces as one.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from ulid import ULID

from functions.api import webhooks as webhook_api
from functions.api.errors import (
    ApiError,
    concurrent_change,
    invalid_cursor,
    job_not_found,
    method_not_allowed,
    route_not_found,
    too_many_webhooks,
    webhook_not_found,
    webhook_url_refused,
)
from functions.api.job_view import DownloadUrl, job_page_view, job_view
from functions.api.request_parsing import (
    is_job_id,
    owner_from_claims,
    parse_cursor,
    parse_json_object,
    parse_page_size,
)
from functions.api.settings import ApiSettings, load_settings
from functions.api.uploads import new_upload_job, upload_created_view, upload_form, upload_key, validate_upload_request
from functions.common.jobs_table import InvalidCursor, JobNotFound, JobsTable
from functions.contracts.webhooks import (
    MAX_ENDPOINTS_PER_OWNER,
    Endpoint,
    is_endpoint_id,
    new_endpoint,
    new_endpoint_id,
    rotated,
)
from functions.webhooks.settings import EndpointSettings, load_endpoint_settings
from functions.common.webhook_signing import new_secret
from functions.common.ssrf import AddressPolicy, UrlRefused, check_url
from functions.common.webhook_tables import DeliveryLog, EndpointNotFound, EndpointsTable, SecretChangedConcurrently

logger = Logger()
metrics = Metrics()
tracer = Tracer()
app = APIGatewayHttpResolver()

ROUTES: list[tuple[str, str]] = []
"""(method, rule) of every route, so a known path with the wrong method answers 405 rather than 404."""


@dataclass(frozen=True)
class Dependencies:
    settings: ApiSettings
    jobs: JobsTable
    s3: Any


@functools.cache
def dependencies() -> Dependencies:
    """Settings and clients, built once per cold start; a misconfigured environment fails here, naming the variables."""
    settings = load_settings(os.environ)
    # SigV4 is the only signature S3 accepts in every region; boto3 honours AWS_ENDPOINT_URL for the local cloud.
    s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
    return Dependencies(settings=settings, jobs=JobsTable(settings.jobs_table_name), s3=s3)


@dataclass(frozen=True)
class WebhookDependencies:
    settings: EndpointSettings
    endpoints: EndpointsTable
    deliveries: DeliveryLog
    policy: AddressPolicy


@functools.cache
def webhook_dependencies() -> WebhookDependencies:
    """The webhook routes' settings and tables, built on their first use."""
    settings = load_endpoint_settings(os.environ)
    return WebhookDependencies(
        settings=settings,
        endpoints=EndpointsTable(settings.endpoints_table),
        deliveries=DeliveryLog(settings.deliveries_table),
        policy=AddressPolicy(allowed=settings.allowed_networks),
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def route(method: str, rule: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    ROUTES.append((method, rule))
    return app.route(rule, method=method)


@route("GET", "/health")
def health() -> Response:
    return _json(HTTPStatus.OK, {"status": "ok"})


@route("POST", "/uploads")
def create_upload() -> Response:
    owner_id = _caller()
    deps = dependencies()
    settings = deps.settings
    event = app.current_event
    payload = parse_json_object(event.body, base64_encoded=bool(event.is_base64_encoded))
    request = validate_upload_request(
        payload,
        allowed_content_types=settings.allowed_content_types,
        max_upload_bytes=settings.max_upload_bytes,
    )
    job_id = str(ULID())
    _tag_job(job_id)
    created = now_ms()
    form = upload_form(
        deps.s3,
        bucket=settings.uploads_bucket,
        key=upload_key(job_id),
        content_type=request.content_type,
        size=request.size,
        ttl_seconds=settings.upload_url_ttl_seconds,
        now_ms=created,
    )
    job = new_upload_job(request, job_id=job_id, owner_id=owner_id, now_ms=created, settings=settings)
    deps.jobs.create(job)
    logger.info("upload created", extra={"contentType": request.content_type, "size": request.size})
    metrics.add_metric(name="UploadsCreated", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.CREATED, upload_created_view(job, form), headers={"Location": f"/jobs/{job_id}"})


@route("GET", "/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    owner_id = _caller()
    if not is_job_id(job_id):
        raise job_not_found()
    _tag_job(job_id)
    deps = dependencies()
    try:
        job = deps.jobs.get(job_id)
    except JobNotFound as err:
        raise job_not_found() from err
    if job["ownerId"] != owner_id:
        raise job_not_found()  # another user's job answers exactly like a missing one
    return _json(HTTPStatus.OK, job_view(job, _download_url(deps)))


@route("GET", "/jobs")
def list_jobs() -> Response:
    owner_id = _caller()
    event = app.current_event
    limit = parse_page_size(event.get_query_string_value("limit"))
    cursor = parse_cursor(event.get_query_string_value("cursor"))
    deps = dependencies()
    try:
        jobs, next_cursor = deps.jobs.list_for_owner(owner_id, limit=limit, cursor=cursor)
    except InvalidCursor as err:
        raise invalid_cursor() from err
    return _json(HTTPStatus.OK, job_page_view(jobs, next_cursor, _download_url(deps)))


@route("POST", "/webhooks")
def create_webhook() -> Response:
    owner_id = _caller()
    event = app.current_event
    payload = parse_json_object(event.body, base64_encoded=bool(event.is_base64_encoded))
    registration = webhook_api.parse_registration(payload)
    deps = webhook_dependencies()
    try:
        check_url(registration.url, deps.policy)  # checked again, against the address used, at every delivery
    except UrlRefused as err:
        raise webhook_url_refused(str(err)) from err
    if len(deps.endpoints.list_for_owner(owner_id)) >= MAX_ENDPOINTS_PER_OWNER:
        raise too_many_webhooks(MAX_ENDPOINTS_PER_OWNER)
    endpoint = new_endpoint(
        endpoint_id=new_endpoint_id(),
        owner_id=owner_id,
        url=registration.url,
        events=registration.events,
        secret=new_secret(),
        now_ms=now_ms(),
    )
    deps.endpoints.create(endpoint)
    logger.info("webhook registered", extra={"webhookEndpointId": endpoint["endpointId"]})
    metrics.add_metric(name="WebhooksRegistered", unit=MetricUnit.Count, value=1)
    location = {"Location": f"/webhooks/{endpoint['endpointId']}"}
    return _json(HTTPStatus.CREATED, webhook_api.created_view(endpoint), headers=location)


@route("GET", "/webhooks")
def list_webhooks() -> Response:
    owner_id = _caller()
    endpoints = sorted(webhook_dependencies().endpoints.list_for_owner(owner_id), key=lambda e: e["createdAt"])
    return _json(HTTPStatus.OK, {"webhooks": [webhook_api.endpoint_view(endpoint) for endpoint in endpoints]})


@route("DELETE", "/webhooks/<webhook_id>")
def delete_webhook(webhook_id: str) -> Response:
    owner_id = _caller()
    if not is_endpoint_id(webhook_id):
        raise webhook_not_found()
    try:
        webhook_dependencies().endpoints.delete(owner_id, webhook_id)
    except EndpointNotFound as err:
        raise webhook_not_found() from err
    logger.info("webhook deleted", extra={"webhookEndpointId": webhook_id})
    return Response(status_code=int(HTTPStatus.NO_CONTENT), headers={"Cache-Control": "no-store"})


@route("POST", "/webhooks/<webhook_id>/rotate-secret")
def rotate_webhook_secret(webhook_id: str) -> Response:
    owner_id = _caller()
    deps = webhook_dependencies()
    endpoint = _owned_endpoint(deps, owner_id, webhook_id)
    overlap = deps.settings.secret_overlap_seconds
    after = rotated(endpoint, new_secret=new_secret(), now_ms=now_ms(), overlap_seconds=overlap)
    try:
        deps.endpoints.rotate_secret(endpoint, after)
    except SecretChangedConcurrently as err:
        raise concurrent_change() from err
    logger.info("webhook secret rotated", extra={"webhookEndpointId": webhook_id, "overlapSeconds": overlap})
    return _json(HTTPStatus.OK, webhook_api.rotated_view(after))


@route("GET", "/webhooks/<webhook_id>/deliveries")
def list_webhook_deliveries(webhook_id: str) -> Response:
    owner_id = _caller()
    limit = webhook_api.parse_delivery_page_size(app.current_event.get_query_string_value("limit"))
    deps = webhook_dependencies()
    endpoint = _owned_endpoint(deps, owner_id, webhook_id)
    entries = deps.deliveries.recent(endpoint["endpointId"], limit)
    return _json(HTTPStatus.OK, {"deliveries": [webhook_api.delivery_view(entry) for entry in entries]})


@app.not_found
def no_route(_: NotFoundError) -> Response:
    path = app.current_event.path
    allowed = sorted({method for method, rule in ROUTES if re.fullmatch(re.sub(r"<\w+>", "[^/]+", rule), path)})
    return client_error(method_not_allowed(allowed) if allowed else route_not_found())


@app.exception_handler(ApiError)
def client_error(err: ApiError) -> Response:
    logger.info("request refused", extra={"status": int(err.status), "code": err.code})
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return _json(err.status, err.body(), headers=err.headers)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
# Responses hold presigned forms and links (with the role's session token): keep them out of trace metadata.
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


def _caller() -> str:
    return owner_from_claims(app.current_event.request_context.authorizer.jwt_claim)


def _tag_job(job_id: str) -> None:
    """Every later log line and the trace carry the job."""
    logger.append_keys(jobId=job_id)
    tracer.put_annotation(key="jobId", value=job_id)


def _owned_endpoint(deps: WebhookDependencies, owner_id: str, webhook_id: str) -> Endpoint:
    """The caller's endpoint; another user's answers exactly like a missing one."""
    if not is_endpoint_id(webhook_id):
        raise webhook_not_found()
    try:
        return deps.endpoints.get(owner_id, webhook_id)
    except EndpointNotFound as err:
        raise webhook_not_found() from err


def _download_url(deps: Dependencies) -> DownloadUrl:
    """Links are only ever signed for the outputs bucket, whatever a record says."""

    def sign(key: str) -> str:
        return deps.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": deps.settings.outputs_bucket, "Key": key},
            ExpiresIn=deps.settings.download_url_ttl_seconds,
        )

    return sign


def _json(status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    # Bodies may hold presigned URLs and forms: no cache should keep them.
    return Response(
        status_code=int(status),
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
