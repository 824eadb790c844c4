"""The API's own speed: `POST /uploads` and `GET /jobs/{id}` through the local gateway at `--clients` concurrent
clients, and the api function's handler alone, in-process. Prints p50, p99, max, requests/s and ratios, all measured
in one run:

    .venv/bin/python -m bench.api_speed [--clients 50] [--requests 1000] [--concurrency 2] [--log-level INFO]
        [--profile]

Through the gateway: `python -m local up` runs the program itself (dev stack, the local layer, `logLevel` set to
`--log-level`) in a subprocess, as tests/e2e/conftest.py starts it, on a free port of 127.0.0.1 with a fresh state
directory; the subprocess keeps the cloud's moto server away from this process's own `mock_aws` below. The api
function runs in at most `--concurrency` worker processes (the local cloud's default, 2: one per core here), so at
50 clients most of a request's time is its wait for a worker. Tokens are minted with the cloud's own key
(`issue_token`). `--clients` threads, each with its own keep-alive connection, first all create uploads (`--requests`
in all), then all read those jobs back (`--requests` in all); one untimed round of each warms every worker first.
The per-user quotas stay as configured (their DynamoDB transaction is part of what is measured): each client has its
own users, a new one every UPLOADS_PER_USER uploads, under the open-uploads (20) and jobs-per-hour (100) limits, so
no answer is a 429 and no two requests race on one usage record. Any answer but 201/200 (a 429, a 5xx, a dropped
connection) is counted and printed, and the run exits 1.

moto itself copies every table a TransactWriteItems writes to, to roll back on failure, so an upload would cost more
the more jobs the cloud holds; the local cloud backs up only the items a transaction names instead
(local/engine/moto_patches.py). The uploads of a run are kept, and the line "early -> late in the run" shows whether
the p50 still moves over the run.

The handler alone: `functions.api.handler.handler` called with API Gateway HTTP API payload 2.0 events (the verified
token's claims in `requestContext.authorizer.jwt.claims`), as tests/functions/api builds them, against moto
(`moto.mock_aws`, the tables as the program declares them, tests/functions/declared_tables.py), one call at a time,
after WARMUP_CALLS untimed calls a route. Only the handler's call is timed; after each upload, untimed, the bench
deletes the job (all but KEPT_JOBS, which the reads read back) and each finished user's usage record, so every call
sees tables of the same size, as DynamoDB's latency does not grow with them. The handler's time includes moto's own
handling of its AWS calls, in this process: the split ("AWS calls", "the rest") is printed, and so is each call's CPU
time (the calling thread's): on a shared machine a wall-clock p99 far above the CPU p99 measures the neighbours.
`--profile` then runs PROFILE_CALLS calls of each route under cProfile and prints what dominates.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import http.client
import io
import json
import math
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local.cli.client import start_cloud_process, stop_cloud_process
from local.cloud import free_port
from local.runtime.auth import AuthorizerSettings, SigningKey, issue_token

REPO = Path(__file__).resolve().parent.parent
EVENT_TEMPLATE = REPO / "tests" / "functions" / "fixtures" / "api_get_job_event.json"
REQUEST_TIMEOUT_SECONDS = 60
MAX_REQUESTS = 10_000
MAX_CLIENTS = 200
UPLOADS_PER_USER = 10
"""Half the default open-uploads limit (20), a tenth of the jobs-per-hour one (100)."""
WARMUP_CALLS = 20
KEPT_JOBS = 10
"""Jobs the handler's measurement keeps to read back; it deletes the others (see `route_calls`)."""
PROFILE_CALLS = 200
GOAL_P99_SECONDS = 0.050
UPLOAD = {"filename": "clip.mp4", "contentType": "video/mp4", "size": 1_000_000}
ROUTES = ("POST /uploads", "GET /jobs/{id}")


