"""The local cloud keeps its state across a restart, until `python -m local reset`: one cloud of its own, on its own
state directory, stopped and started again as a developer would (SIGINT to `python -m local up`).

One scenario in one test, because each start costs seconds: a finished job, a webhook endpoint and a job still
processing when the cloud stops; after the restart the same records, outputs, names and token; no process of the
stopped cloud left; after a reset an empty cloud with new names that refuses the old token."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from local.cli.client import FINAL_STATUSES, ApiClient, download, post_form, request
from tests.e2e.conftest import E2E_LAYER, REPO, RunningCloud, start_cloud, stop_cloud, wait_for
from tests.media_samples import make_video

pytestmark = pytest.mark.e2e

JOB_TIMEOUT_SECONDS = 300
STOP_TIMEOUT_SECONDS = 300
TABLE = "aws:dynamodb/table:Table"
IMAGE = "docker-build:index:Image"
BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def webhook_receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def upload(client: ApiClient, path: Path) -> str:
    created = client.create_upload(path, "video/mp4")
    assert post_form(created["upload"]["url"], created["upload"]["fields"], path) in (200, 201, 204)
    return str(created["jobId"])


def without_links(value: Any) -> Any:
    """A job record without what is signed when it is read (presigned and CDN URLs, their expiry)."""
    if isinstance(value, dict):
        return {k: without_links(v) for k, v in value.items() if k != "expiresAt" and not _is_link(v)}
    if isinstance(value, list):
        return [without_links(v) for v in value]
    return value


def _is_link(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("http")


def physical_ids(cloud: RunningCloud) -> dict[tuple[str, str], str]:
    """Every declared resource's id but an image's, which is the digest of its content (the code it holds); a queue
    URL names the emulator's endpoint, which is a new port each start."""
    endpoint = cloud.deployment["emulatorEndpoint"]
    return {
        (r["type"], r["name"]): r["id"].replace(endpoint, "EMULATOR")
        for r in cloud.deployment["resources"]
        if r["type"] != IMAGE
    }


def ids_of(ids: dict[tuple[str, str], str], *types: str) -> dict[tuple[str, str], str]:
    return {key: value for key, value in ids.items() if key[0] in types}


# --- processes --------------------------------------------------------------------------------------------------


def _process_table() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, start time) for every live process /proc shows (a zombie has ended: only its entry is left
    until whoever adopted it reaps it)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, ppid, *rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if state != "Z":
                table[int(entry.name)] = (int(ppid), rest[17])
    return table


def descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process whose parent chain leads to `root`."""
    table = _process_table()
    found: set[tuple[int, str]] = set()
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in table.items():
            if ppid == parent and (pid, started) not in found:
                found.add((pid, started))
                frontier.append(pid)
    return found


def still_running(processes: set[tuple[int, str]]) -> set[tuple[int, str]]:
    table = _process_table()
    return {(pid, started) for pid, started in processes if table.get(pid, (0, ""))[1] == started}


def naming(state_dir: Path) -> set[int]:
    """Processes whose environment names the state directory (the workers' TMPDIR, inherited by what they start)."""
    marker = str(state_dir).encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


class ProcessWatch:
    """Collects the cloud's descendants every 0.1 s while it runs, so short-lived ffmpeg processes are seen too."""

    def __init__(self, root: int) -> None:
        self._root = root
        self.seen: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            self.seen |= descendants(self._root)

    def stop(self) -> set[tuple[int, str]]:
        self._stop.set()
        self._thread.join()
        return self.seen


def stop_gracefully(process: subprocess.Popen[bytes]) -> None:
    """SIGINT, as Ctrl-C stops `up`, and time to finish: the interpreter's last garbage collection alone can take
    seconds on a loaded machine (conftest's stop_cloud kills the cloud after 30 s)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            stop_cloud(process)


def local_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "local", *arguments]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


# --- the scenario -----------------------------------------------------------------------------------------------


@dataclass
class FirstRun:
    token: str
    endpoint_id: str
    finished: dict[str, Any]
    outputs: dict[str, bytes]
    in_flight_id: str
    status_at_stop: str
    ids: dict[tuple[str, str], str]


def first_run(state: Path, tmp_path: Path, receiver_url: str) -> FirstRun:
    """A finished job, a webhook endpoint, and a job still processing when the cloud is stopped; no process of the
    cloud outlives it."""
    finished_clip = make_video(tmp_path / "finished.mp4", width=426, height=240, seconds=1)
    in_flight_clip = make_video(tmp_path / "in-flight.mp4", width=640, height=360, seconds=2)
    cloud = start_cloud(REPO, state, [E2E_LAYER])
    try:
        token = cloud.token("durable-owner")
        client = ApiClient(cloud.api_url, token)
        endpoint = client.register_webhook(receiver_url)
        finished_id = upload(client, finished_clip)
        finished = client.follow(finished_id, timeout_seconds=JOB_TIMEOUT_SECONDS)
        assert finished["status"] == "COMPLETED", finished
        outputs = {
            r["name"]: download(r["url"], tmp_path / f"before-{r['name']}.mp4").read_bytes()
            for r in finished["renditions"]
            if r.get("url")
        }
        assert outputs, finished
        watch = ProcessWatch(cloud.process.pid)
        in_flight_id = upload(client, in_flight_clip)
        # Stopped while it is processing (or, on a fast machine, already done: then nothing is left to resume).
        status_at_stop = wait_for(
            lambda: (s := client.job(in_flight_id)["status"]) in ("PROCESSING", *FINAL_STATUSES) and s,
            JOB_TIMEOUT_SECONDS,
            interval=0.1,
            message="the second job to be processing",
        )
    finally:
        stop_gracefully(cloud.process)
    started_by_cloud = watch.stop()
    assert cloud.process.returncode == 0, cloud.log_tail()
    assert started_by_cloud, "the watch saw none of the cloud's worker processes"
    # A process killed a moment ago may take a moment to end (a leaked one would run on: an encode takes longer).
    wait_for(lambda: not still_running(started_by_cloud), 10, message="the stopped cloud's processes to end")
    wait_for(lambda: not naming(state), 10, message="processes with the stopped cloud's state directory to end")
    return FirstRun(token, endpoint["id"], finished, outputs, in_flight_id, str(status_at_stop), physical_ids(cloud))


def second_run(state: Path, tmp_path: Path, receiver_url: str, before: FirstRun) -> None:
    """The same records, outputs, endpoint, names and token; the job in flight at the stop reaches a final state."""
    cloud = start_cloud(REPO, state, [E2E_LAYER])
    try:
        client = ApiClient(cloud.api_url, before.token)
        finished_id = before.finished["jobId"]
        restarted = client.job(finished_id)
        assert without_links(restarted) == without_links(before.finished)
        for rendition in [r for r in restarted["renditions"] if r.get("url")]:
            copy = download(rendition["url"], tmp_path / f"after-{rendition['name']}.mp4")
            assert copy.read_bytes() == before.outputs[rendition["name"]], rendition["name"]
        listed = client.call("GET", "webhooks").body["webhooks"]
        assert [(w["id"], w["url"]) for w in listed] == [(before.endpoint_id, receiver_url)]
        job = client.follow(before.in_flight_id, timeout_seconds=JOB_TIMEOUT_SECONDS)
        assert job["status"] in FINAL_STATUSES, f"stopped while {before.status_at_stop}, then stuck: {job}"
        deadline_failure = (job.get("error") or {}).get("code") == "PROCESSING_TIMEOUT"
        assert job["status"] == "COMPLETED" or deadline_failure, job
        ids = physical_ids(cloud)
        assert ids == before.ids
        assert ids_of(ids, TABLE) and ids_of(ids, *BUCKET_TYPES)
        refused = local_command("reset", "--state-dir", str(state))
        assert refused.returncode == 1 and "another local cloud" in refused.stderr, refused
    finally:
        stop_gracefully(cloud.process)
    assert cloud.process.returncode == 0, cloud.log_tail()


def after_reset(state: Path, before: FirstRun) -> None:
    """An empty cloud with new names, which refuses the old token (its signing key went with the state)."""
    reset = local_command("reset", "--state-dir", str(state))
    assert reset.returncode == 0, reset
    assert f"removed {state / 'state'}" in reset.stdout
    assert (state / "cdn-key.pem").exists()
    cloud = start_cloud(REPO, state, [E2E_LAYER])
    try:
        finished_id = before.finished["jobId"]
        assert request("GET", f"{cloud.api_url}jobs/{finished_id}", before.token).status == 401
        assert cloud.client("durable-owner").call("GET", f"jobs/{finished_id}").status == 404
        renamed = ids_of(physical_ids(cloud), TABLE, *BUCKET_TYPES)
        assert renamed and all(physical != before.ids[key] for key, physical in renamed.items()), renamed
    finally:
        stop_gracefully(cloud.process)


def test_state_survives_a_restart_and_reset_empties_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with webhook_receiver() as receiver_url:
        before = first_run(state, tmp_path, receiver_url)
        second_run(state, tmp_path, receiver_url, before)
    after_reset(state, before)
