"""CloudFront's resources as the local engine creates them: recorded with the outputs CloudFront reports (ids in its
formats, ARNs, ETags, the distribution's domain name, which is the local CDN's `127.0.0.1:PORT`), and checked as
CloudFront checks them when they are created, so a program CloudFront would refuse fails here too: a key that is
not an RSA 2048 public key, a key group or a behaviour naming something that does not exist, a function that is not
published, over 10 KB or does not compile, a managed policy the local cloud does not know. The local CDN
(`local/cdn/`) serves the distribution from these records.
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from local.cdn.functions import FunctionCodeError, check_function_code
from local.engine.deployment import Deployment, ResourceType
from local.engine.state_store import resource_random

Outputs = dict[str, Any]
Creator = Callable[[str, dict[str, Any]], tuple[str, Outputs]]

# CloudFront's managed cache policies (no local cache, so only their ids matter).
MANAGED_CACHE_POLICIES = {
    "658327ea-f89d-4fab-a63d-7e88639e58f6": "Managed-CachingOptimized",
    "4135ea2d-6df8-44a3-9df3-4b5a84be39ad": "Managed-CachingDisabled",
    "b2884449-e4de-46a7-ac36-70bc7f1ddd6d": "Managed-CachingOptimizedForUncompressedObjects",
    "08627262-05a9-4f76-9ded-b50ca2e3a84f": "Managed-Elemental-MediaPackage",
    "2e54312d-136d-493c-8eb9-b001f22f67d2": "Managed-Amplify",
}
VIEWER_EVENTS = ("viewer-request", "viewer-response")
CLOUDFRONT_HOSTED_ZONE = "Z2FDTNDATAQYW2"
MAX_KEYS_PER_GROUP = 5


def cloudfront_id(prefix: str) -> str:
    """An id in CloudFront's form: a letter and 13 upper-case letters or digits (`E2QWRUHAPOMQZL`, `K3D5EWEUDCCXON`)."""
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(resource_random.choice(alphabet) for _ in range(13))


def _etag() -> str:
    return cloudfront_id("E")


def _name(logical: str, inputs: dict[str, Any]) -> str:
    if inputs.get("name"):
        return str(inputs["name"])
    if inputs.get("namePrefix"):
        return f"{inputs['namePrefix']}{resource_random.token_hex(13)}"
    return f"{logical}-{resource_random.token_hex(4)[:7]}"


