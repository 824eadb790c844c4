"""Turning the untrusted parts of an HTTP request into plain values, or a client error.

Nothing here trusts its input: bodies may be undecodable, query strings repeated (HTTP API joins repeats
with commas), path parameters anything but a slash. Every failure is an ApiError, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from functions.api.errors import bad_request, unauthorized

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

# Job IDs are ULIDs: 26 characters of Crockford base32. Anything else cannot name a job, so it is answered
# as a missing job without a read (and never reaches DynamoDB, which rejects keys over 2 KiB with a 400 of its own).
_JOB_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_PAGE_SIZE = re.compile(r"[0-9]{1,3}")


def owner_from_claims(claims: Mapping[str, Any]) -> str:
    """The caller: the `sub` claim that API Gateway's JWT authorizer verified and passed on."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise unauthorized()
    return subject


def parse_json_object(body: str | None, *, base64_encoded: bool) -> dict[str, Any]:
    """The request body as a JSON object; INVALID_JSON when it is not JSON, INVALID_REQUEST when not an object."""
    if not body:
        raise bad_request("INVALID_JSON", "the request body must be a JSON object")
    try:
        text = base64.b64decode(body, validate=True).decode("utf-8") if base64_encoded else body
        payload = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as err:
        # ValueError covers JSONDecodeError and integers too long to convert; RecursionError, absurd nesting.
        raise bad_request("INVALID_JSON", "the request body is not valid JSON") from err
    if not isinstance(payload, dict):
        raise bad_request("INVALID_REQUEST", "the request body must be a JSON object")
    return payload


def parse_page_size(raw: str | None) -> int:
    """`limit` from the query string: absent means the default; otherwise a whole number from 1 to 100."""
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not _PAGE_SIZE.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise bad_request("INVALID_LIMIT", f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def parse_cursor(raw: str | None) -> str | None:
    """`cursor` from the query string; an empty one asks for the first page, like no cursor at all."""
    return raw or None


def is_job_id(value: str) -> bool:
    return bool(_JOB_ID.fullmatch(value))
