"""Cdn: CloudFront in front of the outputs bucket, serving playback to signed URLs (and the cookies they set) only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pulumi import Input, Output, ResourceOptions

from components import patterns
from components.console import CONSOLE_PREFIX, console_headers_policy
from components.grants import Grant, objects_under

PRICE_CLASSES = ("PriceClass_100", "PriceClass_200", "PriceClass_All")
SIGNING_KEY_BITS = 2048  # CloudFront public keys must be 2048-bit RSA
SIGNED_COOKIES_FUNCTION = Path(__file__).with_name("cdn_signed_cookies.js")
METHODS = ["GET", "HEAD"]
ORIGIN_ID = "outputs"
CONSOLE_CACHE_SECONDS = 60


def signing_public_key(private_key_pem: str) -> str:
    """The public half (SubjectPublicKeyInfo PEM) of a CloudFront signing key, which must be 2048-bit RSA."""
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted PEM private key") from None  # never echo the value
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != SIGNING_KEY_BITS:
        raise ValueError(f"must be a {SIGNING_KEY_BITS}-bit RSA key, the only kind CloudFront verifies")
    public_key = key.public_key()
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def cloudfront_read_statement(objects_arns: list[str], distribution_arn: str) -> dict[str, Any]:
    """Bucket policy statement letting one distribution, through its origin access control, read some objects."""
    return {
        "Sid": "CloudFrontReadsOutputs",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": objects_arns[0] if len(objects_arns) == 1 else objects_arns,
        "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
    }


def _viewer_certificate(args: CdnArgs) -> aws.cloudfront.DistributionViewerCertificateArgs:
    """CloudFront's own certificate for its domain; for an alternate domain name, its ACM certificate (SNI)."""
    if not args.alias:
        return aws.cloudfront.DistributionViewerCertificateArgs(cloudfront_default_certificate=True)
    return aws.cloudfront.DistributionViewerCertificateArgs(
        acm_certificate_arn=args.certificate_arn, ssl_support_method="sni-only", minimum_protocol_version="TLSv1.2_2021"
    )


@dataclass(frozen=True)
class CdnArgs:
    """Inputs of a Cdn."""

    bucket_arn: Input[str]
    """The outputs bucket; CloudFront may read its `outputs/` objects and nothing else."""
    bucket_domain_name: Input[str]
    """The bucket's regional domain name, the distribution's origin."""
    private_key_pem: Input[str]
    """The signing key, a secret: kept in Secrets Manager for the functions that sign playback links."""
    public_key_pem: Input[str]
    """Its public half, which CloudFront verifies the signatures with."""
    cors_allowed_origins: tuple[str, ...]
    """Browser origins whose players (hls.js) may fetch playback files, with their cookies."""
    playlist_cache_seconds: int
    """How long the edge keeps a playlist."""
    segment_cache_seconds: int
    """How long the edge keeps segments, posters, sprites and WebVTT."""
    price_class: str = "PriceClass_100"
    """Which edge locations serve (CloudFront price class)."""
    base_url: str = ""
    """Origin the playback links name (`https://host`); empty for `https://<distribution domain>`."""
    alias: str = ""
    """The base URL's host when it is one of yours: the distribution's alternate domain name."""
    certificate_arn: str = ""
    """ACM certificate (us-east-1) for `alias`."""
    console: bool = False
    """Also serve the web console's files (`console/*`, components/console.py) to everyone, unsigned."""


