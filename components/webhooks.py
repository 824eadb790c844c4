"""Webhooks: endpoint and delivery-log tables, the rule that queues job outcomes, and the delivery function."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import patterns
from components.function import FunctionDefaults, FunctionSize, LambdaFunction, LambdaFunctionArgs
from components.grants import Grant, index_arn, objects_under
from components.work_queue import EVENTS_SERVICE, WorkQueue, WorkQueueArgs, queue_rule_events, visibility_timeout
from functions.common.ssrf import allowed_ports_to_env
from functions.common.webhook_tables import DELIVERIES_BY_TIME_INDEX
from functions.webhooks.service import (
    MAX_CONCURRENT_ATTEMPTS,
    SQS_MAX_DELAY_SECONDS,
    RetrySchedule,
    receives_for_longest_wait,
    schedule_to_env,
)

HANDLER = "functions.webhooks.handler.handler"
# The timeout covers one batch of concurrent attempts and the reads and writes around them.
SIZE = FunctionSize(timeout_seconds=60, memory_mb=256)
# Endpoints are created and deleted in transactions with their owner's counter: IAM authorizes each item of a
# TransactWriteItems as the PutItem, UpdateItem or DeleteItem it performs (the transaction has no action of its own).
MANAGEMENT_ACTIONS = tuple(f"dynamodb:{a}" for a in ("GetItem", "PutItem", "Query", "DeleteItem", "UpdateItem"))


def _table_attributes(**types: str) -> list[aws.dynamodb.TableAttributeArgs]:
    return [aws.dynamodb.TableAttributeArgs(name=n, type=t) for n, t in types.items()]


@dataclass(frozen=True)
class WebhooksArgs:
    """Inputs of Webhooks."""

    functions: FunctionDefaults
    """Packaging, environment (the common set plus DOWNLOAD_URL_TTL_SECONDS and JOB_RETENTION_DAYS,
    docs/CONTRACTS.md) and log retention."""
    bus_name: Input[str]
    """Custom event bus the job outcomes are announced on."""
    jobs_table_arn: Input[str]
    """Jobs table, read for each payload; a dead-lettered delivery is noted on its job (conditional put)."""
    outputs_bucket_arn: Input[str]
    """Outputs bucket the payload's download links point into."""
    max_concurrency: int
    """Most delivery batches at once (the queue's event source's maximum concurrency)."""
    retry_schedule: RetrySchedule
    """Delays between delivery attempts."""
    allowed_addresses: tuple[str, ...] = ()
    """Addresses or networks the SSRF policy admits anyway: empty except on a local cloud (127.0.0.1)."""
    allowed_ports: tuple[int, ...] = ()
    """The only ports webhook URLs may use; empty for the rule (80, 443, 1024-65535 but well-known service ports)."""
    max_receive_count: int = 5
    """Failed receives a task survives, on top of the early receives its longest wait needs."""
    delivery_timeout_seconds: int = 15
    """An attempt succeeds only with a 2xx within this long."""
    size: FunctionSize = SIZE
    """Function size."""
    batch_size: int = 10
    """Queue messages per invocation (their attempts run side by side)."""
    max_event_age_seconds: int = 86_400
    """How long EventBridge keeps retrying to queue a job outcome before it goes to the DLQ."""
    extra_grants: tuple[Grant, ...] = ()
    """What the function may do beyond its tables, queues and outputs, e.g. read the CDN signing key."""


