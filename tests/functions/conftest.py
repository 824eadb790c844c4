"""Shared fixtures for the function tests: moto-backed AWS, the jobs table, buckets, the bus, a Lambda context."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.common.clients import forget_clients
from tests.functions.declared_tables import JOBS_TABLE, create_declared_table

REGION = "us-east-1"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so nothing can reach a real account; Powertools in test mode."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "MediaPipelineTest",
        "POWERTOOLS_SERVICE_NAME": "test",
        "JOBS_TABLE_NAME": "jobs",
        "UPLOADS_BUCKET": "test-uploads",
        "OUTPUTS_BUCKET": "test-outputs",
        "EVENT_BUS_NAME": "media-pipeline-test",
        "STACK_NAME": "dev",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    """Clients are cached per execution environment (functions/common/clients.py); each test is a new one, so the
    clients it makes talk to its own mocked AWS and are not left for the next test."""
    forget_clients()
    yield
    forget_clients()


def sqs_event(fixture: str, *bodies: dict[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
    """The first record of the SQS event in `fixtures/<fixture>`, once per body, each with its own message id."""
    template = json.loads((FIXTURES / fixture).read_text())["Records"][0]
    records = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"message-{index}"
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records.append(record)
    return {"Records": records}


@pytest.fixture
def aws(aws_environment: None) -> Iterator[None]:
    with mock_aws():
        yield


def create_jobs_table(name: str = "jobs") -> Any:
    """The jobs table as components/job_store.py declares it."""
    return create_declared_table(JOBS_TABLE, name)


@pytest.fixture
def jobs_table(aws: None) -> Any:
    return create_jobs_table()


@pytest.fixture
def buckets(aws: None) -> dict[str, str]:
    s3 = boto3.client("s3", region_name=REGION)
    for name in ("test-uploads", "test-outputs"):
        s3.create_bucket(Bucket=name)
    return {"uploads": "test-uploads", "outputs": "test-outputs"}


@dataclass
class CapturedEvents:
    """Everything put on the custom bus, read back through an SQS queue subscribed with a catch-all rule."""

    queue_url: str

    def drain(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        events: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return events
            for message in batch:
                events.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def event_bus(aws: None) -> CapturedEvents:
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    events.create_event_bus(Name="media-pipeline-test")
    queue_url = sqs.create_queue(QueueName="captured-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="capture-all", EventBusName="media-pipeline-test", EventPattern='{"source":["media-pipeline"]}'
    )
    events.put_targets(Rule="capture-all", EventBusName="media-pipeline-test", Targets=[{"Id": "q", "Arn": queue_arn}])
    return CapturedEvents(queue_url)


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