class Cdn(pulumi.ComponentResource):
    """A CloudFront distribution over `outputs/`: private origin (OAC), signed requests only, HLS-aware caching."""

    distribution_arn: Output[str]
    """Distribution ARN (the bucket policy's condition)."""
    distribution_id: Output[str]
    """Distribution ID."""
    domain_name: Output[str]
    """The distribution's own domain (`d111111abcdef8.cloudfront.net`)."""
    base_url: Output[str]
    """Origin of every playback link: `base_url` if given, else `https://<domain_name>`."""
    key_pair_id: Output[str]
    """ID of the public key CloudFront verifies with: a signed URL's `Key-Pair-Id`."""
    secret_arn: Output[str]
    """Secrets Manager secret holding the private key."""
    read_key_grant: Grant
    """What a function that signs playback links needs: the secret's value, and nothing else."""
    bucket_policy_statements: Output[list[dict[str, Any]]]
    """What the outputs bucket's policy must admit: this distribution reading `outputs/*` (and `console/*`)."""

    def __init__(self, name: str, args: CdnArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Cdn", name, None, opts)
        if args.price_class not in PRICE_CLASSES:
            raise ValueError(f"{name}: price class must be one of {PRICE_CLASSES}, got {args.price_class!r}")
        if "*" in args.cors_allowed_origins:  # CloudFront refuses a wildcard origin beside allowed credentials
            raise ValueError(f"{name}: players send cookies, so CORS origins must be named, not '*'")
        child = ResourceOptions(parent=self)

        # The private key, for the functions that sign; never a Lambda environment variable.
        secret = aws.secretsmanager.Secret(
            f"{name}-signing-key", description="CloudFront playback signing key (RSA PEM)", opts=child
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-signing-key-version", secret_id=secret.id, secret_string=args.private_key_pem, opts=child
        )
        # The public half, in the one key group every behaviour trusts.
        public_key = aws.cloudfront.PublicKey(f"{name}-public-key", encoded_key=args.public_key_pem, opts=child)
        key_group = aws.cloudfront.KeyGroup(f"{name}-key-group", items=[public_key.id], opts=child)
        # CloudFront signs its requests to S3 (SigV4), so the bucket stays private and admits it by distribution ARN.
        access_control = aws.cloudfront.OriginAccessControl(
            f"{name}-origin-access",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child,
        )
        # Each viewer's signature differs, so no query string, cookie or header joins the cache key: one cached copy
        # serves everyone. CloudFront checks the signature on every request whatever the cache key holds.
        playlists = self._cache_policy(f"{name}-playlists", args.playlist_cache_seconds, child)
        media = self._cache_policy(f"{name}-media", args.segment_cache_seconds, child)
        # Browser players fetch cross-origin with credentials (the signed cookies): named origins, GET and HEAD.
        cors = aws.cloudfront.ResponseHeadersPolicy(
            f"{name}-cors",
            cors_config=aws.cloudfront.ResponseHeadersPolicyCorsConfigArgs(
                access_control_allow_credentials=True,
                access_control_allow_headers=aws.cloudfront.ResponseHeadersPolicyCorsConfigAccessControlAllowHeadersArgs(
                    items=["Range"]
                ),
                access_control_allow_methods=aws.cloudfront.ResponseHeadersPolicyCorsConfigAccessControlAllowMethodsArgs(
                    items=METHODS
                ),
                access_control_allow_origins=aws.cloudfront.ResponseHeadersPolicyCorsConfigAccessControlAllowOriginsArgs(
                    items=list(args.cors_allowed_origins)
                ),
                origin_override=True,
            ),
            opts=child,
        )
        # Turns a signed playlist URL into signed cookies for the rest of the job's folder (see the .js file).
        signed_cookies = aws.cloudfront.Function(
            f"{name}-signed-cookies",
            runtime="cloudfront-js-2.0",
            code=SIGNED_COOKIES_FUNCTION.read_text(),
            comment="Signed playlist URL -> signed cookies for the job's folder",
            publish=True,
            opts=child,
        )
        # Signed requests only, over HTTPS; media is already compressed, so nothing is recompressed.
        behaviour: dict[str, Any] = {
            "allowed_methods": METHODS,
            "cached_methods": METHODS,
            "target_origin_id": ORIGIN_ID,
            "viewer_protocol_policy": "redirect-to-https",
            "compress": False,
            "response_headers_policy_id": cors.id,
            "trusted_key_groups": [key_group.id],
        }
        distribution = aws.cloudfront.Distribution(
            f"{name}-distribution",
            enabled=True,
            is_ipv6_enabled=True,
            http_version="http2and3",
            price_class=args.price_class,
            comment="media-pipeline playback (outputs/)",
            origins=[
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=ORIGIN_ID,
                    domain_name=args.bucket_domain_name,
                    origin_access_control_id=access_control.id,
                )
            ],
            # Segments, init segments, posters, sprites and WebVTT: long-lived.
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                cache_policy_id=media.id, **behaviour
            ),
            # Playlists: short-lived, and the first one a player opens sets the cookies.
            ordered_cache_behaviors=[
                aws.cloudfront.DistributionOrderedCacheBehaviorArgs(
                    path_pattern=f"{patterns.OUTPUT_PREFIX}*.m3u8",
                    cache_policy_id=playlists.id,
                    function_associations=[
                        aws.cloudfront.DistributionOrderedCacheBehaviorFunctionAssociationArgs(
                            event_type="viewer-response", function_arn=signed_cookies.arn
                        )
                    ],
                    **behaviour,
                ),
                *([self._console_behaviour(name, child)] if args.console else []),
            ],
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")
            ),
            aliases=[args.alias] if args.alias else None,
            viewer_certificate=_viewer_certificate(args),
            opts=child,
        )

        self.distribution_arn = distribution.arn
        self.distribution_id = distribution.id
        self.domain_name = distribution.domain_name
        self.base_url = Output.from_input(args.base_url or Output.concat("https://", distribution.domain_name))
        self.key_pair_id = public_key.id
        self.secret_arn = secret.arn
        self.read_key_grant = Grant(("secretsmanager:GetSecretValue",), (secret.arn,))
        prefixes = [patterns.OUTPUT_PREFIX, *([CONSOLE_PREFIX] if args.console else [])]
        self.bucket_policy_statements = Output.all(
            Output.all(*(objects_under(args.bucket_arn, prefix) for prefix in prefixes)), distribution.arn
        ).apply(lambda values: [cloudfront_read_statement(*values)])
        self.register_outputs(
            {"distributionArn": self.distribution_arn, "baseUrl": self.base_url, "keyPairId": self.key_pair_id}
        )

    def _console_behaviour(
        self, name: str, opts: ResourceOptions
    ) -> aws.cloudfront.DistributionOrderedCacheBehaviorArgs:
        """The web console's files: for everyone (the page signs in itself), over HTTPS, compressed, kept a minute,
        with the console's security headers."""
        return aws.cloudfront.DistributionOrderedCacheBehaviorArgs(
            path_pattern=f"{CONSOLE_PREFIX}*",
            allowed_methods=METHODS,
            cached_methods=METHODS,
            target_origin_id=ORIGIN_ID,
            viewer_protocol_policy="redirect-to-https",
            compress=True,
            cache_policy_id=self._cache_policy(f"{name}-console", CONSOLE_CACHE_SECONDS, opts).id,
            response_headers_policy_id=console_headers_policy(f"{name}-console-headers", opts).id,
        )

    def _cache_policy(self, name: str, ttl_seconds: int, opts: ResourceOptions) -> aws.cloudfront.CachePolicy:
        """A cache policy keeping objects `ttl_seconds` (less if the origin says so), keyed on the path alone."""
        return aws.cloudfront.CachePolicy(
            name,
            min_ttl=0,
            default_ttl=ttl_seconds,
            max_ttl=ttl_seconds,
            parameters_in_cache_key_and_forwarded_to_origin=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginArgs(
                cookies_config=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginCookiesConfigArgs(
                    cookie_behavior="none"
                ),
                headers_config=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginHeadersConfigArgs(
                    header_behavior="none"
                ),
                query_strings_config=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginQueryStringsConfigArgs(
                    query_string_behavior="none"
                ),
            ),
            opts=opts,
        )