@dataclass
class Samples:
    """One measurement: each request's seconds, its answer's status (0: no answer), and the wall time of all."""

    seconds: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    wall: float = 0.0
    example_error: str = ""

    def add(self, seconds: float, status: int, expected: int, body: str) -> None:
        self.seconds.append(seconds)
        self.statuses[status] += 1
        if status != expected and not self.example_error:
            self.example_error = f"{status}: {body[:300]}"

    def errors(self, expected: int) -> int:
        return sum(count for status, count in self.statuses.items() if status != expected)

    def p50(self) -> float:
        return statistics.median(self.seconds)

    def p99(self) -> float:
        return _p99(self.seconds)


# --- through the gateway ---------------------------------------------------------------------------------------


@dataclass
class Cloud:
    process: subprocess.Popen[bytes]
    state_dir: Path
    api_url: str
    startup: float

    def token(self, sub: str) -> str:
        """A token the cloud's JWT authorizer accepts for `sub`, signed with its own key (tests/e2e/conftest.py)."""
        key, settings = SigningKey.load_or_create(self.state_dir), AuthorizerSettings.load(self.state_dir)
        return issue_token(key, settings, sub, 3600)


@contextlib.contextmanager
def local_cloud(state_dir: Path, concurrency: int, log_level: str) -> Iterator[Cloud]:
    """`python -m local up` of this program in a subprocess, as the e2e tests start it; stopped on exit."""
    arguments = ["--port", str(free_port()), "--concurrency", str(concurrency)]
    arguments += ["--config", f"media-pipeline:logLevel={log_level}"]
    started = time.perf_counter()
    cloud = start_cloud_process(state_dir, arguments, cwd=REPO)
    try:
        yield Cloud(cloud.process, state_dir, str(cloud.outputs["apiUrl"]), time.perf_counter() - started)
    finally:
        stop_cloud_process(cloud.process)


