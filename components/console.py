"""Console: the web console's static files (components/console_site/) in the outputs bucket under `console/`, which
the CDN serves without signatures (components/cdn.py), behind a strict Content-Security-Policy.

The policy comes in two parts, both enforced. A response header, the same for every stack, allows scripts and styles
from the page's own origin only, no plugins, no framing, no `<base>`, no form posts. The page itself carries the
origins it may reach, which differ per stack and are only known once the API and the buckets exist: a `<meta>` policy
in `index.html` (connect: the API and the uploads bucket; media and images: the outputs bucket). The header cannot
name them: the distribution would then wait for the API, whose CORS must already admit the console's origin.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

CONSOLE_PREFIX = "console/"
SITE = Path(__file__).with_name("console_site")
INDEX = "index.html"
CONFIG = "config.json"
CSP_PLACEHOLDER = "<!-- content-security-policy -->"
# The part of the policy that is the same everywhere; frame-ancestors only works as a header.
HEADER_POLICY = "script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"  # noqa: E501
CACHE_CONTROL = "no-cache"  # the edge revalidates: a new deployment shows at once
TEXT_TYPES = {".js": "text/javascript", ".md": "text/markdown", "": "text/plain"}


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{url!r} is not an absolute URL")
    return f"{parts.scheme}://{parts.netloc}"


def page_policy(connect: Sequence[str], media: Sequence[str]) -> str:
    """The `<meta>` Content-Security-Policy: everything from the page's origin, plus the API and the uploads bucket
    to connect to, and the outputs bucket for video and images (hls.js plays from `blob:` MediaSource URLs)."""
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["connect-src 'self'", *sorted(set(connect))]),
            " ".join(["media-src 'self' blob:", *sorted(set(media))]),
            " ".join(["img-src 'self' data:", *sorted(set(media))]),
            "worker-src 'none'",
        ]
    )


OIDC_URLS = ("authorizeUrl", "tokenUrl")


def check_oidc(settings: dict[str, object]) -> None:
    """Raises ValueError, saying what to set, unless `settings` is a usable consoleOidc: a client ID and the two
    endpoints as absolute https URLs (plain http only to a loopback host, as a local identity provider is)."""
    missing = [key for key in ("clientId", *OIDC_URLS) if not settings.get(key)]
    if missing:
        raise ValueError(f"media-pipeline:consoleOidc needs {', '.join(missing)}: {{clientId, authorizeUrl, tokenUrl}}")
    for key in OIDC_URLS:
        parts = urlsplit(str(settings[key]))
        loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
        if not parts.netloc or not (parts.scheme == "https" or loopback):
            raise ValueError(f"media-pipeline:consoleOidc {key} must be an https URL, got {settings[key]!r}")
    scopes = settings.get("scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
        raise ValueError("media-pipeline:consoleOidc scopes must be a list of strings")


def with_page_policy(html: str, policy: str) -> str:
    if CSP_PLACEHOLDER not in html:
        raise ValueError(f"{INDEX} has no {CSP_PLACEHOLDER} for its Content-Security-Policy")
    return html.replace(CSP_PLACEHOLDER, f'<meta http-equiv="Content-Security-Policy" content="{policy}">')


def content_type(path: Path) -> str:
    guessed = TEXT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") or guessed.endswith("json") else guessed


def site_files(site: Path = SITE) -> list[Path]:
    """The console's files, relative to the site folder; index.html is written separately (it gets the policy)."""
    return sorted(p.relative_to(site) for p in site.rglob("*") if p.is_file() and p.name != INDEX)


@dataclass(frozen=True)
class ConsoleArgs:
    """Inputs of a Console."""

    bucket: Input[str]
    """The outputs bucket's name; the files go under `console/`."""
    api_url: Input[str]
    """The HTTP API's URL, ending in `/`: the console's `config.json` names it."""
    uploads_origins: Input[Sequence[str]]
    """Origins of the uploads bucket, where the browser posts the presigned form."""
    outputs_origins: Input[Sequence[str]]
    """Origins of the outputs bucket, which download links and MP4 renditions are played from."""
    extra_origins: tuple[str, ...] = ()
    """More origins the page may reach (the local cloud's S3 endpoint)."""
    auth: dict[str, object] | None = None
    """OIDC sign-in settings for the page (issuer, clientId, authorizeUrl, tokenUrl, scopes); None for none."""


class Console(pulumi.ComponentResource):
    """The console's objects; the CDN's `console/*` behaviour serves them with `header_policy` as their header."""

    index_key: str
    """The page's key (`console/index.html`), a CDN path."""

    def __init__(self, name: str, args: ConsoleArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Console", name, None, opts)
        if args.auth:
            check_oidc(args.auth)
        child = ResourceOptions(parent=self)
        for relative in site_files():
            aws.s3.BucketObjectv2(
                f"{name}-{relative.as_posix().replace('/', '-')}",
                bucket=args.bucket,
                key=f"{CONSOLE_PREFIX}{relative.as_posix()}",
                source=pulumi.FileAsset(str(SITE / relative)),
                content_type=content_type(relative),
                cache_control=CACHE_CONTROL,
                opts=child,
            )
        # The page fetches the OIDC token endpoint itself (the code exchange); the authorization endpoint is a
        # navigation, which connect-src does not govern.
        token_origins = [origin_of(str(args.auth["tokenUrl"]))] if args.auth and args.auth.get("tokenUrl") else []
        policy = Output.all(args.api_url, args.uploads_origins, args.outputs_origins).apply(
            lambda values: page_policy(
                [origin_of(values[0]), *values[1], *args.extra_origins, *token_origins],
                [*values[2], *args.extra_origins],
            )
        )
        aws.s3.BucketObjectv2(
            f"{name}-index",
            bucket=args.bucket,
            key=f"{CONSOLE_PREFIX}{INDEX}",
            content=policy.apply(lambda text: with_page_policy((SITE / INDEX).read_text(), text)),
            content_type=content_type(Path(INDEX)),
            cache_control=CACHE_CONTROL,
            opts=child,
        )
        aws.s3.BucketObjectv2(
            f"{name}-config",
            bucket=args.bucket,
            key=f"{CONSOLE_PREFIX}{CONFIG}",
            content=Output.from_input(args.api_url).apply(
                lambda url: json.dumps({"apiUrl": url.rstrip("/") + "/", "auth": args.auth or {}}, indent=2)
            ),
            content_type=content_type(Path(CONFIG)),
            cache_control=CACHE_CONTROL,
            opts=child,
        )
        self.index_key = f"{CONSOLE_PREFIX}{INDEX}"
        self.register_outputs({})


def console_headers_policy(name: str, opts: ResourceOptions) -> aws.cloudfront.ResponseHeadersPolicy:
    """The console's response headers: the fixed half of its Content-Security-Policy, and the usual hardening."""
    return aws.cloudfront.ResponseHeadersPolicy(
        name,
        comment="media-pipeline console: CSP and security headers",
        security_headers_config=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigArgs(
            content_security_policy=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigContentSecurityPolicyArgs(
                content_security_policy=HEADER_POLICY, override=True
            ),
            content_type_options=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigContentTypeOptionsArgs(
                override=True
            ),
            frame_options=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigFrameOptionsArgs(
                frame_option="DENY", override=True
            ),
            referrer_policy=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigReferrerPolicyArgs(
                referrer_policy="no-referrer", override=True
            ),
            strict_transport_security=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigStrictTransportSecurityArgs(
                access_control_max_age_sec=31536000, include_subdomains=True, override=True
            ),
        ),
        opts=opts,
    )
