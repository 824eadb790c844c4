"""SecureBucket: a private, encrypted, TLS-only S3 bucket with expiry rules and optional browser-upload CORS."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi import Output, ResourceOptions

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


class SecureBucket(pulumi.ComponentResource):
    """An S3 bucket nobody can make public, encrypted at rest, reachable only over TLS."""

    bucket_name: Output[str]
    """Bucket name."""
    arn: Output[str]
    """Bucket ARN."""

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
        # TLS only. Applied after the public access block so S3 never sees a policy without it.
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(policies.deny_insecure_transport(arn))),
            opts=ResourceOptions(parent=self, depends_on=[public_access]),
        )
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
        self.register_outputs({"bucketName": self.bucket_name, "arn": self.arn})