class Connection:
    """One client's keep-alive connection to the gateway; reopened after a failure (which is counted, never retried)."""

    def __init__(self, api_url: str) -> None:
        parts = urlsplit(api_url)
        if parts.hostname != "127.0.0.1":
            raise ValueError(f"this benchmark only talks to 127.0.0.1, not {api_url}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, token: str, payload: dict[str, Any] | None) -> tuple[int, str]:
        headers = {"authorization": f"Bearer {token}"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["content-type"] = "application/json"
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            self._connection.request(method, self._prefix + path, body=body, headers=headers)
            response = self._connection.getresponse()
            text = response.read().decode(errors="replace")
            if response.getheader("connection", "").lower() == "close":
                self.close()
            return response.status, text
        except (OSError, http.client.HTTPException) as err:
            self.close()
            return 0, f"{type(err).__name__}: {err}"

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass
class Client:
    """One of the concurrent clients: its connection, its users (and their tokens), the jobs it created."""

    connection: Connection
    users: list[tuple[str, str]]
    jobs: list[tuple[str, str]] = field(default_factory=list)
    """(token, job ID) of each upload it created."""


def run_clients(
    clients: list[Client], work: Callable[[Client, int], tuple[float, int, str]], requests: int, expected: int
) -> Samples:
    """`requests` calls of `work(client, n)` (n: the client's own count) shared out over the clients, all started at
    once; `wall` is from the start to the last answer."""
    samples = Samples()
    lock = threading.Lock()
    start = threading.Barrier(len(clients) + 1)
    shares = [requests // len(clients) + (1 if index < requests % len(clients) else 0) for index in range(len(clients))]

    def run(client: Client, share: int) -> None:
        start.wait()
        for number in range(share):
            seconds, status, body = work(client, number)
            with lock:
                samples.add(seconds, status, expected, body)

    threads = [threading.Thread(target=run, args=pair, daemon=True) for pair in zip(clients, shares, strict=True)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    samples.wall = time.perf_counter() - began
    return samples


def create_upload(client: Client, number: int) -> tuple[float, int, str]:
    token = client.users[number // UPLOADS_PER_USER][1]
    started = time.perf_counter()
    status, body = client.connection.request("POST", "/uploads", token, UPLOAD)
    seconds = time.perf_counter() - started
    if status == 201:
        client.jobs.append((token, json.loads(body)["jobId"]))
    return seconds, status, body


def read_job(client: Client, number: int) -> tuple[float, int, str]:
    if not client.jobs:
        return 0.0, 0, "this client created no job to read"
    token, job_id = client.jobs[number % len(client.jobs)]
    started = time.perf_counter()
    status, body = client.connection.request("GET", f"/jobs/{job_id}", token, None)
    return time.perf_counter() - started, status, body


def gateway_phase(cloud: Cloud, client_count: int, requests: int) -> tuple[dict[str, Samples], int]:
    """Each route `requests` times over `client_count` clients; and how many users made them."""
    per_client = -(-requests // client_count)
    users_per_client = -(-per_client // UPLOADS_PER_USER)
    run_id = uuid.uuid4().hex[:8]

    def clients(kind: str, users: int) -> list[Client]:
        return [
            Client(
                Connection(cloud.api_url),
                [(f"{kind}-{run_id}-{c}-{u}", cloud.token(f"{kind}-{run_id}-{c}-{u}")) for u in range(users)],
            )
            for c in range(client_count)
        ]

    warm = clients("warmup", 1)
    run_clients(warm, create_upload, client_count, 201)
    run_clients(warm, read_job, client_count, 200)
    for client in warm:
        client.connection.close()
    measured = clients("bench", users_per_client)
    try:
        uploads = run_clients(measured, create_upload, requests, 201)
        reads = run_clients(measured, read_job, requests, 200)
    finally:
        for client in measured:
            client.connection.close()
    return {"POST /uploads": uploads, "GET /jobs/{id}": reads}, client_count * users_per_client


# --- the handler alone -----------------------------------------------------------------------------------------


@dataclass
class LambdaContext:
    function_name: str = "api"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@functools.cache
def _event_template() -> str:
    return EVENT_TEMPLATE.read_text()


def http_event(method: str, path: str, route_key: str, sub: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """A payload 2.0 event as the gateway's JWT authorizer passes it on (tests/functions/api/conftest.py's shape)."""
    event = json.loads(_event_template())
    event["routeKey"] = event["requestContext"]["routeKey"] = route_key
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"]["content-type"] = "application/json"
        event["headers"]["content-length"] = str(len(event["body"]))
    if "{" in route_key:
        event["pathParameters"] = {"jobId": path.rsplit("/", 1)[1]}
    return event


def handler_environment(log_level: str) -> dict[str, str]:
    """What the program gives the api function (docs/CONTRACTS.md), with fake credentials for moto."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "api",
        "POWERTOOLS_METRICS_NAMESPACE": "MediaPipelineBench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOG_LEVEL": log_level,
        "JOBS_TABLE_NAME": "jobs",
        "USAGE_TABLE_NAME": "usage",
        "UPLOADS_BUCKET": "bench-uploads",
        "OUTPUTS_BUCKET": "bench-outputs",
        "EVENT_BUS_NAME": "media-pipeline-bench",
        "STACK_NAME": "dev",
        "MAX_UPLOAD_BYTES": str(2 * 1024**3),
        "MAX_IMAGE_UPLOAD_BYTES": str(50 * 1024**2),
        "MAX_AUDIO_UPLOAD_BYTES": str(500 * 1024**2),
        "ALLOWED_CONTENT_TYPES": "video/mp4,video/quicktime,image/jpeg,image/png,audio/mpeg",
        "UPLOAD_URL_TTL_SECONDS": "900",
        "DOWNLOAD_URL_TTL_SECONDS": "3600",
        "JOB_RETENTION_DAYS": "7",
        "MAX_OPEN_UPLOADS_PER_USER": "20",
        "MAX_JOBS_PER_USER_PER_HOUR": "100",
        "MAX_STORED_BYTES_PER_USER": str(50 * 1024**3),
        "CDN_BASE_URL": "https://cdn.example.test",
        "CDN_KEY_PAIR_ID": "K2JCJMDEHXQW5F",
    }


class AwsCallTimer:
    """Seconds spent in botocore API calls (serialising, moto's handling, parsing) since the last `take()`."""

    def __init__(self) -> None:
        from botocore.client import BaseClient

        self._client_class = BaseClient
        self._original = BaseClient._make_api_call
        self.seconds = 0.0
        self.calls = 0

        def timed(client: Any, operation: str, params: Any) -> Any:
            started = time.perf_counter()
            try:
                return self._original(client, operation, params)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        BaseClient._make_api_call = timed

    def take(self) -> tuple[float, int]:
        taken = (self.seconds, self.calls)
        self.seconds, self.calls = 0.0, 0
        return taken

    def restore(self) -> None:
        self._client_class._make_api_call = self._original


@dataclass
class HandlerRun:
    samples: dict[str, Samples]
    aws_seconds: dict[str, list[float]]
    """Of each call, the seconds spent in its AWS calls."""
    aws_calls: dict[str, float]
    """AWS calls per request."""
    cpu_seconds: dict[str, list[float]]
    """Of each call, the CPU seconds of the thread that ran it: what it cost, whatever the neighbours took."""
    profile: str = ""


@dataclass(frozen=True)
class RouteCall:
    """One route's calls of the handler: only `invoke` is timed."""

    event: Callable[[int], dict[str, Any]]
    """The payload 2.0 event of the route's `n`th call."""
    invoke: Callable[[dict[str, Any]], dict[str, Any]]
    """The handler, as Lambda calls it."""
    expected: int
    after: Callable[[dict[str, Any]], None]
    """Given each answer: notes what it created and keeps moto's tables small (see `route_calls`)."""


def create_resources(key_pem: str) -> None:
    """In the running moto: the tables as the program declares them, the buckets, the CDN key's secret."""
    import boto3

    from tests.functions.declared_tables import JOBS_TABLE, USAGE_TABLE, create_declared_table

    create_declared_table(JOBS_TABLE, "jobs")
    create_declared_table(USAGE_TABLE, "usage")
    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in ("bench-uploads", "bench-outputs"):
        s3.create_bucket(Bucket=bucket)
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    os.environ["CDN_PRIVATE_KEY_SECRET_ARN"] = secrets.create_secret(Name="cdn-key", SecretString=key_pem)["ARN"]


def route_calls(sink: Any) -> dict[str, RouteCall]:
    """Each route's calls of the handler: a new user every UPLOADS_PER_USER uploads; each read, of one of the first
    KEPT_JOBS jobs, by its owner.

    moto's TransactWriteItems deep-copies every table it writes to (to roll back on failure), so its cost grows with
    the items held, which DynamoDB's does not; after each upload, untimed, every job past the first KEPT_JOBS and each
    finished user's usage record are deleted, so every call sees tables of the same size.
    """
    import boto3

    from functions.api import handler as api

    api.logger.logger_handler.stream = sink
    context = LambdaContext()
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    kept: list[tuple[str, str]] = []
    uploads = {"count": 0}

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return api.handler(event, context)

    def upload_event(_number: int) -> dict[str, Any]:
        sub = f"handler-{uploads['count'] // UPLOADS_PER_USER}"
        return http_event("POST", "/uploads", "POST /uploads", sub, UPLOAD)

    def after_upload(response: dict[str, Any]) -> None:
        sub = f"handler-{uploads['count'] // UPLOADS_PER_USER}"
        uploads["count"] += 1
        if response["statusCode"] == 201:
            job_id = json.loads(response["body"])["jobId"]
            if len(kept) < KEPT_JOBS:
                kept.append((sub, job_id))
            else:
                dynamodb.delete_item(TableName="jobs", Key={"jobId": {"S": job_id}})
        if uploads["count"] % UPLOADS_PER_USER == 0:
            dynamodb.delete_item(TableName="usage", Key={"ownerId": {"S": sub}})

    def read_event(number: int) -> dict[str, Any]:
        sub, job_id = kept[number % len(kept)]
        return http_event("GET", f"/jobs/{job_id}", "GET /jobs/{jobId}", sub, None)

    return {
        "POST /uploads": RouteCall(upload_event, invoke, 201, after_upload),
        "GET /jobs/{id}": RouteCall(read_event, invoke, 200, lambda _response: None),
    }


def handler_phase(requests: int, log_level: str, profile: bool) -> HandlerRun:
    """Each route `requests` times, one call at a time, after WARMUP_CALLS untimed calls, against moto."""
    environment = handler_environment(log_level)
    os.environ.update(environment)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    # Powertools read the namespace when functions/common/observability.py was first imported, which the local cloud's
    # modules imported above may already have done, without it.
    from functions.common.observability import metrics

    metrics.namespace = environment["POWERTOOLS_METRICS_NAMESPACE"]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from moto import mock_aws

    from tests.functions.declared_tables import declared_tables

    declared_tables()  # runs the program under the infra tests' mocks once, before any timing
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # Logs and metrics go where Lambda would ship them to CloudWatch from: written, then dropped.
    with mock_aws(), open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        create_resources(key.decode())
        calls = route_calls(sink)
        timer = AwsCallTimer()
        try:
            for route in calls.values():
                for number in range(WARMUP_CALLS):
                    route.after(route.invoke(route.event(number)))
            # What setup made (the program run for the table schemas, moto's backends, the clients) is left out of
            # the collector's full passes, which would otherwise walk it (150-300 ms each, a dozen a run); a
            # function's heap in Lambda holds none of the first two.
            gc.collect()
            gc.freeze()
            run = HandlerRun({}, {}, {}, {})
            for name, route in calls.items():
                measured = measure_calls(route, requests, timer)
                run.samples[name], run.aws_seconds[name], run.aws_calls[name], run.cpu_seconds[name] = measured
            if profile:
                run.profile = profile_calls(calls)
        finally:
            timer.restore()
    return run


def measure_calls(
    route: RouteCall, requests: int, timer: AwsCallTimer
) -> tuple[Samples, list[float], float, list[float]]:
    """`requests` calls one after the other: each one's seconds, the seconds of it spent in AWS calls, the AWS calls
    per request, and each one's CPU seconds."""
    samples, aws, cpu, calls = Samples(), [], [], 0
    began = time.perf_counter()
    for number in range(requests):
        event = route.event(number)
        timer.take()
        started, started_cpu = time.perf_counter(), time.thread_time()
        response = route.invoke(event)
        seconds, cpu_seconds = time.perf_counter() - started, time.thread_time() - started_cpu
        in_aws, count = timer.take()
        samples.add(seconds, response["statusCode"], route.expected, str(response.get("body", "")))
        aws.append(in_aws)
        cpu.append(cpu_seconds)
        calls += count
        route.after(response)
    samples.wall = time.perf_counter() - began  # with the untimed steps: the handler's rate is 1 / mean instead
    return samples, aws, calls / requests, cpu


def profile_calls(calls: dict[str, RouteCall]) -> str:
    """PROFILE_CALLS calls of each route under cProfile: the functions with the most cumulative and own time."""
    report = io.StringIO()
    for name, route in calls.items():
        profiler = cProfile.Profile()
        for number in range(PROFILE_CALLS):
            event = route.event(number)
            profiler.enable()
            response = route.invoke(event)
            profiler.disable()
            route.after(response)
        print(f"\n--- cProfile: {PROFILE_CALLS} x {name} ---", file=report)
        stats = pstats.Stats(profiler, stream=report)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(15)
    return report.getvalue().replace(sys.prefix, "VENV")


# --- the report ------------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]  # nearest rank


def _row(label: str, samples: Samples, expected: int, rate: float) -> str:
    return (
        f"{label:<26}{_ms(samples.p50())}{_ms(samples.p99())}{_ms(max(samples.seconds))}"
        f"{rate:9.1f}{len(samples.seconds):7d}{samples.errors(expected):9d}"
    )


def _drift(samples: Samples, clients: int) -> str:
    """p50 of the first tenth, then of the last tenth, of the answers (in the order they came) that came after the
    first round of `clients` and before the last one: while every client is still sending, so the change is the
    cloud's, not the queue's filling or draining."""
    steady = samples.seconds[clients : len(samples.seconds) - clients]
    if len(steady) < 20:
        return f"n/a (fewer than 20 answers past the first and before the last {clients})"
    tenth = len(steady) // 10
    early, late = steady[:tenth], steady[-tenth:]
    return f"{statistics.median(early) * 1000:.1f} ms -> {statistics.median(late) * 1000:.1f} ms"


def report(gateway: dict[str, Samples], handler: HandlerRun, expected: dict[str, int], clients: int) -> None:
    print(f"{'':<26}{'p50':>11}{'p99':>11}{'max':>11}{'req/s':>9}{'n':>7}{'non-2xx':>9}")
    for name in ROUTES:
        samples = gateway[name]
        print(_row(f"gateway  {name}", samples, expected[name], len(samples.seconds) / samples.wall))
    for name in ROUTES:
        samples = handler.samples[name]
        print(_row(f"handler  {name}", samples, expected[name], len(samples.seconds) / sum(samples.seconds)))
    print()
    for name in ROUTES:
        ratio = gateway[name].p50() / handler.samples[name].p50()
        print(f"gateway p50 / handler p50   {name:<16}{ratio:7.1f}x")
    for name in ROUTES:
        print(f"gateway p50, early -> late in the run, {name:<16}{_drift(gateway[name], clients)}")
    for name in ROUTES:
        total, aws = handler.samples[name].seconds, handler.aws_seconds[name]
        own = [whole - part for whole, part in zip(total, aws, strict=True)]
        print(
            f"handler {name:<16} {handler.aws_calls[name]:.1f} AWS calls a request (moto in-process): "
            f"p50 {statistics.median(aws) * 1000:.1f} ms p99 {_p99(aws) * 1000:.1f} ms; "
            f"the rest p50 {statistics.median(own) * 1000:.1f} ms p99 {_p99(own) * 1000:.1f} ms"
        )
    for name in ROUTES:
        cpu = handler.cpu_seconds[name]
        print(
            f"handler {name:<16} CPU time of the calling thread: p50 {statistics.median(cpu) * 1000:.1f} ms "
            f"p99 {_p99(cpu) * 1000:.1f} ms max {max(cpu) * 1000:.1f} ms (wall minus this: the machine's other work)"
        )
    worst = max(handler.samples[name].p99() for name in ROUTES)
    verdict = "met" if worst < GOAL_P99_SECONDS else "NOT met"
    print(f"handler p99 under {GOAL_P99_SECONDS * 1000:.0f} ms: {verdict} (worst p99 {worst * 1000:.1f} ms)")
    if handler.profile:
        print(handler.profile)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help=f"concurrent clients (at most {MAX_CLIENTS})")
    parser.add_argument(
        "--requests", type=int, default=1000, help=f"requests per route and measurement (at most {MAX_REQUESTS})"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="the api function's worker processes (default 2)")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the function, both ways (default INFO)")
    parser.add_argument("--profile", action="store_true", help="also profile the handler and print what dominates")
    args = parser.parse_args()
    client_count = max(1, min(args.clients, MAX_CLIENTS))
    requests = max(client_count, min(args.requests, MAX_REQUESTS))
    expected = {"POST /uploads": 201, "GET /jobs/{id}": 200}

    with (
        tempfile.TemporaryDirectory(prefix="api-speed-") as state,
        local_cloud(Path(state), args.concurrency, args.log_level) as cloud,
    ):
        startup = cloud.startup
        gateway, users = gateway_phase(cloud, client_count, requests)
    handler = handler_phase(requests, args.log_level, args.profile)

    print(
        f"local cloud: started in {startup:.1f} s; the api function in at most {args.concurrency} worker processes; "
        f"LOG_LEVEL {args.log_level}"
    )
    print(
        f"gateway: {client_count} concurrent clients (keep-alive), {users} users; "
        f"handler: one call at a time, req/s = 1 / mean\n"
    )
    report(gateway, handler, expected, client_count)

    failed = False
    for where, runs in (("gateway", gateway), ("handler", handler.samples)):
        for name in ROUTES:
            samples = runs[name]
            if samples.errors(expected[name]):
                failed = True
                answers = ", ".join(
                    f"{status or 'no answer'}: {count}" for status, count in sorted(samples.statuses.items())
                )
                print(f"ERRORS {where} {name}: {answers}; first: {samples.example_error}", file=sys.stderr)
    if failed:
        print("the run had errors: its figures do not measure the API's speed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
