"""What the local cloud itself costs, on its fixture program: cold start against warm invocation, and the HTTP API
(JWT check, payload 2.0 conversion) against invoking the same function directly. Prints ratios.

    .venv/bin/python -m bench.local_cloud [--requests 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from local.cli.client import request
from local.cloud import CloudOptions, LocalCloud
from local.runtime.auth import issue_token

FIXTURE_PROGRAM = Path(__file__).resolve().parent.parent / "tests" / "e2e" / "fixture_program"


def _milliseconds(samples: list[float]) -> str:
    return f"p50 {statistics.median(samples) * 1000:7.1f} ms   max {max(samples) * 1000:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per measurement (at most 1000)")
    args = parser.parse_args()
    count = max(1, min(args.requests, 1000))
    with tempfile.TemporaryDirectory() as state:
        cloud = LocalCloud(CloudOptions(project_dir=FIXTURE_PROGRAM, state_dir=Path(state), layers=[]))
        started = time.perf_counter()
        cloud.start()
        startup = time.perf_counter() - started
        try:
            assert cloud.signing_key is not None and cloud.token_settings is not None
            token = issue_token(cloud.signing_key, cloud.token_settings, "bench")
            api = next(rt for rt in cloud.runtimes.all() if rt.spec.name.startswith("api-fn"))
            event = {"routeKey": "GET /health", "requestContext": {}}

            started = time.perf_counter()
            api.invoke(event)
            cold = time.perf_counter() - started
            direct = []
            for _ in range(count):
                started = time.perf_counter()
                api.invoke(event)
                direct.append(time.perf_counter() - started)
            through_api = []
            for _ in range(count):
                started = time.perf_counter()
                response = request("GET", cloud.api_url + "items/missing", token)
                through_api.append(time.perf_counter() - started)
                if response.status != 404:
                    raise RuntimeError(f"unexpected answer {response.status}: {response.body}")
        finally:
            cloud.stop()
    print(f"startup (engine + {len(cloud.deployment.resources) if cloud.deployment else 0} resources): {startup:.2f} s")
    print(f"cold start            {cold * 1000:7.1f} ms")
    print(f"warm invoke           {_milliseconds(direct)}")
    print(f"HTTP API + JWT + fn   {_milliseconds(through_api)}")
    print(f"cold / warm           {cold / statistics.median(direct):7.1f}x")
    print(f"API / direct invoke   {statistics.median(through_api) / statistics.median(direct):7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
