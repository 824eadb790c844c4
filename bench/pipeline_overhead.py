"""What the pipeline adds to the encoder: one job through the real program's local cloud against the transcoder's own
ffmpeg commands run directly, and N concurrent jobs against the same encodes run back to back. Ratios from one run.

    .venv/bin/python -m bench.pipeline_overhead [--seconds 30] [--jobs 4] [--job-seconds 12] [--parallel 2]
        [--cloud-parallel N] [--concurrency N] [--no-warm-up] [--keep DIR]   (--jobs 0: the single job only)

It starts `python -m local up` on the program itself with the dev stack (Pulumi.dev.yaml: the Lambda engine, the
default 720p + 1080p ladder) and the local layer, as tests/e2e/conftest.py does (a free port, a state directory of its
own, a token signed with that directory's key), generates a 1080p30 H.264/AAC clip (bench/encode_speed.py
`make_source`), uploads it through the API's presigned POST (local/cli/client.py) and measures

- P: from the end of the upload (the POST's answer) to COMPLETED, as the jobs table's history records that write;
  the job is run twice, before and after E, S and K, and P is the mean of the two, so that a machine whose speed
  drifts during the run (a shared one) moves both sides of each ratio alike;
- where P goes, from the job's history and the functions' logs (state dir `logs/`): the S3 notification reaching
  ingest, ingest's work (download, probe, tail decode), the fan-out reaching each transcoder, each transcoder's
  source download, ffmpeg, the output's read-back and upload, the wait for the packager, the packager, the tracker;
- E: the transcoder's own commands (`functions.transcode.service.transcode_args`, for the plan and probe the job
  record holds, with the encoder settings the cloud's transcoders use: `-threads` = the CPUs) run directly, in
  parallel, on the same source; S: one ffmpeg that decodes once and `split`s to both outputs with the same encoder
  settings; K: the packager's own commands (bench/packager_speed.py) on E's outputs, run as the packager runs them,
  one after the other.

It prints P / E and P / S, and P / (E + K) and P / (S + K): the packager is part of P (a job is COMPLETED only once
it is packaged), so the fair comparison is with its commands added; both are printed.

Throughput: `--jobs` clips of `--job-seconds` uploaded at once; the cloud's time from the end of the first upload to
the last COMPLETED, against the same 2 x jobs encodes run directly `--parallel` at a time (the CPUs), and against those
encodes plus each job's packager commands (queued as soon as the job's encodes are done). Efficiency is direct time /
cloud time. The CPU seconds the cloud's processes (itself, its workers, their ffmpeg) used over the same window are
set against the direct run's: CPU efficiency says how much work the pipeline adds, the wall-clock one how well it
keeps the CPUs busy.

The machine's own load is printed with every phase (load average; CPUs busy by anything during the phase; how much of
that was this bench): on a shared machine, read the ratios of a phase others kept busy with care, and run it twice.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.encode_speed import make_source
from bench.packager_speed import measure_packager
from functions.common.media_tools import ffmpeg_path, tool_env
from functions.contracts.fanout import EncodePlan
from functions.contracts.jobs import Probe
from functions.transcode.service import EncoderSettings, transcode_args
from functions.transcode.settings import TranscodeSettings
from local.cli.client import FINAL_STATUSES, ApiClient, post_form, start_cloud_process, stop_cloud_process

REPO = Path(__file__).resolve().parent.parent
JOB_TIMEOUT_SECONDS = 900
POLL_SECONDS = 0.5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP_SECONDS = 2.0
DEFAULT_CONCURRENCY = 2  # `python -m local up`'s --concurrency


# --- the machine ----------------------------------------------------------------------------------------------------


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _tree_cpu_parts(root: int) -> dict[str, float]:
    """CPU seconds of `root` and every living descendant, with what they reaped (children's time moves to the parent
    that waits for them, so an ffmpeg that ended is counted under its worker), in three parts: the local cloud's own
    process (the emulator, the event sources, the gateway, the snapshots), its workers (the functions' Python), and
    what the workers run (ffmpeg, ffprobe)."""
    parents: dict[int, int] = {}
    own: dict[int, float] = {}
    reaped: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(rest[1])
        own[pid] = (int(rest[11]) + int(rest[12])) / CLOCK_TICKS  # utime, stime
        reaped[pid] = (int(rest[13]) + int(rest[14])) / CLOCK_TICKS  # cutime, cstime
    parts = {"cloud process": own.get(root, 0.0), "workers": reaped.get(root, 0.0), "tools": 0.0}
    depth, frontier = {root: 0}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in depth:
                depth[pid] = depth[parent] + 1
                frontier.append(pid)
                if depth[pid] == 1:
                    parts["workers"] += own[pid]
                    parts["tools"] += reaped[pid]
                else:
                    parts["tools"] += own[pid] + reaped[pid]
    return parts


def _tree_cpu_seconds(root: int) -> float:
    return sum(_tree_cpu_parts(root).values())


def _own_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Phase:
    """One measured phase: wall time, the CPU time of what it measured, and what the whole machine did meanwhile."""

    name: str
    wall: float = 0.0
    cpu: float = 0.0
    machine_busy_cpus: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)

    def describe(self) -> str:
        others = max(0.0, self.machine_busy_cpus - self.cpu / self.wall) if self.wall else 0.0
        return (
            f"{self.name}: {self.wall:.2f} s wall, {self.cpu:.2f} CPU s; machine {self.machine_busy_cpus:.2f} CPUs busy"
            f" (others {others:.2f}); load {self.load[0]:.2f} -> {self.load[1]:.2f}"
        )


@contextmanager
def phase(name: str, cpu_seconds: Callable[[], float]) -> Iterator[Phase]:
    measured = Phase(name)
    load_before = os.getloadavg()[0]
    busy_before, total_before = _machine_busy()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    yield measured
    if not measured.wall:
        measured.wall = time.perf_counter() - started
    measured.cpu = cpu_seconds() - cpu_before
    busy_after, total_after = _machine_busy()
    cpus = len(os.sched_getaffinity(0)) or 1
    measured.machine_busy_cpus = cpus * (busy_after - busy_before) / max(1, total_after - total_before)
    measured.load = (load_before, os.getloadavg()[0])
    print(f"  [{measured.describe()}]", flush=True)


# --- the local cloud ------------------------------------------------------------------------------------------------


@dataclass
class Cloud:
    """`python -m local up` on the program itself, in its own state directory."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    outputs: dict[str, Any]
    deployment: dict[str, Any]
    _emulator: Any = None

    @classmethod
    def start(cls, state_dir: Path, concurrency: int | None = None) -> Cloud:
        from local.cloud import free_port

        arguments = ["--project-dir", str(REPO), "--port", str(free_port())]
        if concurrency is not None:
            arguments += ["--concurrency", str(concurrency)]
        started = start_cloud_process(state_dir, arguments, cwd=REPO)
        return cls(started.process, state_dir, started.outputs, started.deployment)

    def stop(self) -> None:
        stop_cloud_process(self.process)

    def client(self, sub: str) -> ApiClient:
        from local.runtime.auth import AuthorizerSettings, SigningKey, issue_token

        key, settings = SigningKey.load_or_create(self.state_dir), AuthorizerSettings.load(self.state_dir)
        return ApiClient(str(self.outputs["apiUrl"]), issue_token(key, settings, sub, 3600))

    def cpu_seconds(self) -> float:
        return _tree_cpu_seconds(self.process.pid)

    def cpu_parts(self) -> dict[str, float]:
        return _tree_cpu_parts(self.process.pid)

    def print_cpu_parts(self, since: dict[str, float]) -> None:
        now = self.cpu_parts()
        parts = ", ".join(f"{name} {now[name] - since[name]:.1f}" for name in now)
        print(f"  cloud CPU s by part: {parts}")

    def record(self, job_id: str) -> dict[str, Any]:
        """The job's item in the jobs table, read from the emulator (reading state only, never setting it up)."""
        from boto3.dynamodb.types import TypeDeserializer

        key = {"jobId": {"S": job_id}}
        item = self._dynamodb().get_item(TableName=self.outputs["jobsTable"], Key=key)["Item"]
        deserializer = TypeDeserializer()
        return {k: deserializer.deserialize(v) for k, v in item.items()}

    def statuses(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Each job's status, in one BatchGetItem of only the key and the status: a poll of many jobs is one small
        request, not one per job."""
        table = self.outputs["jobsTable"]
        request = {
            "Keys": [{"jobId": {"S": job_id}} for job_id in job_ids],
            "ProjectionExpression": "jobId, #s",
            "ExpressionAttributeNames": {"#s": "status"},
        }
        answer = self._dynamodb().batch_get_item(RequestItems={table: request})
        return {item["jobId"]["S"]: item["status"]["S"] for item in answer["Responses"].get(table, [])}

    def _dynamodb(self) -> Any:
        from local.engine.emulator import Emulator

        if self._emulator is None:
            self._emulator = Emulator.attach(self.deployment["emulatorEndpoint"], self.deployment["region"])
        return self._emulator.client("dynamodb")

    def log_events(self, job_id: str) -> list[LogEvent]:
        """Every log line of every function that names the job, in time order, and for each invocation that does an
        "invocation started" event: its last line's time less the duration of its REPORT line (where the local cloud
        writes one, as Lambda does)."""
        events = []
        for path in sorted((self.state_dir / "logs").glob("*.log")):
            reports: dict[str, tuple[float, float | None]] = {}
            invocations: dict[str, list[LogEvent]] = {}
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("REPORT RequestId: "):
                    fields = dict(f.split(": ", 1) for f in line.split("\t") if ": " in f)
                    init = fields.get("Init Duration")
                    reports[fields["REPORT RequestId"]] = (
                        float(fields["Duration"].split()[0]),
                        float(init.split()[0]) if init else None,
                    )
                    continue
                if job_id not in line or not line.startswith("{"):
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if entry.get("jobId") != job_id or "timestamp" not in entry:
                    continue
                event = LogEvent.of(entry)
                events.append(event)
                invocations.setdefault(str(entry.get("function_request_id")), []).append(event)
            for request_id, logged in invocations.items():
                if request_id not in reports:
                    continue
                duration_ms, init_ms = reports[request_id]
                last = max(e.at for e in logged)
                entry = {**logged[-1].entry, "durationMs": duration_ms, "initMs": init_ms}
                events.append(LogEvent(last - duration_ms / 1000, logged[-1].service, "invocation started", entry))
        return sorted(events, key=lambda e: e.at)

    def invocations(self) -> dict[str, list[float]]:
        """Per function (its log's name less the suffix), [invocations, cold starts, init seconds, duration seconds],
        from the REPORT lines so far."""
        totals: dict[str, list[float]] = {}
        for path in sorted((self.state_dir / "logs").glob("*.log")):
            function = path.stem.rsplit("-", 2)[0]
            for line in path.read_text(errors="replace").splitlines():
                if not line.startswith("REPORT RequestId: "):
                    continue
                fields = dict(f.split(": ", 1) for f in line.split("\t") if ": " in f)
                total = totals.setdefault(function, [0, 0, 0.0, 0.0])
                total[0] += 1
                total[3] += float(fields["Duration"].split()[0]) / 1000
                if "Init Duration" in fields:
                    total[1] += 1
                    total[2] += float(fields["Init Duration"].split()[0]) / 1000
        return totals

    def print_invocations(self, since: dict[str, list[float]]) -> None:
        """The invocations made since `since` (an earlier `invocations()`), by function."""
        now = self.invocations()
        if not now:
            return
        print("  invocations meanwhile (REPORT lines):  function, invocations, cold starts, init s, duration s")
        for function, total in sorted(now.items()):
            before = since.get(function, [0, 0, 0.0, 0.0])
            delta = [a - b for a, b in zip(total, before, strict=True)]
            if delta[0]:
                print(f"    {function:<22}{delta[0]:6.0f}{delta[1]:6.0f}{delta[2]:8.2f}{delta[3]:9.2f}")

    def transcode_commands(self, job_id: str) -> dict[str, list[str]]:
        """The ffmpeg argv each transcoder logged for the job ("encoding")."""
        return {
            e.entry.get("rendition", ""): list(e.entry["ffmpeg"])
            for e in self.log_events(job_id)
            if e.service == "transcode" and e.message == "encoding" and "ffmpeg" in e.entry
        }


@dataclass(frozen=True)
class LogEvent:
    at: float
    service: str
    message: str
    entry: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, entry: dict[str, Any]) -> LogEvent:
        stamp = datetime.strptime(entry["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
        return cls(stamp, str(entry.get("service", "?")), str(entry.get("message", "")), entry)


def upload(client: ApiClient, path: Path) -> tuple[str, float]:
    """Create the upload and POST the file to its form; the job id and the epoch second the POST was answered."""
    created = client.create_upload(path, "video/mp4")
    status = post_form(created["upload"]["url"], created["upload"]["fields"], path)
    uploaded = time.time()
    if status not in (200, 201, 204):
        raise RuntimeError(f"the upload form answered {status}")
    return str(created["jobId"]), uploaded


def wait_final(cloud: Cloud, client: ApiClient, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Wait until every job is final, then read each through GET /jobs/{id}; raises unless each COMPLETED.

    The wait reads the pending jobs' statuses (one BatchGetItem on the emulator, no function invoked) every
    POLL_SECONDS: polling the API would run the API function, the authorizer and the table read each time, work the
    pipeline does not do. P is taken from the record's history, so the poll's interval does not change it."""
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    pending = list(job_ids)
    while pending:
        statuses = cloud.statuses(pending)
        pending = [i for i in pending if statuses.get(i) not in FINAL_STATUSES]
        if pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs still running after {JOB_TIMEOUT_SECONDS} s")
            time.sleep(POLL_SECONDS)
    final = {job_id: client.job(job_id) for job_id in job_ids}
    failed = {i: j["status"] for i, j in final.items() if j["status"] != "COMPLETED"}
    if failed:
        raise RuntimeError(f"jobs did not complete: {failed} {json.dumps(list(final.values()))[:2000]}")
    return final


def _history_at(record: dict[str, Any], change_ends: str) -> float:
    """Epoch seconds of the first write whose changes include one ending in `change_ends`; NaN when none does."""
    for entry in record.get("history") or []:
        if any(str(change).endswith(change_ends) for change in entry.get("changes") or []):
            return int(entry["at"]) / 1000
    return float("nan")


def completed_at(record: dict[str, Any]) -> float:
    """Epoch seconds of the write that made the job COMPLETED, from its history."""
    at = _history_at(record, "-> COMPLETED")
    if math.isnan(at):
        raise RuntimeError("no COMPLETED write in the job's history")
    return at


# --- what P is made of ----------------------------------------------------------------------------------------------


def timeline(cloud: Cloud, job_id: str, uploaded: float) -> list[tuple[float, str]]:
    """The job's history writes and its functions' log lines, in seconds after the end of the upload."""
    record = cloud.record(job_id)
    rows = [
        (int(e["at"]) / 1000 - uploaded, f"table  {e.get('by')}: {'; '.join(map(str, e.get('changes') or []))}")
        for e in record.get("history") or []
    ]
    for e in cloud.log_events(job_id):
        extra = e.entry.get("rendition") or ""
        if e.message == "rendition completed":
            extra += f" encodeSeconds={e.entry.get('encodeSeconds')}"
        if e.message == "running ffmpeg":
            argv = e.entry.get("ffmpeg") or []
            extra += " " + " ".join(a for a in argv if a in ("hls", "image2") or a.endswith((".jpg", ".m3u8")))[:80]
        rows.append((e.at - uploaded, f"log    {e.service}: {e.message} {extra}".rstrip()))
    return sorted(rows)


def _first(events: list[LogEvent], service: str, message: str | None = None, rendition: str | None = None) -> float:
    for e in events:
        if e.service != service or (message is not None and e.message != message):
            continue
        if rendition is not None and e.entry.get("rendition") != rendition:
            continue
        return e.at
    return float("nan")


def _last(events: list[LogEvent], service: str) -> float:
    times = [e.at for e in events if e.service == service]
    return times[-1] if times else float("nan")


def breakdown(cloud: Cloud, job_id: str, uploaded: float, renditions: Sequence[str]) -> list[tuple[str, float]]:
    """Where P goes: consecutive stretches of the job's life, in seconds."""
    events = cloud.log_events(job_id)
    done = completed_at(cloud.record(job_id))
    ingest_first = _first(events, "ingest", "invocation started")
    if math.isnan(ingest_first):  # no REPORT lines: ingest's first write (VALIDATING), its first step
        ingest_first = _history_at(cloud.record(job_id), "-> VALIDATING")
    engine_chosen = _first(events, "ingest", "engine chosen")
    accepted = _first(events, "ingest", "upload accepted")
    rows = [("upload end -> ingest starts (S3 notification, delivery)", ingest_first - uploaded)]
    rows.append(("ingest: head, download, probe, tail decode", engine_chosen - ingest_first))
    rows.append(("ingest: job write, fan-out, event", accepted - engine_chosen))
    finished = []
    for name in renditions:
        invoked = _first(events, "transcode", "invocation started", name)
        started = _first(events, "transcode", "transcoding", name)
        if not math.isnan(invoked):
            rows.append((f"  {name}: fan-out -> transcoder invoked", invoked - accepted))
            rows.append((f"  {name}: invoked -> starts (HEAD output, gate, event)", started - invoked))
        encoding = _first(events, "transcode", "encoding", name)
        completed = _first(events, "transcode", "rendition completed", name)
        encode_seconds = next(
            (
                float(e.entry["encodeSeconds"])
                for e in events
                if e.message == "rendition completed" and e.entry.get("rendition") == name
            ),
            float("nan"),
        )
        if math.isnan(invoked):
            rows.append((f"  {name}: fan-out -> transcoder starts", started - accepted))
        rows.append((f"  {name}: HEAD + source download", encoding - started))
        rows.append((f"  {name}: ffmpeg", encode_seconds))
        rows.append((f"  {name}: read back + upload + event", completed - encoding - encode_seconds))
        finished.append(completed)
    last_encode = max(finished)
    packaging = _first(events, "packager", "packaging")
    packager_invoked = _first(events, "packager", "invocation started")
    if math.isnan(packager_invoked):
        packager_invoked = packaging
    packager_end = _last(events, "packager")
    rows.append(("last rendition -> packager invoked (tracker, request)", packager_invoked - last_encode))
    rows.append(("packager: invoked -> packaging", packaging - packager_invoked))
    rows.append(("packager (download, HLS, poster, sprite, upload)", packager_end - packaging))
    rows.append(("packager done -> COMPLETED (tracker)", done - packager_end))
    return rows


# --- the direct commands --------------------------------------------------------------------------------------------


def encoder_settings() -> EncoderSettings:
    """As the cloud's transcoders run: the program sets no FFMPEG_* variable, so the defaults and the CPUs."""
    return EncoderSettings(preset=TranscodeSettings.preset, crf=TranscodeSettings.crf, threads=os.cpu_count() or 2)


def plans_of(record: dict[str, Any]) -> list[EncodePlan]:
    renditions = sorted(record["renditions"].values(), key=lambda r: int(r.get("order", 0)))
    return [
        EncodePlan(
            name=r["name"],
            width=int(r["width"]),
            height=int(r["height"]),
            maxVideoBitrateKbps=int(r["maxVideoBitrateKbps"]),
            audioBitrateKbps=int(r["audioBitrateKbps"]),
        )
        for r in renditions
        if r.get("status") == "COMPLETED"
    ]


def probe_of(record: dict[str, Any]) -> Probe:
    return Probe(**json.loads(json.dumps(record["probe"], default=float)))


def commands(binary: str, source: Path, work: Path, plans: Sequence[EncodePlan], probe: Probe) -> list[list[str]]:
    encoder = encoder_settings()
    return [
        transcode_args(binary, source, work / f"{plan.name}.mp4", plan=plan, probe=probe, encoder=encoder)
        for plan in plans
    ]


def _without_paths(argv: Sequence[str]) -> list[str]:
    """The argv with its input and output files blanked (the binary is kept)."""
    return [argv[0], *("FILE" if a.startswith("/") else a for a in argv[1:])] if argv else []


def split_command(argvs: Sequence[list[str]]) -> list[str]:
    """One ffmpeg that reads and decodes the source once and `split`s the video to every output, each output with the
    options (maps, encoder settings, container flags) of its own transcoder command."""
    first = argvs[0]
    at_input = first.index("-i") + 2
    chains, outputs = [], []
    for number, argv in enumerate(argvs):
        if argv[:at_input] != first[:at_input]:
            raise ValueError("the commands do not read the same input the same way")
        graph_at = argv.index("-filter_complex")
        labels = {label: f"{label}o{number}" for label in re.findall(r"\[(s\d+)\]", argv[graph_at + 1])}
        graph = argv[graph_at + 1].replace("[0:v:0]", f"[v{number}]", 1)
        for label, renamed in labels.items():
            graph = graph.replace(f"[{label}]", f"[{renamed}]")
        chains.append(graph)
        globals_at = argv.index("-nostdin")
        options = argv[graph_at + 2 : globals_at]
        outputs += [f"[{labels[o[1:-1]]}]" if o[1:-1] in labels else o for o in options]
    split = f"[0:v:0]split={len(argvs)}" + "".join(f"[v{n}]" for n in range(len(argvs)))
    return [
        *first[:at_input],
        "-filter_complex",
        ";".join([split, *chains]),
        *outputs,
        *first[first.index("-nostdin") :],
    ]


def run_timed(argv: Sequence[str]) -> float:
    started = time.perf_counter()
    subprocess.run(list(argv), check=True, env=tool_env(), stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_parallel(argvs: Sequence[Sequence[str]]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(argvs)) as pool:
        list(pool.map(run_timed, argvs))
    return time.perf_counter() - started


def packager_seconds(outputs: dict[str, Path], work: Path) -> float:
    """The packager's own ffmpeg commands on the renditions, one after the other as it runs them, on all CPUs."""
    steps = measure_packager(outputs, work, len(os.sched_getaffinity(0)), repeat=1)
    return sum(step.wall_seconds for step in steps)


def ingest_commands(source: Path) -> None:
    """Ingest's own media commands on the source, timed: the probe, and the tail decode as ingest runs it (one
    decoding thread) and with two."""
    from functions.ingest.adapters import decode_tail_args, ffprobe_args, probe_media
    from functions.ingest.service import ProbedMedia, tail_start_seconds

    media = probe_media(source, size_bytes=source.stat().st_size)
    if not isinstance(media, ProbedMedia):
        return
    tail = decode_tail_args(source, stream_index=media.video_stream_index, from_seconds=tail_start_seconds(media))
    two_threads = list(tail)
    two_threads[two_threads.index("-threads") + 1] = "2"
    timings = []
    for argv in (ffprobe_args(source), tail, two_threads):
        started = time.perf_counter()
        subprocess.run(argv, check=True, env=tool_env(), capture_output=True)
        timings.append(time.perf_counter() - started)
    print(
        f"  ingest's commands on the source: probe {timings[0]:.2f} s; tail decode from "
        f"{tail_start_seconds(media):.1f} s, one thread {timings[1]:.2f} s, two threads {timings[2]:.2f} s"
    )


def run_pool(jobs: Sequence[list[list[str]]], packaging: Sequence[Callable[[], None]] | None, parallel: int) -> float:
    """Every job's encodes, `parallel` at a time, in job order; with `packaging`, a job's packager commands are queued
    first in line as soon as its encodes are done. Wall seconds of the whole."""
    tasks: deque[Callable[[], None]] = deque()
    lock = threading.Lock()
    remaining = [len(argvs) for argvs in jobs]

    def encode(job: int, argv: list[str]) -> Callable[[], None]:
        def run() -> None:
            run_timed(argv)
            with lock:
                remaining[job] -= 1
                if remaining[job] == 0 and packaging is not None:
                    tasks.appendleft(packaging[job])

        return run

    for job, argvs in enumerate(jobs):
        tasks.extend(encode(job, argv) for argv in argvs)
    running = [0]

    def worker() -> None:
        while True:
            with lock:
                if not tasks:
                    if running[0] == 0:
                        return
                    task = None
                else:
                    task = tasks.popleft()
                    running[0] += 1
            if task is None:
                time.sleep(0.01)  # a packager task may still be queued by a running encode
                continue
            try:
                task()
            finally:
                with lock:
                    running[0] -= 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


# --- the measurements -----------------------------------------------------------------------------------------------


def measure_single(cloud: Cloud, client: ApiClient, source: Path, work: Path) -> None:
    print(
        f"\n== one job: {source.stat().st_size / 1e6:.1f} MB source, P against the transcoder's own commands",
        flush=True,
    )
    invoked_before, parts_before = cloud.invocations(), cloud.cpu_parts()
    with phase("cloud job", cloud.cpu_seconds) as cloud_phase:
        job_id, uploaded = upload(client, source)
        wait_final(cloud, client, [job_id])
        record = cloud.record(job_id)
        p = completed_at(record) - uploaded
        cloud_phase.wall = time.time() - uploaded
    cloud.print_cpu_parts(parts_before)
    cloud.print_invocations(invoked_before)
    plans, probe = plans_of(record), probe_of(record)
    logged = cloud.transcode_commands(job_id)
    binary = next(iter(logged.values()))[0] if logged else ffmpeg_path()
    work.mkdir(parents=True, exist_ok=True)
    argvs = commands(binary, source, work, plans, probe)
    for plan, argv in zip(plans, argvs, strict=True):
        same = _without_paths(argv) == _without_paths(logged.get(plan.name, []))
        print(f"  {plan.name}: bench command {'==' if same else '!='} the transcoder's logged command (paths aside)")
    print(f"  ffmpeg: {binary}")

    with phase("transcoder commands in parallel", _own_children_cpu) as direct:
        e = run_parallel(argvs)
    with phase("one ffmpeg, split to both outputs", _own_children_cpu):
        s = run_timed(split_command(argvs))
    with phase("packager commands, one after the other", _own_children_cpu):
        k = packager_seconds({plan.name: work / f"{plan.name}.mp4" for plan in plans}, work / "package")
    del direct
    ingest_commands(source)
    with phase("cloud job again, after the direct commands", cloud.cpu_seconds) as again_phase:
        again_id, uploaded_again = upload(client, source)
        wait_final(cloud, client, [again_id])
        p_again = completed_at(cloud.record(again_id)) - uploaded_again
        again_phase.wall = time.time() - uploaded_again
    p_first, p = p, (p + p_again) / 2

    print("\n  where P goes (s after the end of the upload):")
    for at, what in timeline(cloud, job_id, uploaded):
        print(f"    {at:8.3f}  {what[:150]}")
    print("\n  P broken down:")
    for what, seconds in breakdown(cloud, job_id, uploaded, [p.name for p in plans]):
        print(f"    {what:<62}{seconds:8.3f} s")
    both = f"mean of {p_first:.2f} before E and {p_again:.2f} after"
    print(f"\n  P  upload end -> COMPLETED                {p:8.2f} s   ({both})")
    print(f"  E  transcoder commands in parallel        {e:8.2f} s")
    print(f"  S  one ffmpeg, split to both outputs      {s:8.2f} s")
    print(f"  K  packager commands (sequential)         {k:8.2f} s")
    print(f"  P / E        {p / e:6.3f}   (target <= 1.03)")
    print(f"  P / S        {p / s:6.3f}   (target <= 1.10)")
    print(f"  P / (E + K)  {p / (e + k):6.3f}")
    print(f"  P / (S + K)  {p / (s + k):6.3f}", flush=True)


def print_breakdowns(cloud: Cloud, started: Sequence[tuple[str, float]], renditions: Sequence[str]) -> None:
    print("\n  each job's P broken down (s; columns in upload order):")
    tables = [breakdown(cloud, job_id, at, renditions) for job_id, at in started]
    for row, (what, _) in enumerate(tables[0]):
        print(f"    {what:<62}" + "".join(f"{table[row][1]:8.2f}" for table in tables))


def measure_throughput(
    cloud: Cloud, client: ApiClient, source: Path, work: Path, *, jobs: int, parallel: int, cloud_parallel: int
) -> None:
    print(f"\n== throughput: {jobs} concurrent jobs of a {source.stat().st_size / 1e6:.1f} MB source", flush=True)
    invoked_before, parts_before = cloud.invocations(), cloud.cpu_parts()
    with phase("cloud, concurrent jobs", cloud.cpu_seconds) as cloud_phase:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            started = list(pool.map(lambda _: upload(client, source), range(jobs)))
        ids = [job_id for job_id, _ in started]
        first_uploaded = min(at for _, at in started)
        wait_final(cloud, client, ids)
        records = {job_id: cloud.record(job_id) for job_id in ids}
        last = max(completed_at(r) for r in records.values())
        cloud_seconds = last - first_uploaded
        cloud_phase.wall = time.time() - first_uploaded
    cloud_cpu = cloud_phase.cpu
    cloud.print_cpu_parts(parts_before)
    cloud.print_invocations(invoked_before)
    record = records[ids[0]]
    plans, probe = plans_of(record), probe_of(record)
    logged = cloud.transcode_commands(ids[0])
    binary = next(iter(logged.values()))[0] if logged else ffmpeg_path()
    folders = [work / f"job{n}" for n in range(jobs)]
    per_job = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        per_job.append(commands(binary, source, folder, plans, probe))
    with phase(f"the same {sum(map(len, per_job))} encodes, {parallel} at a time", _own_children_cpu) as direct:
        direct_seconds = run_pool(per_job, None, parallel)
    direct_cpu = direct.cpu
    oversubscribed, oversubscribed_cpu = None, 0.0
    if cloud_parallel and cloud_parallel != parallel:
        # What the local cloud runs at once: `concurrency` workers of each rendition's function, each ffmpeg with
        # -threads = the CPUs. The same encodes at that width tell the schedule's cost from the pipeline's.
        with phase(f"the same encodes, {cloud_parallel} at a time (as the cloud runs them)", _own_children_cpu) as wide:
            oversubscribed = run_pool(per_job, None, cloud_parallel)
        oversubscribed_cpu = wide.cpu

    def package(folder: Path) -> Callable[[], None]:
        def run() -> None:
            packager_seconds({plan.name: folder / f"{plan.name}.mp4" for plan in plans}, folder / "package")

        return run

    with phase(f"the same encodes + each job's packager commands, {parallel} at a time", _own_children_cpu) as both:
        with_packager = run_pool(per_job, [package(f) for f in folders], parallel)
    with_packager_cpu = both.cpu

    print_breakdowns(cloud, started, [p.name for p in plans])
    seconds = sorted(completed_at(r) - first_uploaded for r in records.values())
    print(f"\n  jobs COMPLETED at (s after the first upload ended): {', '.join(f'{s:.1f}' for s in seconds)}")
    print(f"  cloud: {jobs} jobs                                 {cloud_seconds:8.2f} s   {cloud_cpu:8.1f} CPU s")
    print(
        f"  direct: {sum(map(len, per_job))} encodes, {parallel} at a time               "
        f"{direct_seconds:8.2f} s   {direct_cpu:8.1f} CPU s"
    )
    print(
        f"  direct: encodes + packager commands, {parallel} at a time  "
        f"{with_packager:8.2f} s   {with_packager_cpu:8.1f} CPU s"
    )
    if oversubscribed is not None:
        print(
            f"  direct: encodes, {cloud_parallel} at a time (the cloud's width)  "
            f"{oversubscribed:8.2f} s   {oversubscribed_cpu:8.1f} CPU s"
        )
        print(
            f"  {parallel} at a time / {cloud_parallel} at a time              {direct_seconds / oversubscribed:6.3f}"
        )
    print(f"  efficiency, encodes only             {direct_seconds / cloud_seconds:6.3f}   (target >= 0.92)")
    print(f"  efficiency, encodes + packager       {with_packager / cloud_seconds:6.3f}")
    print(f"  CPU efficiency, encodes only         {direct_cpu / cloud_cpu:6.3f}")
    print(f"  CPU efficiency, encodes + packager   {with_packager_cpu / cloud_cpu:6.3f}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the single job's 1080p30 clip")
    parser.add_argument("--jobs", type=int, default=4, help="concurrent jobs of the throughput run (0: skip it)")
    parser.add_argument("--job-seconds", type=float, default=12.0, help="length of each throughput job's clip")
    parser.add_argument("--parallel", type=int, default=len(os.sched_getaffinity(0)), help="direct encodes at once")
    parser.add_argument(
        "--cloud-parallel",
        type=int,
        default=0,
        help="also run the direct encodes this many at a time (what the cloud runs at once; 0: skip)",
    )
    parser.add_argument("--concurrency", type=int, help="the local cloud's worker processes per function (`up`'s)")
    parser.add_argument("--no-warm-up", action="store_true", help="measure the first job on cold workers")
    parser.add_argument("--keep", type=Path, help="keep the cloud's state directory and the files here")
    args = parser.parse_args(argv)
    if not 0 <= args.jobs <= 20:
        parser.error("--jobs must be 0 to 20")

    root = Path(tempfile.mkdtemp(prefix="pipeline-overhead-")) if args.keep is None else args.keep
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {os.cpu_count()} CPUs; "
        f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())}; files in {root}",
        flush=True,
    )
    media = root / "media"
    media.mkdir(exist_ok=True)
    source = make_source(media / "source.mp4", args.seconds)
    short = make_source(media / "short.mp4", args.job_seconds) if args.jobs else None
    warm = make_source(media / "warm.mp4", WARM_UP_SECONDS) if not args.no_warm_up else None

    started = time.perf_counter()
    cloud = Cloud.start(root / "state", args.concurrency)
    print(f"local cloud up in {time.perf_counter() - started:.1f} s (dev stack, engine lambda, 720p + 1080p)")
    try:
        client = cloud.client("bench")
        if warm is not None:
            # As many warm-up jobs at once as the throughput run keeps each function busy with (its `concurrency`
            # workers), so that neither measurement pays a worker's cold start.
            count = max(1, min(args.jobs, args.concurrency or DEFAULT_CONCURRENCY))
            with ThreadPoolExecutor(max_workers=count) as pool:
                warm_ups = list(pool.map(lambda _: upload(client, warm), range(count)))
            wait_final(cloud, client, [job_id for job_id, _ in warm_ups])
            p = max(completed_at(cloud.record(job_id)) - uploaded for job_id, uploaded in warm_ups)
            print(f"warm-up: {count} job(s) at once ({WARM_UP_SECONDS:g} s clip, cold workers): P {p:.2f} s")
        with phase("idle cloud, 10 s", cloud.cpu_seconds) as idle:
            time.sleep(10)
        print(f"idle cloud: {idle.cpu / idle.wall:.3f} CPU s per s")
        measure_single(cloud, client, source, root / "single")
        if short is not None:
            measure_throughput(
                cloud,
                client,
                short,
                root / "throughput",
                jobs=args.jobs,
                parallel=args.parallel,
                cloud_parallel=args.cloud_parallel,
            )
    finally:
        cloud.stop()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nload at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
