"""AWS clients, made once per execution environment and reused by every invocation it serves.

Lambda keeps a sandbox warm between invocations; a client built at each invocation would open new connections
and re-read credentials every time. boto3 reads the region and any `AWS_ENDPOINT_URL_*` from the environment.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config


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
    presigning_s3_client.cache_clear()


@cache
def presigning_s3_client() -> Any:
    """S3 for presigned forms and links."""
    # SigV4 on the bucket's own host is the only signature S3 accepts in every region; boto3's default client would
    # presign SigV2, path-style. boto3 honours AWS_ENDPOINT_URL for the local cloud.
    return boto3.client("s3", config=Config(signature_version="s3v4"))
