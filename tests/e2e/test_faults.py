"""The pipeline under injected faults (tests/e2e/faults.py): batches of 30 one-second videos, each batch under one
fault, and one under all of them at once, in one local cloud started through `tests.e2e.faulty_cloud`.

Each batch ends with every job final, no duplicate outputs, at most one webhook per event and endpoint, and every
failed job carrying its reason. Faults are scoped to each batch's job IDs, so batches run two at a time; the restart
batch and the all-faults batch run together while the cloud is stopped and started again. The summary lines are
printed and written to `build/fault-proof.txt`, which the README quotes.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local.cli.client import FINAL_STATUSES, ApiClient, ApiError, post_form, start_cloud_process
from local.cli.receiver import WebhookReceiver, listen_and_register
from local.cloud import free_port
from tests.e2e.conftest import REPO, RunningCloud, stop_cloud, wait_for
from tests.e2e.faults import FaultPlan, read_injected, save_faults
from tests.media_samples import make_video

pytestmark = pytest.mark.e2e

FAULTS_LAYER = Path(__file__).resolve().parent / "Pulumi.faults.yaml"
PROOF_FILE = REPO / "build" / "fault-proof.txt"
BATCH_SIZE = 30
UPLOAD_THREADS = 6
UPLOAD_ATTEMPTS = 3
# Workers per function (the local cloud's default is 2): the tracker and the webhooks function wait on I/O, and
# duplicated events double their work.
CONCURRENCY = 4
# Generous: the jobs of a batch whose message was dead-lettered wait for the layer's processing deadline (120 s)
# and the sweep; nothing here is a deadline for the pipeline.
SETTLE_TIMEOUT_SECONDS = 1800  # a loaded CI machine (another cloud beside it) needed more than 900 s once
# The restart is an operator's Ctrl-C, which saves the cloud's data once every worker has stopped: it is waited for. A
# cloud killed instead restarts from its last periodic snapshot, a few seconds older, and delivers again what it
# delivered since (webhooks included), which a crash may do but a stop must not.
RESTART_STOP_TIMEOUT_SECONDS = 600
WEBHOOK_EVENT_BY_STATUS = {
    "COMPLETED": "job.completed",
    "FAILED": "job.failed",
    "REJECTED": "job.rejected",
    "EXPIRED": "job.expired",
}
FUNCTIONS = ("ingest", "transcode", "packager", "tracker", "webhooks")
# Not the webhooks function: killed mid-attempt, it leaves its claim SENDING, and the redelivered task waits out the
# claim's lease (CLAIM_LEASE_MS, 90 s) before it takes the claim over: never lost (tests/functions/webhooks), but
# minutes added to every batch.
KILLABLE = ("ingest", "transcode", "packager", "tracker")
SHARE = 0.1
SINGLE_FAULTS = [
    FaultPlan(name="throw", seed=11, throw=dict.fromkeys(FUNCTIONS, SHARE)),
    FaultPlan(name="crash", seed=12, crash=dict.fromkeys(KILLABLE, SHARE)),
    FaultPlan(name="timeout", seed=13, timeout=dict.fromkeys(KILLABLE, SHARE)),
    FaultPlan(name="kill-encode", seed=14, kill_encode=0.3),
    FaultPlan(name="duplicate", seed=15, duplicate=0.5),
    FaultPlan(name="reorder", seed=16, reorder=0.5),
]
RESTART = FaultPlan(name="restart", seed=17)
ALL_FAULTS = FaultPlan(
    name="all",
    seed=18,
    throw=dict.fromkeys(FUNCTIONS, 0.05),
    crash=dict.fromkeys(KILLABLE, 0.05),
    timeout=dict.fromkeys(KILLABLE, 0.05),
    kill_encode=0.1,
    duplicate=0.3,
    reorder=0.3,
)
ALL_PLANS = [*SINGLE_FAULTS, RESTART, ALL_FAULTS]
# Two batches side by side per round: a round's 60 jobs finish well within the layer's processing deadline.
ROUNDS = [SINGLE_FAULTS[i : i + 2] for i in range(0, len(SINGLE_FAULTS), 2)] + [[RESTART, ALL_FAULTS]]


@dataclass
class FaultyCloud:
    """The local cloud run by the fault launcher, restartable on its state directory and port."""

    state_dir: Path
    port: int
    running: RunningCloud | None = None

    def start(self) -> RunningCloud:
        arguments = ["--port", str(self.port), "--config-file", str(FAULTS_LAYER), "--concurrency", str(CONCURRENCY)]
        started = start_cloud_process(self.state_dir, arguments, launcher="tests.e2e.faulty_cloud", cwd=REPO)
        self.running = RunningCloud(started.process, started.state_dir, started.outputs, started.deployment)
        return self.running

    def restart(self) -> RunningCloud:
        assert self.running is not None
        stopping = time.monotonic()
        stop_cloud(self.running.process, RESTART_STOP_TIMEOUT_SECONDS)
        assert self.running.process.returncode == 0, f"the cloud's stop ended with {self.running.process.returncode}"
        print(f"restart: stopped in {time.monotonic() - stopping:.0f} s", flush=True)
        return self.start()

    @property
    def cloud(self) -> RunningCloud:
        assert self.running is not None
        return self.running


@pytest.fixture(scope="module")
def faulty_cloud(tmp_path_factory: pytest.TempPathFactory) -> Any:
    holder = FaultyCloud(tmp_path_factory.mktemp("faulty-cloud"), free_port())
    holder.start()
    yield holder
    if holder.running is not None:
        stop_cloud(holder.running.process)


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("faults-media") / "tiny.mp4", width=160, height=90, seconds=1.0)


@dataclass
class Batch:
    """One batch's jobs, its owner's verifying webhook receiver, and what the cloud made of it."""

    plan: FaultPlan
    client: ApiClient
    receiver: WebhookReceiver
    job_ids: list[str] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unanswered: str = ""  # the last read the API did not answer with a job, for the message of a batch that hangs


def open_batch(cloud: RunningCloud, plan: FaultPlan) -> Batch:
    client = cloud.client(f"faults-{plan.name}")
    return Batch(plan=plan, client=client, receiver=listen_and_register(client))


def submit(batches: list[Batch], source: Path, state_dir: Path, plans: list[FaultPlan], jobs: dict[str, str]) -> None:
    """Creates every batch's uploads, lists the jobs under their plans for the injector, then sends the files."""

    def create(batch: Batch) -> dict[str, Any]:
        for _ in range(UPLOAD_ATTEMPTS - 1):
            try:
                return batch.client.create_upload(source, "video/mp4")
            except ApiError as err:  # a loaded machine can time the API out (503): a client tries again
                if err.status < 500:
                    raise
            except TimeoutError:  # or not answer within the client's timeout: the job it may have made is ignored
                continue
        return batch.client.create_upload(source, "video/mp4")

    def send(form: dict[str, Any]) -> int:
        return post_form(form["url"], form["fields"], source)

    forms: list[dict[str, Any]] = []
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        for batch in batches:
            created = list(pool.map(create, [batch] * BATCH_SIZE))
            batch.job_ids += [c["jobId"] for c in created]
            jobs.update(dict.fromkeys(batch.job_ids, batch.plan.name))
            forms += [c["upload"] for c in created]
        save_faults(state_dir, plans, jobs)
        assert all(status in (200, 201, 204) for status in pool.map(send, forms))


