"""Jobs as the job gate reads them (functions/common/job_gate.py), for the tests of the functions that ask it: a job
running an attempt, which its owner then cancels or which moves on to its next attempt, each through the state
machine; and a gate that withdraws the work after a number of checks, for the services' own tests."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from functions.common import job_state
from functions.common.job_gate import WORK_WITHDRAWN_METRIC, WorkWithdrawn
from functions.common.jobs_table import JobAlreadyExists, JobsTable
from functions.contracts.jobs import JobRecord, JobSource, Probe, RerunMode

NOW = 1_795_000_000_000
JOBS_TABLE_NAME = "jobs"  # tests/functions/conftest.py's JOBS_TABLE_NAME
RUNNING_PLAN = [{"name": "720p", "status": "QUEUED", "width": 1280, "height": 720}]


def running_job(job_id: str, *, owner_id: str = "user-1") -> JobRecord:
    """A job ingest accepted: PROCESSING, its first attempt."""
    job = job_state.new_job(
        job_id=job_id, owner_id=owner_id, source=JobSource(), now=NOW, upload_deadline=NOW + 1, retention_seconds=3600
    )
    validating = job_state.begin_validation(job, now=NOW, deadline=NOW + 3_600_000)
    assert validating is not None
    processing = job_state.begin_processing(
        validating, media_type="video", engine="lambda", probe=Probe(durationMs=1000), planned=RUNNING_PLAN, now=NOW
    )
    assert processing is not None
    return processing


def ensure_running(job_id: str, *, attempt: int = 1) -> None:
    """The job of a message as ingest left it, running `attempt`, unless the table already holds it (as the test
    made it)."""
    table = JobsTable(JOBS_TABLE_NAME)
    try:
        table.create(running_job(job_id))
    except JobAlreadyExists:
        return
    while table.get(job_id).attempt < attempt:
        move_to_next_attempt(job_id)


def cancel(job_id: str) -> JobRecord:
    """`DELETE /jobs/{id}` while the job runs: CANCELED, its deletion asked for."""
    changed = JobsTable(JOBS_TABLE_NAME).change(job_id, lambda job: job_state.request_deletion(job, now=NOW))
    assert changed is not None and changed[1].status == "CANCELED"
    return changed[1]


def move_to_next_attempt(job_id: str) -> JobRecord:
    """The job fails and its owner retries it: the next attempt runs (VALIDATING until ingest plans it again)."""
    table = JobsTable(JOBS_TABLE_NAME)
    table.change(job_id, lambda job: job_state.fail_job(job, code="RENDITION_FAILED", message="failed", now=NOW))
    changed = table.change(
        job_id, lambda job: job_state.begin_rerun(job, mode=RerunMode.RETRY, now=NOW, deadline=NOW + 3_600_000)
    )
    assert changed is not None
    return changed[1]


@dataclass
class WithdrawingGate:
    """A gate that answers "still wanted" `open_checks` times, then withdraws the work; every check is recorded."""

    open_checks: int = 1_000_000
    checks: list[tuple[str, int]] = field(default_factory=list)

    def check(self, job_id: str, attempt: int) -> None:
        self.checks.append((job_id, attempt))
        if len(self.checks) > self.open_checks:
            raise WorkWithdrawn(job_id, attempt, "the job is CANCELED")


def withdrawals_reported(records: list[logging.LogRecord], output: str) -> tuple[list[str], float]:
    """What a handler reported about dropped work: the reason of every INFO "work withdrawn" log record (pytest's
    `caplog.records`), and the `WorkWithdrawn` metric's total in the EMF documents it printed (`capsys`)."""
    reasons = [
        record.reason
        for record in records
        if record.getMessage() == "work withdrawn; dropped" and record.levelno == logging.INFO
    ]
    withdrawn = 0.0
    for line in output.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        value = document.get(WORK_WITHDRAWN_METRIC) if "_aws" in document else None
        if value is not None:
            withdrawn += sum(value) if isinstance(value, list) else value
    return reasons, withdrawn
