"""The DynamoDB tables exactly as the program declares them, created in moto: no test re-declares a schema.

The whole program runs once under the infra tests' recording mocks; each table's inputs become the same
CreateTable request the local cloud makes from them (`local.engine.resources.create_table_request`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3

from local.engine.resources import create_table_request
from tests.infra.harness import run_program

REGION = "us-east-1"
JOBS_TABLE = "jobs-table"
WEBHOOK_ENDPOINTS_TABLE = "webhooks-endpoints"
WEBHOOK_DELIVERIES_TABLE = "webhooks-deliveries"
USAGE_TABLE = "api-usage"


@cache
def declared_tables() -> dict[str, dict[str, Any]]:
    """Logical name -> Pulumi inputs of every `aws.dynamodb.Table` the program declares."""
    return {table.name: table.inputs for table in run_program().of_type("aws:dynamodb/table:Table")}


def create_declared_table(logical_name: str, table_name: str) -> Any:
    """Create the declared table `logical_name` under `table_name` in the current moto account."""
    inputs = declared_tables()[logical_name]
    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    return dynamodb.create_table(**create_table_request(table_name, inputs))