def read_jobs(batch: Batch) -> dict[str, dict[str, Any]] | None:
    """The batch's jobs, from one `GET /jobs` of its owner; None when the API answers 5xx (a loaded machine can time
    the api function out) or does not answer at all (the restart fault has the cloud down for a while), so the caller
    asks again."""
    try:
        return _read_jobs(batch)
    except OSError as err:  # urllib's URLError included: connection refused while the cloud restarts
        batch.unanswered = f"no answer: {err}"
        return None


def _read_jobs(batch: Batch) -> dict[str, dict[str, Any]] | None:
    response = batch.client.call("GET", f"jobs?limit={BATCH_SIZE}")
    if response.status >= 500:
        batch.unanswered = f"GET /jobs: {response.status} {response.body}"
        return None
    assert response.status == 200, response.body
    by_id = {job["jobId"]: job for job in response.body["jobs"]}
    # A job missing from the page (an upload retried after a 503 may have made one more) is read on its own.
    for job_id in set(batch.job_ids) - set(by_id):
        single = batch.client.call("GET", f"jobs/{job_id}")
        if single.status != 200:  # a 5xx, or the cloud still restoring its state after the restart fault: ask again
            batch.unanswered = f"GET /jobs/{job_id}: {single.status} {single.body}"
            return None
        by_id[job_id] = single.body
    return {job_id: by_id[job_id] for job_id in batch.job_ids}


def final_count(batches: list[Batch]) -> int:
    """How many of the batches' jobs are final (their views kept in `batch.jobs`); -1 when the API did not answer."""
    for batch in batches:
        jobs = read_jobs(batch)
        if jobs is None:
            return -1
        batch.jobs = jobs
    return sum(job["status"] in FINAL_STATUSES for batch in batches for job in batch.jobs.values())


