"""What the program's distribution declares, read from the deployment: origins, cache behaviours and their path
patterns, trusted key groups (to public keys), response headers policies and CloudFront Functions.

Path patterns are CloudFront's: `*` any run of characters including `/`, `?` exactly one, case-sensitive, matched
against the path without its leading `/`; the first ordered behaviour that matches wins, else the default one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from local.cdn.functions import CloudFrontFunction
from local.cdn.response_headers import HeadersPolicy
from local.engine.deployment import DeclaredResource, Deployment, ResourceType

log = logging.getLogger("local.cdn")

# An S3 REST endpoint (regional, legacy global, legacy dash-region, dual-stack); website endpoints are custom origins.
S3_REST_DOMAIN = re.compile(
    r"^(?P<bucket>[a-z0-9][a-z0-9.-]*?)\.s3(?:\.dualstack)?(?:[.-](?P<region>[a-z]{2}(?:-[a-z]+)+-\d))?"
    r"\.amazonaws\.com(?:\.cn)?$"
)
VIEWER_EVENTS = ("viewer-request", "viewer-response")


@cache
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def wildcard_matches(pattern: str, value: str) -> bool:
    """CloudFront's wildcards, in path patterns and in a policy's Resource: `*` any characters (`/` too), `?` one."""
    return _wildcard(pattern).fullmatch(value) is not None


def path_pattern_matches(pattern: str, path: str) -> bool:
    """A cache behaviour's path pattern against a request path; both are compared without the leading `/`."""
    return wildcard_matches(pattern.lstrip("/"), path.lstrip("/"))


def bucket_of_origin(domain_name: str) -> str | None:
    """The bucket an S3 REST endpoint names (`BUCKET.s3.REGION.amazonaws.com`, `BUCKET.s3.amazonaws.com`); None for
    any other origin."""
    found = S3_REST_DOMAIN.fullmatch(domain_name.lower())
    return found.group("bucket") if found else None


@dataclass(frozen=True)
class Origin:
    origin_id: str
    domain_name: str
    bucket: str | None
    """The S3 bucket, for an S3 REST origin; None for a custom origin (not emulated)."""
    origin_path: str = ""
    signs_requests: bool = False
    """An origin access control signs CloudFront's requests to S3 (`always`, or `no-override` without an
    Authorization header from the viewer); otherwise CloudFront reads the bucket anonymously."""
    override_signing: bool = True
    """False for `no-override`: a viewer's own Authorization header goes to S3 unsigned by CloudFront."""


@dataclass(frozen=True)
class CacheBehaviour:
    path_pattern: str
    """`*` for the default cache behaviour."""
    target_origin_id: str
    allowed_methods: frozenset[str]
    trusted_keys: Mapping[str, Any] = field(default_factory=dict)
    """Key-Pair-Id to public key, for every key of the behaviour's trusted key groups."""
    requires_signature: bool = False
    headers_policy: HeadersPolicy | None = None
    functions: Mapping[str, CloudFrontFunction] = field(default_factory=dict)
    """By event type: `viewer-request`, `viewer-response`."""


@dataclass(frozen=True)
class Distribution:
    id: str
    arn: str
    domain_name: str
    origins: Mapping[str, Origin]
    default_behaviour: CacheBehaviour
    ordered_behaviours: tuple[CacheBehaviour, ...] = ()
    default_root_object: str = ""

    def behaviour_for(self, path: str) -> CacheBehaviour:
        for behaviour in self.ordered_behaviours:
            if path_pattern_matches(behaviour.path_pattern, path):
                return behaviour
        return self.default_behaviour


class DistributionConfigError(ValueError):
    """The distribution declares something the local CDN cannot serve as declared."""


def _headers_policies(deployment: Deployment) -> dict[str, HeadersPolicy]:
    return {
        policy.id: HeadersPolicy.from_inputs(policy.inputs)
        for policy in deployment.of_type(ResourceType.CLOUDFRONT_RESPONSE_HEADERS_POLICY)
    }


def _key_groups(deployment: Deployment) -> dict[str, dict[str, Any]]:
    public_keys = {
        key.id: load_pem_public_key(str(key.inputs["encodedKey"]).encode())
        for key in deployment.of_type(ResourceType.CLOUDFRONT_PUBLIC_KEY)
    }
    return {
        group.id: {key_id: public_keys[key_id] for key_id in group.inputs.get("items") or [] if key_id in public_keys}
        for group in deployment.of_type(ResourceType.CLOUDFRONT_KEY_GROUP)
    }


