"""The origin: an S3 bucket, read as CloudFront reads it through the distribution's origin access control.

With an OAC that signs, CloudFront is the service principal `cloudfront.amazonaws.com`, and S3 serves it only what the
bucket policy grants that principal with `AWS:SourceArn` the distribution's ARN (and `AWS:SourceAccount` the
account); without one it is anonymous, and only a public grant serves it (none while the bucket restricts public
buckets). The decision is IAM's (`local/permissions/access.py`), over the bucket's live policy, as deliveries from
other services are decided. An object encrypted with a KMS key also needs the key's policy to let CloudFront decrypt it.

What S3 answers, CloudFront relays: 403 AccessDenied when the policy does not grant s3:GetObject; for a missing key
404 NoSuchKey only if the principal may also s3:ListBucket, else 403 AccessDenied (S3 does not tell who may not list
whether a key exists); 416 InvalidRange for a range past the end; 304 for a matching If-None-Match. Ranges are S3's:
one `bytes=` range (`a-b`, `a-`, `-n`) answers 206; a malformed header, or several ranges, answers the whole object.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from botocore.exceptions import ClientError

from local.cdn.distribution import Origin
from local.engine.emulator import Emulator
from local.permissions import enforcement
from local.permissions.access import ENDPOINT_CONTEXT, Principal, Request, decide

log = logging.getLogger("local.cdn.origin")

CLOUDFRONT = "cloudfront.amazonaws.com"
CHUNK_BYTES = 256 * 1024
# The object's headers S3 sends and CloudFront passes on.
OBJECT_HEADERS = {
    "ContentType": "Content-Type",
    "ETag": "ETag",
    "CacheControl": "Cache-Control",
    "ContentEncoding": "Content-Encoding",
    "ContentDisposition": "Content-Disposition",
    "ContentLanguage": "Content-Language",
}
Headers = list[tuple[str, str]]


class RangeNotSatisfiable(Exception):
    pass


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int
    """Inclusive."""

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range S3 serves for a Range header; None for the whole object; RangeNotSatisfiable past the end."""
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    spec = header.strip()[len("bytes=") :].strip()
    if "," in spec:
        return None  # S3 serves several ranges as the whole object
    first, sep, last = spec.partition("-")
    first, last = first.strip(), last.strip()
    if not sep or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()):
        return None
    if last and not last.isdigit():
        return None
    if not first:  # the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise RangeNotSatisfiable(header)
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)


@dataclass
class OriginResponse:
    status: int
    headers: Headers
    body: Iterable[bytes] = ()
    """The body's chunks (nothing for HEAD, 304, or an error read as a HEAD)."""


def s3_error(status: int, code: str, message: str, method: str, **extra: str) -> OriginResponse:
    """S3's XML error, as CloudFront relays it to the viewer."""
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in extra.items())
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}</Message>'
        f"{fields}<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    ).encode()
    headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    return OriginResponse(status, headers, [] if method == "HEAD" else [body])


def _chunks(stream: Any) -> Iterator[bytes]:
    try:
        yield from stream.iter_chunks(CHUNK_BYTES)
    finally:
        stream.close()


