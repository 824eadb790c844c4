"""CloudFront Functions, run for real: the program's JavaScript in V8 (mini-racer), given CloudFront's event object, and
what it returns applied as CloudFront applies it.

The event is CloudFront's (`version` 1.0; `context` with the distribution, event type and request id; `viewer.ip`;
`request` with `method`, `uri`, `querystring`, `headers` and `cookies`, names lower-case and repeated values in
`multiValue`; for viewer-response also `response` with `statusCode`, `headers` and `cookies` whose `attributes` are the
rest of each Set-Cookie line). A viewer-request function returns the request (possibly changed) or a response, which
CloudFront sends without going to the origin; a viewer-response function returns the response. Query values are
passed as the viewer sent them (still percent-encoded).

What CloudFront refuses when a function is created is refused here too: a runtime other than `cloudfront-js-1.0` or
`2.0`, code over 10 KB, code that does not compile or defines no `handler`. A function that throws or runs away
(local limit: one second; CloudFront's is about a millisecond of compute) answers 503, one that returns something
CloudFront cannot use answers 502, as CloudFront does. V8 runs any JavaScript, so a feature the CloudFront runtime lacks
(most of ES6+ in 1.0) is not caught here; `require` of CloudFront's modules (crypto, querystring, cloudfront) is not
available locally and fails the request.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from py_mini_racer import JSEvalException, JSPromise, JSTimeoutException, MiniRacer

from local.cdn.viewer import ViewerRequest, set_cookie_line

log = logging.getLogger("local.cdn.functions")

RUNTIMES = ("cloudfront-js-1.0", "cloudfront-js-2.0")
MAX_CODE_BYTES = 10 * 1024
TIMEOUT_SECONDS = 1.0
Headers = list[tuple[str, str]]

_PRELUDE = r"""
var __cf_logs = [];
var console = {log: function () { __cf_logs.push(Array.prototype.slice.call(arguments).join(' ')); }};
function require(name) {
  throw new Error("require('" + name + "'): CloudFront Functions' modules are not available in the local cloud");
}
"""
_RUNNER = r"""
function __cf_run(eventJson) {
  __cf_logs = [];
  var finish = function (value) {
    return JSON.stringify({result: value === undefined ? null : value, logs: __cf_logs});
  };
  var result = handler(JSON.parse(eventJson));
  if (result && typeof result.then === 'function') { return result.then(finish); }
  return finish(result);
}
"""


class FunctionCodeError(ValueError):
    """Code CloudFront would not accept for a function."""


class FunctionExecutionError(RuntimeError):
    """The function threw or ran out of time: CloudFront answers 503."""


class FunctionValidationError(ValueError):
    """The function returned something CloudFront cannot use: CloudFront answers 502."""


def check_function_code(name: str, code: str, runtime: str) -> None:
    """Raises FunctionCodeError where CloudFront's CreateFunction/PublishFunction would refuse the code."""
    if runtime not in RUNTIMES:
        raise FunctionCodeError(f"function {name}: runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if len(code.encode()) > MAX_CODE_BYTES:
        raise FunctionCodeError(f"FunctionSizeLimitExceeded: function {name} is over {MAX_CODE_BYTES} bytes")
    context = MiniRacer()
    try:
        context.eval(_PRELUDE)
        context.eval(code, timeout_sec=TIMEOUT_SECONDS)
        if context.eval("typeof handler") != "function":
            raise FunctionCodeError(f"function {name}: the code defines no `handler` function")
    except (JSEvalException, JSTimeoutException) as err:
        raise FunctionCodeError(f"function {name}: the code does not compile: {str(err).splitlines()[0]}") from err
    finally:
        context.close()


class CloudFrontFunction:
    """One function's code, loaded once into its own V8 context; runs are serialized (a context is single-threaded)."""

    def __init__(self, name: str, code: str, runtime: str = "cloudfront-js-2.0") -> None:
        check_function_code(name, code, runtime)
        self.name = name
        self._context = MiniRacer()
        self._context.eval(_PRELUDE)
        self._context.eval(code, timeout_sec=TIMEOUT_SECONDS)
        self._context.eval(_RUNNER)
        self._lock = threading.Lock()

    def run(self, event: Mapping[str, Any]) -> Any:
        """What the handler returns for `event` (plain data); raises FunctionExecutionError."""
        call = f"__cf_run({json.dumps(json.dumps(event))})"
        with self._lock:
            try:
                output = self._context.eval(call, timeout_sec=TIMEOUT_SECONDS)
                if isinstance(output, JSPromise):
                    output = output.get(timeout=TIMEOUT_SECONDS)
            except JSTimeoutException as err:
                raise FunctionExecutionError(f"{self.name}: the function ran out of time") from err
            except JSEvalException as err:
                raise FunctionExecutionError(f"{self.name}: {str(err).splitlines()[0]}") from err
            except TimeoutError as err:  # a promise that never settles
                raise FunctionExecutionError(f"{self.name}: the function's promise never settled") from err
        answer = json.loads(str(output))
        for line in answer["logs"]:
            log.info("[%s] %s", self.name, line)
        return answer["result"]

    def close(self) -> None:
        self._context.close()


# --- the event -----------------------------------------------------------------------------------------------------


def _values(pairs: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """CloudFront's `{name: {value}}`, with `multiValue` listing every value of a repeated name."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return {
        name: {"value": values[0], **({"multiValue": [{"value": v} for v in values]} if len(values) > 1 else {})}
        for name, values in grouped.items()
    }


def request_object(request: ViewerRequest) -> dict[str, Any]:
    """The event's `request` for a viewer's request."""
    headers = [(name.lower(), value) for name, value in request.headers if name.lower() != "cookie"]
    return {
        "method": request.method,
        "uri": request.path,
        "querystring": _values(request.query_pairs),
        "headers": _values(headers),
        "cookies": _values(list(request.cookies.items())),
    }


def _cookie_values(lines: list[str]) -> dict[str, dict[str, Any]]:
    cookies: dict[str, dict[str, Any]] = {}
    for line in lines:
        pair, _, attributes = line.partition(";")
        name, _, value = pair.strip().partition("=")
        entry = {"value": value, "attributes": attributes.strip()}
        if name in cookies:
            first = cookies[name]
            first.setdefault("multiValue", [{"value": first["value"], "attributes": first["attributes"]}])
            first["multiValue"].append(entry)
        else:
            cookies[name] = entry
    return cookies


def response_object(status: int, headers: Headers) -> dict[str, Any]:
    """The event's `response` for what the origin answered (Set-Cookie lines become `cookies`)."""
    plain = [(name.lower(), value) for name, value in headers if name.lower() != "set-cookie"]
    cookies = [value for name, value in headers if name.lower() == "set-cookie"]
    return {
        "statusCode": status,
        "statusDescription": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "",
        "headers": _values(plain),
        "cookies": _cookie_values(cookies),
    }


def viewer_event(
    event_type: str,
    *,
    distribution_id: str,
    domain_name: str,
    viewer_ip: str,
    request: Mapping[str, Any],
    response: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "version": "1.0",
        "context": {
            "distributionDomainName": domain_name,
            "distributionId": distribution_id,
            "eventType": event_type,
            "requestId": uuid.uuid4().hex,
        },
        "viewer": {"ip": viewer_ip},
        "request": dict(request),
    }
    if response is not None:
        event["response"] = dict(response)
    return event


# --- what a function returns -----------------------------------------------------------------------------------------


def _entries(spec: Any, what: str) -> list[tuple[str, Mapping[str, Any]]]:
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise FunctionValidationError(f"{what} must be an object")
    entries = []
    for name, entry in spec.items():
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise FunctionValidationError(f"{what}.{name} has no value")
        for one in entry.get("multiValue") or [entry]:
            entries.append((str(name), one))
    return entries


def is_response(result: Any) -> bool:
    return isinstance(result, Mapping) and "statusCode" in result


def check_request(result: Any) -> Mapping[str, Any]:
    """A viewer-request function's request, if CloudFront can use it."""
    if not isinstance(result, Mapping) or not str(result.get("uri", "")).startswith("/"):
        raise FunctionValidationError("a viewer-request function must return the request (with a uri) or a response")
    _entries(result.get("headers"), "request.headers")
    _entries(result.get("querystring"), "request.querystring")
    _entries(result.get("cookies"), "request.cookies")
    return result


def response_parts(result: Any) -> tuple[int, Headers, bytes | None]:
    """Status, headers (cookies as Set-Cookie lines) and body (None: keep the origin's) of a returned response."""
    if not is_response(result):
        raise FunctionValidationError("the function must return a response with a statusCode")
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError) as err:
        raise FunctionValidationError(f"statusCode {result['statusCode']!r} is not a number") from err
    if not 100 <= status <= 599:
        raise FunctionValidationError(f"statusCode {status} is not an HTTP status")
    headers: Headers = [(name, str(entry["value"])) for name, entry in _entries(result.get("headers"), "headers")]
    for name, entry in _entries(result.get("cookies"), "cookies"):
        headers.append(("Set-Cookie", set_cookie_line(name, str(entry["value"]), str(entry.get("attributes") or ""))))
    body = result.get("body")
    if body is None:
        return status, headers, None
    if isinstance(body, Mapping):
        data = str(body.get("data", ""))
        return status, headers, base64.b64decode(data) if body.get("encoding") == "base64" else data.encode()
    return status, headers, str(body).encode()