class Webhooks(pulumi.ComponentResource):
    """Job outcomes from the bus, fanned out per endpoint onto a queue with a DLQ, delivered signed and retried."""

    endpoints_table_name: Output[str]
    """Endpoints table (key ownerId + endpointId)."""
    deliveries_table_name: Output[str]
    """Delivery log table (key endpointId + attemptId, TTL)."""
    queue: WorkQueue
    """The delivery queue and its DLQ."""
    function_name: Output[str]
    """Delivery function name."""
    management_grants: tuple[Grant, ...]
    """What a function managing endpoints (the api) needs on these tables."""
    max_task_age_seconds: int
    """Oldest a healthy task gets in the queue (its longest scheduled wait): a backlog alarm threshold."""

    def __init__(self, name: str, args: WebhooksArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Webhooks", name, None, opts)
        if not 1 <= args.batch_size <= MAX_CONCURRENT_ATTEMPTS:  # more would queue attempts behind slow endpoints
            raise ValueError(f"{name}: batch size must be 1 to {MAX_CONCURRENT_ATTEMPTS}, got {args.batch_size}")
        child = ResourceOptions(parent=self)
        encrypted = aws.dynamodb.TableServerSideEncryptionArgs(enabled=True)

        # One item per endpoint, under its owner: fan-out reads one owner's endpoints, never anyone else's.
        endpoints = aws.dynamodb.Table(
            f"{name}-endpoints",
            billing_mode="PAY_PER_REQUEST",
            hash_key="ownerId",
            range_key="endpointId",
            attributes=_table_attributes(ownerId="S", endpointId="S"),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=encrypted,
            opts=child,
        )
        # One item per attempt (its key claims the attempt); a local index lists an endpoint's latest; TTL expires them.
        deliveries = aws.dynamodb.Table(
            f"{name}-deliveries",
            billing_mode="PAY_PER_REQUEST",
            hash_key="endpointId",
            range_key="attemptId",
            attributes=_table_attributes(endpointId="S", attemptId="S", attemptedAt="N"),
            local_secondary_indexes=[
                aws.dynamodb.TableLocalSecondaryIndexArgs(
                    name=DELIVERIES_BY_TIME_INDEX, range_key="attemptedAt", projection_type="ALL"
                )
            ],
            ttl=aws.dynamodb.TableTtlArgs(attribute_name="expiresAt", enabled=True),
            server_side_encryption=encrypted,
            opts=child,
        )
        # Job Completed / Failed / Rejected / Expired on the custom bus.
        rule = aws.cloudwatch.EventRule(
            f"{name}-job-outcomes",
            event_bus_name=args.bus_name,
            event_pattern=json.dumps(patterns.job_outcomes_pattern()),
            opts=child,
        )
        # The delivery queue; a waiting task's early receives (functions/webhooks/service.py) come on top of the
        # failures it may survive.
        self.queue = WorkQueue(
            f"{name}-deliveries",
            WorkQueueArgs(
                consumer_timeout_seconds=args.size.timeout_seconds,
                sender_service=EVENTS_SERVICE,
                sender_arn=rule.arn,
                max_receive_count=args.max_receive_count + receives_for_longest_wait(args.retry_schedule),
            ),
            opts=child,
        )
        # Queue every job outcome (the function fans it out per endpoint); outcomes EventBridge cannot queue land in the
        # same DLQ as tasks whose schedule ended.
        queue_rule_events(
            f"{name}-job-outcomes-target",
            f"{name}-dlq-policy",
            rule=rule,
            bus_name=args.bus_name,
            queue=self.queue,
            max_event_age_seconds=args.max_event_age_seconds,
            parent=self,
        )
        environment = {
            "WEBHOOK_ENDPOINTS_TABLE": endpoints.name,
            "WEBHOOK_DELIVERIES_TABLE": deliveries.name,
            "WEBHOOK_QUEUE_URL": self.queue.url,
            "WEBHOOK_DLQ_URL": self.queue.dlq_url,
            "WEBHOOK_RETRY_SCHEDULE": schedule_to_env(args.retry_schedule),
            "WEBHOOK_TIMEOUT_SECONDS": str(args.delivery_timeout_seconds),
            **({"WEBHOOK_ALLOWED_ADDRESSES": ",".join(args.allowed_addresses)} if args.allowed_addresses else {}),
            **({"WEBHOOK_ALLOWED_PORTS": allowed_ports_to_env(args.allowed_ports)} if args.allowed_ports else {}),
        }
        # Fans out, signs, delivers, schedules retries, notes and parks finished-off tasks, disables gone endpoints.
        function = LambdaFunction(
            f"{name}-function",
            LambdaFunctionArgs(
                defaults=args.functions,
                handler=HANDLER,
                service="webhooks",
                size=args.size,
                environment=environment,
                queue_arn=self.queue.arn,
                max_concurrency=args.max_concurrency,
                batch_size=args.batch_size,
                grants=(
                    Grant(("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"), (endpoints.arn,)),
                    Grant(("dynamodb:GetItem", "dynamodb:PutItem"), (deliveries.arn,)),
                    Grant(("dynamodb:GetItem", "dynamodb:PutItem"), (args.jobs_table_arn,)),
                    Grant(("s3:GetObject",), (objects_under(args.outputs_bucket_arn, patterns.OUTPUT_PREFIX),)),
                    Grant(("sqs:SendMessage", "sqs:ChangeMessageVisibility"), (self.queue.arn,)),
                    Grant(("sqs:SendMessage",), (self.queue.dlq_arn,)),
                    *args.extra_grants,
                ),
            ),
            opts=child,
        )
        self.endpoints_table_name = endpoints.name
        self.deliveries_table_name = deliveries.name
        self.function_name = function.function_name
        self.management_grants = (
            Grant(MANAGEMENT_ACTIONS, (endpoints.arn,)),
            Grant(("dynamodb:Query",), (index_arn(deliveries.arn, DELIVERIES_BY_TIME_INDEX),)),
        )
        wait = int(args.retry_schedule.longest_wait_seconds) + 1
        self.max_task_age_seconds = wait + SQS_MAX_DELAY_SECONDS + visibility_timeout(args.size.timeout_seconds)
        self.register_outputs({"endpointsTable": endpoints.name, "queueUrl": self.queue.url, "function": function.arn})
