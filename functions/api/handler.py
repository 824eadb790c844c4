"""The api function: API Gateway HTTP API (payload 2.0) in front of the jobs, the presigned S3 forms and webhooks.

Thin on purpose: each route reads the caller and the request, calls the service, and answers with the service's
typed model. Powertools checks every answer against its route's return type, and `openapi_document()` turns the
same types into docs/openapi.json. The JWT authorizer in API Gateway has verified the token; the caller is its
`sub` claim. Every refusal is an ApiError answered as `{"error": {"code", "message"}}`; anything else is a fault
and surfaces as one.

Request bodies are read by the service, not by Powertools: its body validation would answer malformed JSON, a
missing field or a body sent as `text/plain` (what a browser's fetch sends by default) with its own 415 and 422
answers, before the caller is even known, and undecodable base64 or absurdly nested JSON with a 500. Each route
names its body model instead, for the document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel
from ulid import ULID

from functions.api.adapters import (
    DynamoEndpoints,
    DynamoJobs,
    DynamoUsage,
    ResolvingUrlPolicy,
    S3Signer,
    SqsReruns,
)
from functions.api.service import (
    ApiError,
    CreatedWebhook,
    DeliveryList,
    ErrorBody,
    GatewayRefusal,
    Health,
    JobControl,
    Jobs,
    RotatedSecret,
    UploadCreated,
    UploadRequest,
    UsageView,
    WebhookList,
    WebhookRegistration,
    Webhooks,
    bad_request,
    is_job_id,
    method_not_allowed,
    owner_from_claims,
    parse_json_object,
    parse_registration,
    route_not_found,
)
from functions.api.settings import ApiSettings, JobControlSettings, QuotaSettings, WebhookSettings
from functions.common.clients import aws_client, presigning_s3_client
from functions.common.clock import now_ms
from functions.common.event_bus import EventPublisher
from functions.common.jobs_table import JobsTable
from functions.common.observability import logger, metrics, tracer
from functions.common.playback_links import PlaybackLinks
from functions.common.ssrf import AddressPolicy
from functions.common.usage_table import UsageTable
from functions.common.webhook_tables import DeliveryLog, EndpointsTable
from functions.contracts.job_view import JobPage, JobView
from functions.contracts.jobs import RerunMode

OPENAPI_INFO = {
    "title": "media-pipeline API",
    "version": "0.1.0",
    "description": 'Uploads, jobs and webhook endpoints. A refusal answers `{"error": {"code", "message"}}` '
    '(but a missing or invalid token, API Gateway\'s own 401 `{"message": "Unauthorized"}`); '
    "an unknown route 404 `NOT_FOUND`, a known one with another method 405 `METHOD_NOT_ALLOWED` with `Allow`.",
}
BEARER = "bearerAuth"
JSON = content_types.APPLICATION_JSON

app = APIGatewayHttpResolver(enable_validation=True)
jobs = APIGatewayHttpRouter()
webhooks = APIGatewayHttpRouter()


@cache
def jobs_service() -> Jobs:
    """Settings, clients and the job routes, built once per cold start; a misconfigured environment fails here."""
    settings = ApiSettings.from_env()
    signer = S3Signer(
        presigning_s3_client(),
        uploads_bucket=settings.uploads_bucket,
        outputs_bucket=settings.outputs_bucket,
        download_ttl_seconds=settings.download_url_ttl_seconds,
        playback_links=PlaybackLinks.from_env(),
    )
    quotas = QuotaSettings.from_env()
    usage = DynamoUsage(
        UsageTable(quotas.usage_table_name, settings.jobs_table_name),
        quotas.limits,
        retention_seconds=settings.retention_seconds,
    )
    return Jobs(settings, DynamoJobs(JobsTable(settings.jobs_table_name)), signer, usage)


@cache
def job_control_service() -> JobControl:
    """Deleting, retrying and reprocessing jobs: the bus and the ingest queue, built on their first use."""
    control = JobControlSettings.from_env()
    jobs_routes = jobs_service()
    return JobControl(
        store=jobs_routes.store,
        signer=jobs_routes.signer,
        announcer=EventPublisher(control.event_bus_name),
        reruns=SqsReruns(control.rerun_queue_url, aws_client("sqs")),
        usage=jobs_routes.quotas,
        processing_deadline_seconds=control.processing_deadline_seconds,
    )


@cache
def webhooks_service() -> Webhooks:
    """The webhook routes' settings and tables, built on their first use."""
    settings = WebhookSettings.from_env()
    return Webhooks(
        endpoints=DynamoEndpoints(EndpointsTable(settings.endpoints_table)),
        deliveries=DeliveryLog(settings.deliveries_table),
        urls=ResolvingUrlPolicy(AddressPolicy(allowed=settings.allowed_networks, allowed_ports=settings.allowed_ports)),
        secret_overlap_seconds=settings.secret_overlap_seconds,
    )


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    """Powertools' form: `/jobs/<jobId>`."""
    body: type[BaseModel] | None

    @property
    def path(self) -> str:
        """The OpenAPI form: `/jobs/{jobId}`."""
        return re.sub(r"<(\w+)>", r"{\1}", self.rule)

    def matches(self, path: str) -> bool:
        return bool(re.fullmatch(re.sub(r"<\w+>", "[^/]+", self.rule), path))