def _origins(deployment: Deployment, declared: DeclaredResource) -> dict[str, Origin]:
    controls = {c.id: c.inputs for c in deployment.of_type(ResourceType.CLOUDFRONT_ORIGIN_ACCESS_CONTROL)}
    origins = {}
    for spec in declared.inputs.get("origins") or []:
        control = controls.get(spec.get("originAccessControlId") or "")
        behaviour = (control or {}).get("signingBehavior", "never")
        if (spec.get("s3OriginConfig") or {}).get("originAccessIdentity"):
            log.warning("origin %s: origin access identities are not emulated (read anonymously)", spec["originId"])
        origins[spec["originId"]] = Origin(
            origin_id=spec["originId"],
            domain_name=spec["domainName"],
            bucket=bucket_of_origin(spec["domainName"]),
            origin_path=str(spec.get("originPath") or "").strip("/"),
            signs_requests=behaviour in ("always", "no-override"),
            override_signing=behaviour == "always",
        )
    return origins


def _behaviour(
    spec: Mapping[str, Any],
    key_groups: Mapping[str, Mapping[str, Any]],
    headers_policies: Mapping[str, HeadersPolicy],
    function_for: Callable[[str], CloudFrontFunction],
) -> CacheBehaviour:
    groups = list(spec.get("trustedKeyGroups") or [])
    trusted = {key_id: key for group in groups for key_id, key in (key_groups.get(group) or {}).items()}
    functions = {}
    for association in spec.get("functionAssociations") or []:
        if association["eventType"] not in VIEWER_EVENTS:
            raise DistributionConfigError(f"a CloudFront Function cannot run on {association['eventType']}")
        functions[association["eventType"]] = function_for(association["functionArn"])
    if spec.get("lambdaFunctionAssociations"):
        log.warning("Lambda@Edge associations of %s are not run locally", spec.get("pathPattern", "the default"))
    return CacheBehaviour(
        path_pattern=str(spec.get("pathPattern") or "*"),
        target_origin_id=spec["targetOriginId"],
        allowed_methods=frozenset(m.upper() for m in spec.get("allowedMethods") or ("GET", "HEAD")),
        trusted_keys=trusted,
        requires_signature=bool(groups),
        headers_policy=headers_policies.get(spec.get("responseHeadersPolicyId") or ""),
        functions=functions,
    )


def load_distribution(deployment: Deployment) -> Distribution | None:
    """The program's distribution (the first one, if it declares several), or None when it declares none."""
    declared = deployment.of_type(ResourceType.CLOUDFRONT_DISTRIBUTION)
    if not declared:
        return None
    if len(declared) > 1:
        log.warning("%d distributions declared; the local CDN serves %s", len(declared), declared[0].name)
    distribution = declared[0]
    inputs = distribution.inputs
    if inputs.get("enabled") is False:
        log.warning("distribution %s is disabled: the local CDN does not serve it", distribution.name)
        return None
    for unsupported in ("customErrorResponses", "originGroups"):
        if inputs.get(unsupported):
            log.warning("distribution %s: %s are not emulated", distribution.name, unsupported)
    functions_by_arn = {f.state["arn"]: f for f in deployment.of_type(ResourceType.CLOUDFRONT_FUNCTION)}
    loaded: dict[str, CloudFrontFunction] = {}

    def function_for(arn: str) -> CloudFrontFunction:
        if arn not in loaded:
            if arn not in functions_by_arn:
                raise DistributionConfigError(f"distribution {distribution.name}: no CloudFront Function {arn}")
            declared_function = functions_by_arn[arn]
            loaded[arn] = CloudFrontFunction(
                declared_function.state.get("name", declared_function.name),
                str(declared_function.inputs["code"]),
                str(declared_function.inputs.get("runtime") or "cloudfront-js-2.0"),
            )
        return loaded[arn]

    key_groups, headers_policies = _key_groups(deployment), _headers_policies(deployment)
    default = _behaviour(inputs["defaultCacheBehavior"], key_groups, headers_policies, function_for)
    ordered = tuple(
        _behaviour(spec, key_groups, headers_policies, function_for)
        for spec in inputs.get("orderedCacheBehaviors") or []
    )
    return Distribution(
        id=distribution.id,
        arn=distribution.state["arn"],
        domain_name=distribution.state["domainName"],
        origins=_origins(deployment, distribution),
        default_behaviour=default,
        ordered_behaviours=ordered,
        default_root_object=str(inputs.get("defaultRootObject") or ""),
    )
