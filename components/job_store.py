"""JobStore: where job state lives, the DynamoDB jobs table (its changes are announced on the EventBus)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Output, ResourceOptions

from components.grants import index_arn
from functions.common.jobs_table import OPEN_DEADLINE_INDEX, OWNER_INDEX

TTL_ATTRIBUTE = "expiresAt"


def _key_schema(partition_key: str, sort_key: str) -> list[aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs]:
    return [
        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name=partition_key, key_type="HASH"),
        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name=sort_key, key_type="RANGE"),
    ]


@dataclass(frozen=True)
class JobStoreArgs:
    """Inputs of a JobStore."""

    point_in_time_recovery: bool = True
    """Continuous backups of the jobs table."""
    deletion_protection: bool = False
    """Refuse to delete the table (turn on for production stacks)."""


class JobStore(pulumi.ComponentResource):
    """The jobs table: key `jobId`, owner and open-deadline indexes, TTL."""

    table_name: Output[str]
    """Jobs table name."""
    table_arn: Output[str]
    """Jobs table ARN."""
    owner_index_arn: Output[str]
    """ARN of the owner index (GET /jobs)."""
    deadline_index_arn: Output[str]
    """ARN of the sparse open-jobs-by-deadline index (the sweep)."""

    def __init__(self, name: str, args: JobStoreArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:JobStore", name, None, opts)
        child = ResourceOptions(parent=self)

        # One item per job; indexes serve GET /jobs and the deadline sweep; TTL removes old jobs.
        table = aws.dynamodb.Table(
            f"{name}-table",
            billing_mode="PAY_PER_REQUEST",
            hash_key="jobId",
            attributes=[
                aws.dynamodb.TableAttributeArgs(name="jobId", type="S"),
                aws.dynamodb.TableAttributeArgs(name="ownerId", type="S"),
                aws.dynamodb.TableAttributeArgs(name="createdAt", type="N"),
                aws.dynamodb.TableAttributeArgs(name="openJob", type="S"),
                aws.dynamodb.TableAttributeArgs(name="deadlineAt", type="N"),
            ],
            global_secondary_indexes=[
                aws.dynamodb.TableGlobalSecondaryIndexArgs(
                    name=OWNER_INDEX, key_schemas=_key_schema("ownerId", "createdAt"), projection_type="ALL"
                ),
                # Sparse: only open jobs carry `openJob`, so the sweep reads just those.
                aws.dynamodb.TableGlobalSecondaryIndexArgs(
                    name=OPEN_DEADLINE_INDEX,
                    key_schemas=_key_schema("openJob", "deadlineAt"),
                    projection_type="KEYS_ONLY",
                ),
            ],
            ttl=aws.dynamodb.TableTtlArgs(attribute_name=TTL_ATTRIBUTE, enabled=True),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=args.point_in_time_recovery),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
            deletion_protection_enabled=args.deletion_protection,
            opts=child,
        )

        self.table_name = table.name
        self.table_arn = table.arn
        self.owner_index_arn = index_arn(table.arn, OWNER_INDEX)
        self.deadline_index_arn = index_arn(table.arn, OPEN_DEADLINE_INDEX)
        self.register_outputs({"tableName": self.table_name, "tableArn": self.table_arn})
