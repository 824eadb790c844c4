"""SecureBucket: a private, encrypted, TLS-only S3 bucket with expiry rules and optional browser-upload CORS."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import policies

SSE_ALGORITHMS = ("AES256", "aws:kms")


@dataclass(frozen=True)
class Expiry:
    """Delete objects under a prefix some days after they were written."""

    prefix: str
    """Key prefix, ending in `/`."""
    days: int
    """Days after creation."""


@dataclass(frozen=True)
class SecureBucketArgs:
    """Inputs of a SecureBucket; secure settings are on unless switched off here."""

    expirations: tuple[Expiry, ...] = ()
    """Prefixes whose objects expire."""
    cors_allowed_origins: tuple[str, ...] = ()
    """Browser origins allowed to POST form uploads; empty means no CORS rule."""
    sse_algorithm: str = "AES256"
    """Default encryption: `AES256` (SSE-S3) or `aws:kms`."""
    kms_key_id: str | None = None
    """KMS key for `aws:kms`; the AWS-managed key when unset."""
    force_destroy: bool = False
    """Let `pulumi destroy` delete a bucket that still holds objects."""
    readers_follow: bool = False
    """A reader declared after the bucket (a CDN, whose ARN its statement names) is admitted with `admit_readers`,
    which then creates the bucket's policy and must be called exactly once."""


class SecureBucket(pulumi.ComponentResource):
    """An S3 bucket nobody can make public, encrypted at rest, reachable only over TLS."""

    bucket_name: Output[str]
    """Bucket name."""
    arn: Output[str]
    """Bucket ARN."""
    regional_domain_name: Output[str]
    """The bucket's regional endpoint host (`{bucket}.s3.{region}.amazonaws.com`), a CDN origin's domain name."""
    browser_origins: Output[list[str]]
    """Where presigned links and forms point a browser: the bucket's global and regional virtual-hosted origins."""

    def __init__(self, name: str, args: SecureBucketArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:SecureBucket", name, None, opts)
        if args.sse_algorithm not in SSE_ALGORITHMS:
            raise ValueError(f"{name}: sse_algorithm must be one of {SSE_ALGORITHMS}")
        for expiry in args.expirations:
            if not expiry.prefix.endswith("/") or expiry.days < 1:
                raise ValueError(f"{name}: expiry needs a folder prefix and at least one day, got {expiry}")
        child = ResourceOptions(parent=self)

        # The bucket; every setting below is its own resource in pulumi-aws v7.
        bucket = aws.s3.Bucket(f"{name}-bucket", force_destroy=args.force_destroy, opts=child)
        # No ACLs: the bucket owner owns every object.
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        # No public ACLs or policies, ever.
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        # Encryption at rest by default.
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm=args.sse_algorithm, kms_master_key_id=args.kms_key_id
                    ),
                    bucket_key_enabled=args.sse_algorithm == "aws:kms",
                )
            ],
            opts=child,
        )
        # The bucket's one policy: TLS only, plus the readers a caller admits (a bucket has a single policy document).
        self._name, self._bucket, self._public_access = name, bucket, public_access
        self._policy_pending = args.readers_follow
        if not args.readers_follow:
            self._create_policy([])
        # Expire what nobody needs any more, and never pay for abandoned multipart uploads.
        rules = [
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="abort-incomplete-multipart-uploads",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=1
                ),
            )
        ]
        rules += [
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id=f"expire-{expiry.prefix.strip('/')}",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=expiry.prefix),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=expiry.days),
            )
            for expiry in args.expirations
        ]
        aws.s3.BucketLifecycleConfiguration(f"{name}-lifecycle", bucket=bucket.id, rules=rules, opts=child)
        if args.cors_allowed_origins:
            # Browsers POST the presigned upload form straight to the bucket from these origins.
            aws.s3.BucketCorsConfiguration(
                f"{name}-cors",
                bucket=bucket.id,
                cors_rules=[
                    aws.s3.BucketCorsConfigurationCorsRuleArgs(
                        allowed_methods=["POST"],
                        allowed_origins=list(args.cors_allowed_origins),
                        allowed_headers=["*"],
                        expose_headers=["ETag"],
                        max_age_seconds=3000,
                    )
                ],
                opts=child,
            )

        self.bucket_name = bucket.bucket
        self.arn = bucket.arn
        self.regional_domain_name = bucket.bucket_regional_domain_name
        self.browser_origins = Output.all(bucket.bucket_domain_name, bucket.bucket_regional_domain_name).apply(
            lambda hosts: [f"https://{host}" for host in hosts]
        )
        self.register_outputs({"bucketName": self.bucket_name, "arn": self.arn})

    def admit_readers(self, statements: Input[Sequence[Mapping[str, Any]]]) -> None:
        """Create the bucket's policy with Allow statements (e.g. CloudFront reading `outputs/*` for one distribution)
        beside the TLS-only deny. Once, and only for a bucket declared with `readers_follow`."""
        if not self._policy_pending:
            raise ValueError(f"{self._name}: readers are admitted once, to a bucket declared with readers_follow=True")
        self._policy_pending = False
        self._create_policy(statements)

    def _create_policy(self, readers: Input[Sequence[Mapping[str, Any]]]) -> None:
        # A policy whose statements wait for a later resource would hold the whole program open if anything failed
        # before they came, so the policy itself is created once they are known. Applied after the public access
        # block, so S3 never sees a policy without it.
        aws.s3.BucketPolicy(
            f"{self._name}-policy",
            bucket=self._bucket.id,
            policy=Output.all(self._bucket.arn, readers).apply(lambda values: json.dumps(bucket_policy(*values))),
            opts=ResourceOptions(parent=self, depends_on=[self._public_access]),
        )


def bucket_policy(bucket_arn: str, readers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The TLS-only deny, then the admitted readers' statements, which may only allow."""
    document = policies.deny_insecure_transport(bucket_arn)
    for statement in readers:
        if statement.get("Effect") != "Allow" or statement.get("Principal") == "*":
            raise ValueError(f"a bucket reader statement must allow a named principal, got {statement!r}")
    document["Statement"] += [dict(statement) for statement in readers]
    return document