class CloudFrontResources:
    """Creators for the aws:cloudfront types; each checks its references against what the program declared so far."""

    def __init__(self, deployment: Deployment, cdn_host: str) -> None:
        self._deployment = deployment
        self._account = deployment.account_id
        self._cdn_host = cdn_host

    def creators(self) -> dict[str, Creator]:
        return {
            ResourceType.CLOUDFRONT_ORIGIN_ACCESS_CONTROL: self._origin_access_control,
            ResourceType.CLOUDFRONT_PUBLIC_KEY: self._public_key,
            ResourceType.CLOUDFRONT_KEY_GROUP: self._key_group,
            ResourceType.CLOUDFRONT_CACHE_POLICY: self._cache_policy,
            ResourceType.CLOUDFRONT_RESPONSE_HEADERS_POLICY: self._response_headers_policy,
            ResourceType.CLOUDFRONT_FUNCTION: self._function,
            ResourceType.CLOUDFRONT_DISTRIBUTION: self._distribution,
        }

    def _origin_access_control(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        kind = inputs.get("originAccessControlOriginType")
        if kind != "s3":
            raise ValueError(f"origin access control {name}: origin type {kind!r} is not emulated (only s3)")
        if inputs.get("signingBehavior") not in ("always", "never", "no-override"):
            raise ValueError(f"InvalidArgument: signing behavior {inputs.get('signingBehavior')!r}")
        if inputs.get("signingProtocol") != "sigv4":
            raise ValueError(f"InvalidArgument: signing protocol {inputs.get('signingProtocol')!r}")
        return cloudfront_id("E"), {"etag": _etag(), "name": inputs.get("name") or name}

    def _public_key(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        try:
            key = load_pem_public_key(str(inputs["encodedKey"]).strip().encode())
        except (ValueError, KeyError) as err:
            raise ValueError(f"InvalidArgument: public key {name} is not a PEM-encoded public key") from err
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 2048:
            raise ValueError(f"InvalidArgument: public key {name}: the local cloud verifies RSA 2048 keys only")
        return cloudfront_id("K"), {
            "etag": _etag(),
            "name": _name(name, inputs),
            "callerReference": f"terraform-{resource_random.uuid4().hex}",
        }

    def _key_group(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        items = list(inputs.get("items") or [])
        if not items or len(items) > MAX_KEYS_PER_GROUP:
            raise ValueError(f"InvalidArgument: key group {name} holds 1 to {MAX_KEYS_PER_GROUP} public keys")
        for key_id in items:
            if self._deployment.by_id(ResourceType.CLOUDFRONT_PUBLIC_KEY, key_id) is None:
                raise ValueError(f"NoSuchPublicKey: key group {name} names {key_id}, which is not a declared key")
        return str(resource_random.uuid4()), {"etag": _etag()}

    def _policy(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        return str(resource_random.uuid4()), {"etag": _etag(), "name": inputs.get("name") or name}

    def _cache_policy(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        low, default, high = (inputs.get(k) for k in ("minTtl", "defaultTtl", "maxTtl"))
        if None not in (low, default, high) and not low <= default <= high:  # type: ignore[operator]
            raise ValueError(f"InvalidArgument: cache policy {name}: minTtl <= defaultTtl <= maxTtl does not hold")
        return self._policy(name, inputs)

    def _response_headers_policy(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        cors = inputs.get("corsConfig") or {}
        origins = (cors.get("accessControlAllowOrigins") or {}).get("items") or []
        if cors.get("accessControlAllowCredentials") and "*" in origins:
            raise ValueError(
                f"InvalidArgument: response headers policy {name}: Access-Control-Allow-Credentials cannot be true "
                "when Access-Control-Allow-Origins contains *"
            )
        return self._policy(name, inputs)

    def _function(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        function = str(inputs.get("name") or name)
        runtime = str(inputs.get("runtime") or "")
        try:
            check_function_code(function, str(inputs.get("code") or ""), runtime)
        except FunctionCodeError as err:
            raise ValueError(f"InvalidArgument: {err}") from err
        published = inputs.get("publish", True) is not False
        return function, {
            "name": function,
            "arn": f"arn:aws:cloudfront::{self._account}:function/{function}",
            "etag": _etag(),
            "liveStageEtag": _etag() if published else "",
            "status": "UNASSOCIATED",
        }

    # --- the distribution ---------------------------------------------------------------------------------------

    def _check_behaviour(self, label: str, spec: dict[str, Any], origin_ids: set[str]) -> None:
        if spec.get("targetOriginId") not in origin_ids:
            raise ValueError(f"NoSuchOrigin: {label} targets {spec.get('targetOriginId')!r}, not one of the origins")
        if spec.get("trustedSigners"):
            raise ValueError(
                f"{label}: trusted signers (CloudFront key pairs) are not emulated; use trusted key groups"
            )
        for group in spec.get("trustedKeyGroups") or []:
            if self._deployment.by_id(ResourceType.CLOUDFRONT_KEY_GROUP, group) is None:
                raise ValueError(f"TrustedKeyGroupDoesNotExist: {label} trusts {group}, which is not a declared group")
        cache_policy = spec.get("cachePolicyId")
        if cache_policy:
            declared = self._deployment.by_id(ResourceType.CLOUDFRONT_CACHE_POLICY, cache_policy)
            if declared is None and cache_policy not in MANAGED_CACHE_POLICIES:
                raise ValueError(
                    f"NoSuchCachePolicy: {label} names {cache_policy}: neither declared nor a managed policy the local "
                    "cloud knows (local/engine/cloudfront.py MANAGED_CACHE_POLICIES)"
                )
        elif not spec.get("forwardedValues"):
            raise ValueError(f"InvalidArgument: {label} needs a cache policy (or legacy forwarded values)")
        headers_policy = spec.get("responseHeadersPolicyId")
        if headers_policy and not self._deployment.by_id(
            ResourceType.CLOUDFRONT_RESPONSE_HEADERS_POLICY, headers_policy
        ):
            raise ValueError(
                f"NoSuchResponseHeadersPolicy: {label} names {headers_policy}, which is not declared (managed response "
                "headers policies are not emulated)"
            )
        events = [a.get("eventType") for a in spec.get("functionAssociations") or []]
        if len(events) != len(set(events)):
            raise ValueError(f"InvalidFunctionAssociation: {label} associates two functions with one event type")
        functions = {f.state["arn"]: f for f in self._deployment.of_type(ResourceType.CLOUDFRONT_FUNCTION)}
        for association in spec.get("functionAssociations") or []:
            if association.get("eventType") not in VIEWER_EVENTS:
                raise ValueError(
                    f"InvalidFunctionAssociation: {label}: {association.get('eventType')} is not a viewer event"
                )
            function = functions.get(association.get("functionArn", ""))
            if function is None:
                raise ValueError(f"NoSuchFunctionExists: {label} associates {association.get('functionArn')}")
            if not function.state.get("liveStageEtag"):
                raise ValueError(f"InvalidFunctionAssociation: {label}: {function.name} is not published")

    def _distribution(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        origins = inputs.get("origins") or []
        if not origins:
            raise ValueError(f"InvalidArgument: distribution {name} has no origins")
        for origin in origins:
            control = origin.get("originAccessControlId")
            if control and self._deployment.by_id(ResourceType.CLOUDFRONT_ORIGIN_ACCESS_CONTROL, control) is None:
                raise ValueError(f"NoSuchOriginAccessControl: origin {origin.get('originId')} names {control}")
        origin_ids = {str(o.get("originId")) for o in origins}
        self._check_behaviour(f"distribution {name} default behaviour", inputs["defaultCacheBehavior"], origin_ids)
        for spec in inputs.get("orderedCacheBehaviors") or []:
            self._check_behaviour(f"distribution {name} behaviour {spec.get('pathPattern')}", spec, origin_ids)
        distribution = cloudfront_id("E")
        behaviours = [inputs["defaultCacheBehavior"], *(inputs.get("orderedCacheBehaviors") or [])]
        active = []
        for group in sorted({g for spec in behaviours for g in spec.get("trustedKeyGroups") or []}):
            declared = self._deployment.by_id(ResourceType.CLOUDFRONT_KEY_GROUP, group)
            active.append({"keyGroupId": group, "keyPairIds": list(declared.inputs["items"]) if declared else []})
        return distribution, {
            "arn": f"arn:aws:cloudfront::{self._account}:distribution/{distribution}",
            "domainName": self._cdn_host or f"d{resource_random.token_hex(7)[:13]}.cloudfront.net",
            "hostedZoneId": CLOUDFRONT_HOSTED_ZONE,
            "status": "Deployed",
            "etag": _etag(),
            "callerReference": f"terraform-{resource_random.uuid4().hex}",
            "lastModifiedTime": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime()),
            "inProgressValidationBatches": 0,
            "trustedKeyGroups": [{"enabled": bool(active), "items": active}],
            "trustedSigners": [{"enabled": False, "items": []}],
        }