ROUTES: list[Route] = []
"""Every route, so a known path with the wrong method answers 405 rather than 404, and its body is documented."""


def route(
    router: APIGatewayHttpResolver | APIGatewayHttpRouter,
    key: str,
    answer: int,
    *refusals: int,
    body: type[BaseModel] | None = None,
    public: bool = False,
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register `METHOD /rule` as the docstring sums it up: its answer (the return type, none for a 204), its refusals
    in the API's error shape (and 401 unless public), the body model it reads and, unless public, the bearer token."""
    method, rule = key.split(" ")
    ROUTES.append(Route(method, rule, body))
    answered = HTTPStatus(answer)
    responses: dict[int, Any] = {answer: {"description": answered.phrase}}
    if answered == HTTPStatus.NO_CONTENT:
        responses[answer]["content"] = {}
    for refused in refusals if public else (HTTPStatus.UNAUTHORIZED.value, *refusals):
        responses[refused] = {"description": HTTPStatus(refused).phrase, "content": {JSON: {"model": ErrorBody}}}
    if not public:  # the gateway refuses a missing or invalid token in its own shape; the function, one without `sub`
        responses[HTTPStatus.UNAUTHORIZED.value]["content"][JSON]["model"] = ErrorBody | GatewayRefusal
    security = None if public else [{BEARER: []}]

    def register(func: Callable[..., Response]) -> Callable[..., Response]:
        options = {"summary": func.__doc__, "responses": responses, "security": security, "operation_id": func.__name__}
        return router.route(rule, method, **options)(func)

    return register


Limit = Annotated[str | None, Query(description="How many, a whole number from 1 to 100; 20 when absent.")]
Cursor = Annotated[str | None, Query(description="`nextCursor` of the previous page; absent or empty for the first.")]


@route(app, "GET /health", 200, public=True)
def health() -> Response[Health]:
    """Liveness, without a token."""
    return _json(HTTPStatus.OK, Health(status="ok"))


@route(jobs, "POST /uploads", 201, 400, 409, 413, 415, 429, body=UploadRequest)
def create_upload() -> Response[UploadCreated]:
    """A job waiting for its upload, and a presigned POST form bound to its key; 429 `QUOTA_EXCEEDED` with
    `Retry-After` past one of the caller's quotas (`GET /usage`)."""
    owner_id = _caller()
    service = jobs_service()
    event = jobs.current_event
    request = service.upload_request(event.body, base64_encoded=bool(event.is_base64_encoded))
    job_id = str(ULID())
    _tag_job(job_id)
    created = service.create_upload(owner_id, request, job_id=job_id, now_ms=now_ms())
    logger.info("upload created", extra={"contentType": request.contentType, "size": request.size})
    metrics.add_metric(name="UploadsCreated", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.CREATED, created, headers={"Location": f"/jobs/{job_id}"})


@route(jobs, "GET /usage", 200)
def get_usage() -> Response[UsageView]:
    """The caller's use of each per-user quota, and its limit (0: none)."""
    owner_id = _caller()
    return _json(HTTPStatus.OK, jobs_service().usage(owner_id, now_ms=now_ms()))


@route(jobs, "GET /jobs/<jobId>", 200, 404)
def get_job(jobId: str) -> Response[JobView]:
    """One of the caller's jobs, with short-lived links to its completed renditions; another's answers 404."""
    owner_id = _caller()
    if is_job_id(jobId):
        _tag_job(jobId)
    return _json(HTTPStatus.OK, jobs_service().job(owner_id, jobId))


@route(jobs, "DELETE /jobs/<jobId>", 202, 404, 409)
def delete_job(jobId: str) -> Response[JobView]:
    """Delete one of the caller's jobs: one still running is canceled (`job.canceled`: queued work is dropped, a
    MediaConvert job is canceled), then its upload and every output are deleted and it becomes DELETED
    (`job.deleted`). Answers the job as it is now; repeating it is safe."""
    owner_id = _caller()
    if is_job_id(jobId):
        _tag_job(jobId)
    view = job_control_service().delete(owner_id, jobId, now_ms=now_ms())
    logger.info("job deletion asked for", extra={"status": view.status})
    metrics.add_metric(name="JobsDeleted", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.ACCEPTED, view)


@route(jobs, "POST /jobs/<jobId>/retry", 202, 404, 409)
def retry_job(jobId: str) -> Response[JobView]:
    """Run a FAILED job again from the upload it validated, as its next attempt; 409 `JOB_NOT_RETRYABLE` for any
    other job."""
    return _rerun(jobId, RerunMode.RETRY)


@route(jobs, "POST /jobs/<jobId>/reprocess", 202, 404, 409)
def reprocess_job(jobId: str) -> Response[JobView]:
    """Run a COMPLETED job again with the stack's current ladder, as its next attempt; 409 `JOB_NOT_REPROCESSABLE` for
    any other job."""
    return _rerun(jobId, RerunMode.REPROCESS)


def _rerun(job_id: str, mode: RerunMode) -> Response[JobView]:
    owner_id = _caller()
    if is_job_id(job_id):
        _tag_job(job_id)
    view = job_control_service().rerun(owner_id, job_id, mode, now_ms=now_ms())
    logger.info("job re-run asked for", extra={"mode": mode.value, "attempt": view.attempt})
    metrics.add_metric(name="JobsRerun", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.ACCEPTED, view)


@route(jobs, "GET /jobs", 200, 400)
def list_jobs(limit: Limit = None, cursor: Cursor = None) -> Response[JobPage]:
    """The caller's jobs, newest first, a page at a time."""
    owner_id = _caller()
    return _json(HTTPStatus.OK, jobs_service().page(owner_id, limit=limit, cursor=cursor))


@route(webhooks, "POST /webhooks", 201, 400, 409, body=WebhookRegistration)
def create_webhook() -> Response[CreatedWebhook]:
    """A webhook endpoint for the caller's jobs, with its signing secret, shown only this once."""
    owner_id = _caller()
    event = webhooks.current_event
    registration = parse_registration(parse_json_object(event.body, base64_encoded=bool(event.is_base64_encoded)))
    created = webhooks_service().register(owner_id, registration, now_ms=now_ms())
    logger.info("webhook registered", extra={"webhookEndpointId": created.id})
    metrics.add_metric(name="WebhooksRegistered", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.CREATED, created, headers={"Location": f"/webhooks/{created.id}"})


@route(webhooks, "GET /webhooks", 200)
def list_webhooks() -> Response[WebhookList]:
    """The caller's webhook endpoints, never a secret."""
    return _json(HTTPStatus.OK, webhooks_service().registered(_caller()))


@route(webhooks, "DELETE /webhooks/<webhookId>", 204, 404)
def delete_webhook(webhookId: str) -> Response[None]:
    """Delete one of the caller's endpoints: nothing more is sent to it."""
    webhooks_service().delete(_caller(), webhookId)
    logger.info("webhook deleted", extra={"webhookEndpointId": webhookId})
    return Response(status_code=HTTPStatus.NO_CONTENT.value, headers={"Cache-Control": "no-store"})


@route(webhooks, "POST /webhooks/<webhookId>/rotate-secret", 200, 404, 409)
def rotate_webhook_secret(webhookId: str) -> Response[RotatedSecret]:
    """A new signing secret; the old one keeps signing until `previousSecretExpiresAt`."""
    service = webhooks_service()
    rotated = service.rotate_secret(_caller(), webhookId, now_ms=now_ms())
    overlap = service.secret_overlap_seconds
    logger.info("webhook secret rotated", extra={"webhookEndpointId": webhookId, "overlapSeconds": overlap})
    return _json(HTTPStatus.OK, rotated)


@route(webhooks, "GET /webhooks/<webhookId>/deliveries", 200, 400, 404)
def list_webhook_deliveries(webhookId: str, limit: Limit = None) -> Response[DeliveryList]:
    """An endpoint's latest delivery attempts, newest first."""
    owner_id = _caller()
    return _json(HTTPStatus.OK, webhooks_service().recent_deliveries(owner_id, webhookId, limit=limit))


app.include_router(jobs)
app.include_router(webhooks)


@app.not_found
def no_route(_: NotFoundError) -> Response[ErrorBody]:
    path = app.current_event.path
    allowed = sorted({known.method for known in ROUTES if known.matches(path)})
    return client_error(method_not_allowed(allowed) if allowed else route_not_found())


@app.exception_handler(ApiError)
def client_error(err: ApiError) -> Response[ErrorBody]:
    logger.info("request refused", extra={"status": int(err.status), "code": err.code})
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return _json(err.status, err.body(), headers=err.headers)


@app.exception_handler(RequestValidationError)
def invalid_request(err: RequestValidationError) -> Response[ErrorBody]:
    """A path or query value Powertools refused before the route ran, answered like every other refusal.

    Powertools raises the same error when an answer does not match its route's type: that is a fault, not the
    caller's, so it surfaces as one.
    """
    if any(error["loc"][:1] == ("response",) for error in err.errors()):
        raise err
    return client_error(bad_request("INVALID_REQUEST", "the request does not match the API's description"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
# Responses hold presigned forms and links (with the role's session token): keep them out of trace metadata.
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


def openapi_document() -> dict[str, Any]:
    """docs/openapi.json: every route with its parameters, body, answers and refusals, and the bearer scheme."""
    token = HTTPBearer(bearerFormat="JWT", description="A token API Gateway's JWT authorizer accepts; `sub` owns jobs.")
    document = json.loads(app.get_openapi_json_schema(**OPENAPI_INFO, security_schemes={BEARER: token}))
    schemas = document["components"]["schemas"]
    for known in ROUTES:
        operation = document["paths"][known.path][known.method.lower()]
        # Powertools lists its own 422 answer on every route; this API refuses a request with a 400, listed per route.
        del operation["responses"]["422"]
        if known.body is not None:
            name = known.body.__name__
            schemas[name] = known.body.model_json_schema(ref_template="#/components/schemas/{model}")
            content = {JSON: {"schema": {"$ref": f"#/components/schemas/{name}"}}}
            operation["requestBody"] = {"required": True, "content": content}
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        del schemas[unused]
    return document


def openapi_json() -> str:
    """The document as docs/openapi.json holds it: sorted keys, two-space indents, a final newline."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _caller() -> str:
    return owner_from_claims(app.current_event.request_context.authorizer.jwt_claim)


def _tag_job(job_id: str) -> None:
    """Every later log line and the trace carry the job."""
    logger.append_keys(jobId=job_id)
    tracer.put_annotation(key="jobId", value=job_id)


def _json(status: HTTPStatus, body: BaseModel | dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    # Bodies may hold presigned URLs and forms: no cache should keep them.
    return Response(
        status_code=status.value,
        content_type=JSON,
        body=body,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
