"""A response headers policy as CloudFront applies it to what it sends the viewer: headers removed, security and custom
headers added (an origin's own value kept unless the header overrides it), and CORS headers for a request with an
`Origin` the policy allows (with `originOverride` false, the origin's own CORS headers win)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local.cdn.viewer import ViewerRequest

Headers = list[tuple[str, str]]
ALL_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE")
CORS_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
)


def header_value(headers: Headers, name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name.lower()), None)


def without(headers: Headers, *names: str) -> Headers:
    lowered = {n.lower() for n in names}
    return [(key, value) for key, value in headers if key.lower() not in lowered]


def put(headers: Headers, name: str, value: str, override: bool = True) -> Headers:
    """The header set to `value`; when `override` is false an existing value stays."""
    if header_value(headers, name) is not None and not override:
        return headers
    return [*without(headers, name), (name, value)]


def _items(spec: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in ((spec or {}).get("items") or [])) if isinstance(spec, Mapping) else ()


def _origin_allowed(pattern: str, origin: str) -> bool:
    """`*`, an exact origin, or one with a wildcard subdomain (`https://*.example.com`)."""
    if pattern in ("*", origin):
        return True
    if "*" in pattern:
        prefix, _, suffix = pattern.partition("*")
        return origin.startswith(prefix) and origin.endswith(suffix) and len(origin) > len(prefix) + len(suffix)
    return False


@dataclass(frozen=True)
class CorsRules:
    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age_seconds: int | None = None
    origin_override: bool = True

    @classmethod
    def from_inputs(cls, spec: Mapping[str, Any]) -> CorsRules:
        methods = _items(spec.get("accessControlAllowMethods"))
        return cls(
            allow_origins=_items(spec.get("accessControlAllowOrigins")),
            allow_methods=ALL_METHODS if "ALL" in methods else methods,
            allow_headers=_items(spec.get("accessControlAllowHeaders")),
            expose_headers=_items(spec.get("accessControlExposeHeaders")),
            allow_credentials=bool(spec.get("accessControlAllowCredentials")),
            max_age_seconds=spec.get("accessControlMaxAgeSec"),
            origin_override=bool(spec.get("originOverride", True)),
        )

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for a request from `origin`, or None when the policy does not allow
        it."""
        if not origin:
            return None
        if any(pattern != "*" and _origin_allowed(pattern, origin) for pattern in self.allow_origins):
            return origin
        return "*" if "*" in self.allow_origins else None

    def headers_for(self, origin: str | None, preflight: bool) -> Headers:
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return []
        headers: Headers = [("Access-Control-Allow-Origin", allowed)]
        if allowed != "*":
            headers.append(("Vary", "Origin"))
        if self.allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if preflight:
            headers.append(("Access-Control-Allow-Methods", ", ".join(self.allow_methods)))
            if self.allow_headers:
                headers.append(("Access-Control-Allow-Headers", ", ".join(self.allow_headers)))
            if self.max_age_seconds is not None:
                headers.append(("Access-Control-Max-Age", str(int(self.max_age_seconds))))
        elif self.expose_headers:
            headers.append(("Access-Control-Expose-Headers", ", ".join(self.expose_headers)))
        return headers


def _security_headers(spec: Mapping[str, Any]) -> tuple[tuple[str, str, bool], ...]:
    headers = []
    hsts = spec.get("strictTransportSecurity")
    if hsts:
        value = f"max-age={int(hsts['accessControlMaxAgeSec'])}"
        value += "; includeSubDomains" if hsts.get("includeSubdomains") else ""
        value += "; preload" if hsts.get("preload") else ""
        headers.append(("Strict-Transport-Security", value, bool(hsts.get("override"))))
    if spec.get("contentTypeOptions"):
        headers.append(("X-Content-Type-Options", "nosniff", bool(spec["contentTypeOptions"].get("override"))))
    frame = spec.get("frameOptions")
    if frame:
        headers.append(("X-Frame-Options", str(frame["frameOption"]), bool(frame.get("override"))))
    referrer = spec.get("referrerPolicy")
    if referrer:
        headers.append(("Referrer-Policy", str(referrer["referrerPolicy"]), bool(referrer.get("override"))))
    csp = spec.get("contentSecurityPolicy")
    if csp:
        headers.append(("Content-Security-Policy", str(csp["contentSecurityPolicy"]), bool(csp.get("override"))))
    xss = spec.get("xssProtection")
    if xss:
        value = "1" if xss.get("protection") else "0"
        if xss.get("protection") and xss.get("modeBlock"):
            value += "; mode=block"
        if xss.get("protection") and xss.get("reportUri"):
            value += f"; report={xss['reportUri']}"
        headers.append(("X-XSS-Protection", value, bool(xss.get("override"))))
    return tuple(headers)


@dataclass(frozen=True)
class HeadersPolicy:
    cors: CorsRules | None = None
    added: tuple[tuple[str, str, bool], ...] = ()
    """(header, value, override): security headers, then custom headers."""
    removed: tuple[str, ...] = ()

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any]) -> HeadersPolicy:
        custom = tuple(
            (str(item["header"]), str(item["value"]), bool(item.get("override")))
            for item in ((inputs.get("customHeadersConfig") or {}).get("items") or [])
        )
        return cls(
            cors=CorsRules.from_inputs(inputs["corsConfig"]) if inputs.get("corsConfig") else None,
            added=_security_headers(inputs.get("securityHeadersConfig") or {}) + custom,
            removed=tuple(
                str(item["header"]) for item in ((inputs.get("removeHeadersConfig") or {}).get("items") or [])
            ),
        )

    def apply(self, headers: Headers, request: ViewerRequest, preflight: bool = False) -> Headers:
        headers = without(headers, *self.removed)
        for name, value, override in self.added:
            headers = put(headers, name, value, override)
        if self.cors is not None:
            cors = self.cors.headers_for(request.header("origin"), preflight)
            origin_has_cors = header_value(headers, "access-control-allow-origin") is not None
            if cors and (self.cors.origin_override or not origin_has_cors):
                headers = without(headers, *CORS_HEADERS)
                for name, value in cors:
                    headers = [*headers, (name, value)] if name == "Vary" else put(headers, name, value)
        return headers

    def is_preflight(self, request: ViewerRequest) -> bool:
        """An OPTIONS request a browser sends before a cross-origin one, which the policy's CORS rules answer."""
        return (
            self.cors is not None
            and request.method == "OPTIONS"
            and request.header("origin") is not None
            and request.header("access-control-request-method") is not None
        )
