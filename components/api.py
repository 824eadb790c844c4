"""Api: the HTTP API with its JWT authorizer, routes, throttled access-logged stage, the api function and its
per-user usage table."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import patterns
from components.function import (
    FunctionDefaults,
    FunctionSize,
    LambdaFunction,
    LambdaFunctionArgs,
    allow_invoke,
    stack_log_group,
)
from components.grants import Grant, objects_under

HANDLER = "functions.api.handler.handler"
SIZE = FunctionSize(timeout_seconds=15, memory_mb=512)  # the timeout stays under API Gateway's 30 s integration limit
# Route key -> needs a JWT. Everything but liveness is per user.
ROUTES: dict[str, bool] = {
    "POST /uploads": True,
    "GET /jobs/{jobId}": True,
    "DELETE /jobs/{jobId}": True,
    "POST /jobs/{jobId}/retry": True,
    "POST /jobs/{jobId}/reprocess": True,
    "GET /jobs": True,
    "GET /usage": True,
    "POST /webhooks": True,
    "GET /webhooks": True,
    "DELETE /webhooks/{webhookId}": True,
    "POST /webhooks/{webhookId}/rotate-secret": True,
    "GET /webhooks/{webhookId}/deliveries": True,
    "GET /health": False,
}
# Route key -> (burst, requests per second), below the stage-wide default: the routes that create something are held
# to less than the stage allows for reads, so a flood of them cannot take the whole stage's throughput (the per-user
# quotas in the function bound what each user may hold; these bound how fast everyone together may ask).
ROUTE_THROTTLING: dict[str, tuple[int, float]] = {
    "POST /uploads": (50, 25.0),
    "POST /jobs/{jobId}/retry": (10, 5.0),
    "POST /jobs/{jobId}/reprocess": (10, 5.0),
    "POST /webhooks": (10, 5.0),
    "POST /webhooks/{webhookId}/rotate-secret": (10, 5.0),
}
USAGE_TTL_ATTRIBUTE = "expiresAt"
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
}


@dataclass(frozen=True)
class ApiArgs:
    """Inputs of an Api."""

    functions: FunctionDefaults
    """Packaging, environment (the common set plus the api's own, docs/CONTRACTS.md) and log retention, which the
    access log keeps too."""
    jwt_issuer: str
    """Issuer URL the JWT authorizer trusts."""
    jwt_audience: tuple[str, ...]
    """Audiences a token must carry one of."""
    cors_allowed_origins: tuple[str, ...]
    """Browser origins allowed to call the API."""
    throttling_burst_limit: int
    """Stage-wide burst limit."""
    throttling_rate_limit: float
    """Stage-wide steady requests per second."""
    uploads_bucket_arn: Input[str]
    """Bucket the presigned POST targets (`uploads/`)."""
    outputs_bucket_arn: Input[str]
    """Bucket download links point into (`outputs/`)."""
    table_arn: Input[str]
    """Jobs table ARN."""
    owner_index_arn: Input[str]
    """ARN of the owner index (GET /jobs)."""
    bus_arn: Input[str]
    """The custom bus `Job Canceled` and `Job Deletion Requested` go on (DELETE /jobs/{jobId})."""
    rerun_queue_arn: Input[str]
    """The ingest queue, sent a job to plan again (POST /jobs/{jobId}/retry and /reprocess)."""
    extra_grants: tuple[Grant, ...] = ()
    """What the function may do beyond jobs and buckets, e.g. manage webhook endpoints."""
    reserved_concurrency: int | None = None
    """Concurrency set aside for the API, so a transcode backlog never leaves it none; None for the shared pool."""
    size: FunctionSize = SIZE
    """Function size."""


class Api(pulumi.ComponentResource):
    """Uploads, jobs and webhook endpoints (JWT) and GET /health (open), served by one function."""

    url: Output[str]
    """Base URL of the $default stage."""
    function_name: Output[str]
    """Api function name."""
    api_id: Output[str]
    """HTTP API ID (the dimension of its CloudWatch metrics)."""
    usage_table_name: Output[str]
    """The per-user usage table."""

    def __init__(self, name: str, args: ApiArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Api", name, None, opts)
        child = ResourceOptions(parent=self)

        # One usage record per owner (functions/common/quotas.py): written with each new job, so the per-user quotas
        # hold under concurrent requests; TTL removes a record once nothing in it counts.
        usage_table = aws.dynamodb.Table(
            f"{name}-usage",
            billing_mode="PAY_PER_REQUEST",
            hash_key="ownerId",
            attributes=[aws.dynamodb.TableAttributeArgs(name="ownerId", type="S")],
            ttl=aws.dynamodb.TableTtlArgs(attribute_name=USAGE_TTL_ATTRIBUTE, enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
            opts=child,
        )
        # Creates jobs and presigned upload forms, reads jobs, signs download links, manages webhook endpoints; deletes
        # (cancel, then the tracker deletes the files) and re-runs jobs (ingest plans the next attempt).
        function = LambdaFunction(
            f"{name}-function",
            LambdaFunctionArgs(
                defaults=args.functions,
                handler=HANDLER,
                service="api",
                size=args.size,
                reserved_concurrency=args.reserved_concurrency,
                environment={"USAGE_TABLE_NAME": usage_table.name},
                grants=(
                    Grant(
                        ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"),
                        (args.table_arn, args.owner_index_arn),
                    ),
                    Grant(("dynamodb:GetItem", "dynamodb:PutItem"), (usage_table.arn,)),
                    Grant(("s3:PutObject",), (objects_under(args.uploads_bucket_arn, patterns.UPLOAD_PREFIX),)),
                    Grant(("s3:GetObject",), (objects_under(args.outputs_bucket_arn, patterns.OUTPUT_PREFIX),)),
                    Grant(("events:PutEvents",), (args.bus_arn,)),
                    Grant(("sqs:SendMessage",), (args.rerun_queue_arn,)),
                    *args.extra_grants,
                ),
            ),
            opts=child,
        )
        # The HTTP API; API Gateway answers CORS preflights itself.
        api = aws.apigatewayv2.Api(
            f"{name}-http",
            protocol_type="HTTP",
            cors_configuration=aws.apigatewayv2.ApiCorsConfigurationArgs(
                allow_origins=list(args.cors_allowed_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["authorization", "content-type"],
                expose_headers=["retry-after"],  # a quota refusal says when to try again
                max_age=3600,
            ),
            opts=child,
        )
        # Verifies the bearer token's signature, issuer, audience and expiry before the function runs.
        authorizer = aws.apigatewayv2.Authorizer(
            f"{name}-jwt",
            api_id=api.id,
            authorizer_type="JWT",
            identity_sources=["$request.header.Authorization"],
            jwt_configuration=aws.apigatewayv2.AuthorizerJwtConfigurationArgs(
                issuer=args.jwt_issuer, audiences=list(args.jwt_audience)
            ),
            opts=child,
        )
        # Every route goes to the one function, with the v2.0 event shape.
        integration = aws.apigatewayv2.Integration(
            f"{name}-integration",
            api_id=api.id,
            integration_type="AWS_PROXY",
            integration_uri=function.arn,
            payload_format_version="2.0",
            opts=child,
        )
        routes = []
        for route_key, needs_jwt in ROUTES.items():
            slug = route_key.lower().replace(" /", "-").replace("/", "-").replace("{", "").replace("}", "")
            route = aws.apigatewayv2.Route(
                f"{name}-{slug}",
                api_id=api.id,
                route_key=route_key,
                target=Output.concat("integrations/", integration.id),
                authorization_type="JWT" if needs_jwt else "NONE",
                authorizer_id=authorizer.id if needs_jwt else None,
                opts=child,
            )
            routes.append(route)
        # Access log, one JSON line per request.
        access_logs = stack_log_group(f"{name}-access-logs", f"{name}-access", args.functions.log_retention_days, child)
        # The $default stage deploys every change and throttles all routes.
        stage = aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=api.id,
            name="$default",
            auto_deploy=True,
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=access_logs.arn, format=json.dumps(ACCESS_LOG_FORMAT)
            ),
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_burst_limit=args.throttling_burst_limit,
                throttling_rate_limit=args.throttling_rate_limit,
                detailed_metrics_enabled=True,
            ),
            route_settings=[
                aws.apigatewayv2.StageRouteSettingArgs(
                    route_key=route_key,
                    throttling_burst_limit=min(burst, args.throttling_burst_limit),
                    throttling_rate_limit=min(rate, args.throttling_rate_limit),
                    detailed_metrics_enabled=True,
                )
                for route_key, (burst, rate) in ROUTE_THROTTLING.items()
            ],
            opts=ResourceOptions(parent=self, depends_on=routes),
        )
        # API Gateway may invoke the function, from this API only (`/*/*`: any of its stages and routes).
        source_arn = Output.concat(api.execution_arn, "/*/*")
        allow_invoke(f"{name}-invoke", function.function_name, "apigateway.amazonaws.com", source_arn, child)

        self.url = stage.invoke_url
        self.function_name = function.function_name
        self.api_id = api.id
        self.usage_table_name = usage_table.name
        self.register_outputs({"url": self.url, "functionName": self.function_name})