def all_final(batches: list[Batch]) -> bool:
    return final_count(batches) == BATCH_SIZE * len(batches)


def pending_work(cloud: RunningCloud) -> int:
    """Messages still queued, in flight or delayed anywhere but in a dead-letter queue or a schedule's delivery queue
    (work queues, and the local delivery queues of EventBridge rules): once 0 with every job final, nothing more can
    arrive at a receiver."""
    sqs = cloud.emulator().client("sqs")
    dead_letter_names = {arn.rsplit(":", 1)[1] for arn in cloud.deployment["deadLetterArns"]}
    # A schedule rule's delivery queue is named after the rule (local/engine/resources.py); the sweep fires forever.
    schedule_labels = [f"-rule-{rule}-" for rule in cloud.workers()["schedules"]]
    total = 0
    for url in sqs.list_queues().get("QueueUrls", []):
        name = url.rsplit("/", 1)[1]
        if name in dead_letter_names or any(label in name for label in schedule_labels):
            continue
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        names.append("ApproximateNumberOfMessagesDelayed")
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        total += sum(int(attributes.get(name, 0)) for name in names)
    return total


def output_keys(cloud: RunningCloud, job_id: str) -> list[str]:
    """The job's objects under outputs/{jobId}/, relative to that prefix."""
    s3 = cloud.emulator().client("s3")
    prefix = f"outputs/{job_id}/"
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=cloud.outputs["outputsBucket"], Prefix=prefix):
        keys += [item["Key"].removeprefix(prefix) for item in page.get("Contents", [])]
    return keys


def tally(batch: Batch, cloud: RunningCloud, expected_outputs: set[str]) -> dict[str, int]:
    """submitted / completed / failed / lost / duplicated, with the reason of every lost or duplicated one noted."""
    lost = duplicated = 0
    deliveries = [d for d in batch.receiver.deliveries if d.valid]
    per_webhook = Counter(d.webhook_id for d in deliveries)
    events_per_job: dict[str, set[str]] = {}
    for delivery in deliveries:
        events_per_job.setdefault(str(delivery.data.get("jobId")), set()).add(str(delivery.event_type))
    for job_id, job in batch.jobs.items():
        status = job["status"]
        if status not in FINAL_STATUSES:
            lost += 1
            batch.problems.append(f"{job_id}: still {status}")
            continue
        if status != "COMPLETED" and not ((job.get("error") or {}).get("code") and job["error"].get("message")):
            lost += 1
            batch.problems.append(f"{job_id}: {status} without a reason: {job.get('error')}")
        if status == "COMPLETED":
            keys = set(output_keys(cloud, job_id))
            missing, extra = expected_outputs - keys, keys - expected_outputs
            if missing:
                lost += 1
                batch.problems.append(f"{job_id}: outputs missing {sorted(missing)}")
            if extra:
                duplicated += 1
                batch.problems.append(f"{job_id}: outputs beyond the expected set: {sorted(extra)}")
        events = events_per_job.get(job_id, set())
        if WEBHOOK_EVENT_BY_STATUS[status] not in events:
            lost += 1
            batch.problems.append(f"{job_id}: no {WEBHOOK_EVENT_BY_STATUS[status]} webhook (got {sorted(events)})")
        if len(events) > 1:
            duplicated += 1
            batch.problems.append(f"{job_id}: webhooks of {sorted(events)}")
    for webhook_id, count in per_webhook.items():
        if count > 1:
            duplicated += 1
            batch.problems.append(f"{webhook_id}: delivered {count} times to {batch.receiver.endpoint_id}")
    statuses = Counter(job["status"] for job in batch.jobs.values())
    return {
        "submitted": len(batch.job_ids),
        "completed": statuses["COMPLETED"],
        "failed": sum(statuses[s] for s in ("FAILED", "REJECTED", "EXPIRED")),
        "lost": lost,
        "duplicated": duplicated,
    }


def unsettled(batches: list[Batch]) -> str:
    """What keeps a round from settling: the jobs not final yet (as last read) and the last unanswered read."""
    lines = [
        f"{batch.plan.name} {job_id}: {job['status']} "
        + ", ".join(f"{rendition.get('name')}={rendition.get('status')}" for rendition in job.get("renditions") or [])
        for batch in batches
        for job_id, job in batch.jobs.items()
        if job["status"] not in FINAL_STATUSES
    ]
    lines += [f"{batch.plan.name} last unanswered read: {batch.unanswered}" for batch in batches if batch.unanswered]
    return "\n".join(lines)