class S3OriginReader:
    """Reads the distribution's S3 origins as CloudFront: the principal its origin access control makes it."""

    def __init__(self, emulator: Emulator, account: str, region: str, distribution_arn: str) -> None:
        self._s3 = emulator.client("s3")  # the service side: S3's own decision is made here, by the bucket policy
        self._account = account
        self._region = region
        self._distribution_arn = distribution_arn

    def _principal(self, origin: Origin, viewer_signed: bool) -> tuple[Principal, dict[str, str]]:
        context = dict(ENDPOINT_CONTEXT)
        if origin.signs_requests and (origin.override_signing or not viewer_signed):
            context |= {"aws:SourceArn": self._distribution_arn, "aws:SourceAccount": self._account}
            return Principal(account=self._account, service=CLOUDFRONT), context
        return Principal(account=""), context  # anonymous

    def _restricts_public_access(self, bucket: str) -> bool:
        try:
            block = self._s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        except ClientError:
            return False
        return bool(block.get("RestrictPublicBuckets"))

    def _refusal(self, principal: Principal, action: str, resource: str, context: dict[str, str]) -> str:
        """Why S3 refuses `action` on `resource` to this principal; "" when it serves it."""
        bucket = resource.split(":::", 1)[1].split("/", 1)[0]
        if principal.service is None and self._restricts_public_access(bucket):
            return f"{bucket} restricts public buckets: an anonymous read is refused"
        policy = enforcement.resource_policy_of("s3", self._account, self._region, f"arn:aws:s3:::{bucket}")
        decision = decide(principal, Request(action, (resource,), context), (), policy)
        return "" if decision.allowed else decision.reason

    def _key_refusal(self, principal: Principal, key_id: str, context: dict[str, str]) -> str:
        """Why CloudFront may not decrypt an object encrypted with this KMS key ("" when it may)."""
        try:
            key = enforcement.kms_key(self._account, self._region, key_id)
        except Exception:  # no such customer key: an AWS managed key, whose policy admits no service principal
            return f"the object is encrypted with {key_id}, whose policy cannot admit CloudFront"
        request = Request("kms:Decrypt", (key.arn,), context)
        decision = decide(principal, request, key_policy=key.policy)
        return "" if decision.allowed else decision.reason

    def fetch(
        self,
        origin: Origin,
        key: str,
        method: str,
        *,
        range_header: str | None = None,
        if_none_match: str | None = None,
        viewer_signed: bool = False,
    ) -> OriginResponse:
        """S3's answer to CloudFront's GET (or HEAD) of `key` in the origin's bucket."""
        assert origin.bucket is not None
        bucket, label = origin.bucket, f"{origin.bucket}/{key}"
        principal, context = self._principal(origin, viewer_signed)
        refusal = self._refusal(principal, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}", context)
        if refusal:
            log.warning("S3 refused %s to %s: %s", label, principal.label or "an anonymous reader", refusal)
            return s3_error(403, "AccessDenied", "Access Denied", method)
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                raise
            if self._refusal(principal, "s3:ListBucket", f"arn:aws:s3:::{bucket}", context):
                return s3_error(403, "AccessDenied", "Access Denied", method)
            return s3_error(404, "NoSuchKey", "The specified key does not exist.", method, Key=key)
        if head.get("ServerSideEncryption") == "aws:kms":
            refusal = self._key_refusal(principal, str(head.get("SSEKMSKeyId") or "aws/s3"), context)
            if refusal:
                log.warning("KMS refused CloudFront %s: %s", label, refusal)
                return s3_error(403, "AccessDenied", "Access Denied", method)
        size = int(head["ContentLength"])
        headers: Headers = [(name, str(head[field])) for field, name in OBJECT_HEADERS.items() if head.get(field)]
        headers.append(("Last-Modified", head["LastModified"].strftime("%a, %d %b %Y %H:%M:%S GMT")))
        headers.append(("Accept-Ranges", "bytes"))
        if (
            if_none_match
            and head.get("ETag")
            and head["ETag"].strip('"')
            in {tag.strip().removeprefix("W/").strip('"') for tag in if_none_match.split(",")}
        ):
            return OriginResponse(304, [h for h in headers if h[0] != "Content-Type"])
        try:
            byte_range = parse_range(range_header, size) if method == "GET" else None
        except RangeNotSatisfiable:
            error = s3_error(
                416, "InvalidRange", "The requested range is not satisfiable", method, RangeRequested=str(range_header)
            )
            error.headers.append(("Content-Range", f"bytes */{size}"))
            return error
        if byte_range is not None:
            headers += [
                ("Content-Range", f"bytes {byte_range.start}-{byte_range.end}/{size}"),
                ("Content-Length", str(byte_range.length)),
            ]
        else:
            headers.append(("Content-Length", str(size)))
        if method == "HEAD":
            return OriginResponse(200, headers)
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if byte_range is not None:
            request["Range"] = f"bytes={byte_range.start}-{byte_range.end}"
        body = self._s3.get_object(**request)["Body"]
        return OriginResponse(206 if byte_range is not None else 200, headers, _chunks(body))
