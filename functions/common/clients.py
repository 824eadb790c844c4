"""AWS clients, made once per execution environment and reused by every invocation it serves.

Lambda keeps a sandbox warm between invocations; a client built at each invocation would open new connections
and re-read credentials every time. boto3 reads the region and any `AWS_ENDPOINT_URL_*` from the environment.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3


@cache
def aws_client(service: str) -> Any:
    return boto3.client(service)


@cache
def dynamodb_resource() -> Any:
    return boto3.resource("dynamodb")


def forget_clients() -> None:
    """Drop the cached clients (tests that start a new mocked AWS need fresh ones)."""
    aws_client.cache_clear()
    dynamodb_resource.cache_clear()