def settle(batches: list[Batch], cloud_holder: FaultyCloud) -> None:
    """Waits for every job to be final and every queue but the DLQs to be empty: nothing more will happen."""
    try:
        wait_for(lambda: all_final(batches), SETTLE_TIMEOUT_SECONDS, interval=1.0, message="every job to be final")
    except pytest.fail.Exception as failed:
        pytest.fail(f"{failed}\n{unsettled(batches)}")
    wait_for(lambda: pending_work(cloud_holder.cloud) == 0, SETTLE_TIMEOUT_SECONDS, interval=1.0, message="idle queues")


def reference_outputs(cloud: RunningCloud, source: Path) -> set[str]:
    """What one job of the source makes with no fault at all: the expected output keys of every completed job."""
    client = cloud.client("faults-reference")
    created = client.create_upload(source, "video/mp4")
    assert post_form(created["upload"]["url"], created["upload"]["fields"], source) in (200, 201, 204)
    response = wait_for(
        lambda: (
            (r := client.call("GET", f"jobs/{created['jobId']}")).status == 200
            and r.body["status"] in FINAL_STATUSES
            and r
        ),
        SETTLE_TIMEOUT_SECONDS,
        interval=0.5,
        message="the reference job to be final",
    )
    assert response.body["status"] == "COMPLETED", response.body
    return set(output_keys(cloud, created["jobId"]))


def summary_line(plan: FaultPlan, numbers: dict[str, int]) -> str:
    return f"faults={plan.name} " + " ".join(f"{name}={value}" for name, value in numbers.items())


def failure_reasons(batch: Batch) -> str:
    """Why the batch's failed jobs failed, by error code, with one message of each: a reader tells injected
    failures from a slow machine's."""
    failed = [job["error"] for job in batch.jobs.values() if job["status"] != "COMPLETED" and job.get("error")]
    codes = Counter(error.get("code") for error in failed)
    examples = {error.get("code"): error.get("message") for error in failed}
    return "; ".join(f"{code} x{count}: {examples[code]}" for code, count in codes.most_common())


def run_round(
    holder: FaultyCloud, plans: list[FaultPlan], source: Path, jobs: dict[str, str], expected_outputs: set[str]
) -> list[tuple[Batch, dict[str, int]]]:
    """Submits a batch per plan side by side and settles them; the restart plan's round restarts the cloud mid-run."""
    batches = [open_batch(holder.cloud, plan) for plan in plans]
    submit(batches, source, holder.cloud.state_dir, ALL_PLANS, jobs)
    if RESTART in plans:
        # Mid-run: as soon as the first job of the round is final, the others still on their way.
        wait_for(
            lambda: final_count(batches) > 0,
            SETTLE_TIMEOUT_SECONDS,
            interval=0.2,
            message="a job of the restart round to be final",
        )
        holder.restart()
    settle(batches, holder)
    results = [(batch, tally(batch, holder.cloud, expected_outputs)) for batch in batches]
    for batch, _ in results:
        batch.receiver.stop()
    return results


def test_every_job_ends_once_under_faults(faulty_cloud: FaultyCloud, tiny_source: Path) -> None:
    expected_outputs = reference_outputs(faulty_cloud.cloud, tiny_source)
    assert "90p.mp4" in expected_outputs
    jobs: dict[str, str] = {}
    results: list[tuple[Batch, dict[str, int]]] = []
    for plans in ROUNDS:
        started = time.monotonic()
        results += run_round(faulty_cloud, plans, tiny_source, jobs, expected_outputs)
        print(f"round {'+'.join(p.name for p in plans)}: {time.monotonic() - started:.0f} s", flush=True)

    lines = [summary_line(batch.plan, numbers) for batch, numbers in results]
    injected = Counter((entry["plan"], entry["kind"]) for entry in read_injected(faulty_cloud.cloud.state_dir))
    print("\n".join(lines))
    for batch, _ in results:
        if reasons := failure_reasons(batch):
            print(f"failed in {batch.plan.name}: {reasons}")
    print(f"injected: {dict(sorted(injected.items()))}")
    PROOF_FILE.parent.mkdir(exist_ok=True)
    PROOF_FILE.write_text("\n".join(lines) + "\n")

    problems = {batch.plan.name: batch.problems for batch, _ in results if batch.problems}
    assert all(numbers["submitted"] == BATCH_SIZE for _, numbers in results), lines
    assert all(numbers["lost"] == 0 and numbers["duplicated"] == 0 for _, numbers in results), (lines, problems)
    # Every fault was injected: no batch passed for want of its fault.
    for plan in SINGLE_FAULTS:
        assert any(name == plan.name for name, _ in injected), f"no fault injected in batch {plan.name}"
    assert {kind for name, kind in injected if name == ALL_FAULTS.name} >= {"throw", "crash", "timeout", "duplicate"}
