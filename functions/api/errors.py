"""Client errors: each carries the HTTP status and the stable code a client can branch on.

Every one answers `{"error": {"code", "message"}}`. Messages never echo the offending value back: it is
untrusted input, and a reflected value is one more thing a client could use to probe the API.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class ApiError(Exception):
    """A request the API refuses; the handler turns it into a JSON error response."""

    def __init__(self, status: HTTPStatus, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, code, message)


def invalid_cursor() -> ApiError:
    return bad_request("INVALID_CURSOR", "cursor is not one this API issued to you; start again without it")


def unauthorized() -> ApiError:
    return ApiError(HTTPStatus.UNAUTHORIZED, "UNAUTHORIZED", "a bearer token with a subject is required")


def job_not_found() -> ApiError:
    """The one answer for a job that does not exist and for another user's job: the two must not differ."""
    return ApiError(HTTPStatus.NOT_FOUND, "JOB_NOT_FOUND", "job not found")


def route_not_found() -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "NOT_FOUND", "no such route")


def method_not_allowed(allowed: list[str]) -> ApiError:
    methods = ", ".join(allowed)
    return ApiError(
        HTTPStatus.METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", f"this route accepts {methods}", headers={"Allow": methods}
    )


def webhook_not_found() -> ApiError:
    """Like jobs: another user's endpoint answers exactly like a missing one."""
    return ApiError(HTTPStatus.NOT_FOUND, "WEBHOOK_NOT_FOUND", "webhook not found")


def webhook_url_refused(reason: str) -> ApiError:
    """The URL failed the address policy; `reason` is the policy's, which never repeats the URL."""
    return bad_request("WEBHOOK_URL_REFUSED", f"this URL cannot receive webhooks: {reason}")


def too_many_webhooks(limit: int) -> ApiError:
    return ApiError(HTTPStatus.CONFLICT, "TOO_MANY_WEBHOOKS", f"an account can register at most {limit} webhooks")


def concurrent_change() -> ApiError:
    return ApiError(HTTPStatus.CONFLICT, "CONCURRENT_CHANGE", "the webhook changed meanwhile; try again")
