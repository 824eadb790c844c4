"""EncryptionKey: a customer-managed KMS key (rotated) for the pipeline's SNS topics, and the services it serves."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import policies


@dataclass(frozen=True)
class EncryptionKeyArgs:
    """Inputs of an EncryptionKey."""

    account_id: Input[str]
    """The account whose IAM policies may grant use of the key (its root principal owns the key)."""
    publishing_services: tuple[str, ...] = ("cloudwatch.amazonaws.com",)
    """Service principals that publish to topics encrypted with the key (CloudWatch alarms): they have no IAM role
    here, so the key policy itself lets them use it; an AWS-managed key cannot, which is why this key exists."""
    deletion_window_days: int = 30
    """Days a scheduled deletion waits (7-30): time to notice and cancel it."""


class EncryptionKey(pulumi.ComponentResource):
    """A symmetric key with yearly rotation, usable by this account's roles (through their IAM policies) and by the
    named services."""

    arn: Output[str]
    """Key ARN (for `kms_master_key_id` and IAM grants)."""

    def __init__(self, name: str, args: EncryptionKeyArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:EncryptionKey", name, None, opts)
        if not 7 <= args.deletion_window_days <= 30:
            raise ValueError(f"{name}: KMS allows a deletion window of 7-30 days, got {args.deletion_window_days}")
        child = ResourceOptions(parent=self)

        # The key; its policy delegates to IAM and admits the publishing services.
        key = aws.kms.Key(
            f"{name}-key",
            description=f"media-pipeline {pulumi.get_stack()}: SNS topics",
            enable_key_rotation=True,
            deletion_window_in_days=args.deletion_window_days,
            policy=Output.from_input(args.account_id).apply(
                lambda account: json.dumps(policies.topic_key_policy(account, args.publishing_services))
            ),
            opts=child,
        )
        # A readable name in the console and the CLI.
        alias = f"alias/media-pipeline-{pulumi.get_stack()}-{name}"
        aws.kms.Alias(f"{name}-alias", name=alias, target_key_id=key.id, opts=child)

        self.arn = key.arn
        self.register_outputs({"arn": self.arn})
