"""A job's history: every conditional write leaves one entry saying what changed, by which function; progress folds."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from functions.common import job_state
from functions.common.job_history import MAX_ENTRIES, appended, describe_change
from functions.common.jobs_table import JobsTable
from functions.contracts.jobs import JobSource, RerunMode
from tests.functions.conftest import create_jobs_table

NOW = 1_795_000_000_000
PLAN = [{"name": "240p", "status": "QUEUED", "height": 240}, {"name": "360p", "status": "QUEUED", "height": 360}]


def awaiting() -> Any:
    return job_state.new_job(
        job_id="J",
        owner_id="o",
        source=JobSource(bucket="up", key="uploads/J/source"),
        now=NOW,
        upload_deadline=NOW + 1000,
        retention_seconds=60,
    )


@pytest.fixture
def table(aws: None, monkeypatch: pytest.MonkeyPatch) -> JobsTable:
    create_jobs_table()
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tracker")
    jobs = JobsTable("jobs")
    jobs.create(awaiting())
    return jobs


def history(table: JobsTable) -> list[dict[str, Any]]:
    return table._read("J")[1]


def test_every_write_leaves_an_entry_naming_its_writer_version_and_changes(table: JobsTable) -> None:
    table.change("J", partial(job_state.begin_validation, now=NOW + 1, deadline=NOW + 9000))
    begin = partial(job_state.begin_processing, media_type="video", engine="lambda", probe={"durationMs": 1})
    table.change("J", partial(begin, planned=PLAN, now=NOW + 2))
    table.change("J", partial(job_state.fail_rendition, name="360p", code="TRANSCODE_FAILED", message="x", now=NOW + 3))

    entries = history(table)

    assert [(e["by"], e["version"], e["status"]) for e in entries] == [
        ("tracker", 1, "VALIDATING"),
        ("tracker", 2, "PROCESSING"),
        ("tracker", 3, "PROCESSING"),
    ]
    assert entries[0]["changes"] == ["status AWAITING_UPLOAD -> VALIDATING"]
    assert entries[1]["changes"] == ["status VALIDATING -> PROCESSING", "240p QUEUED", "360p QUEUED"]
    assert entries[2]["changes"] == ["360p FAILED (TRANSCODE_FAILED)"]
    assert all(isinstance(e["at"], int) for e in entries)
    assert table.get("J").status == "PROCESSING"  # the record itself reads as before


def test_a_no_op_leaves_no_entry(table: JobsTable) -> None:
    table.change("J", partial(job_state.begin_rerun, mode=RerunMode.RETRY, now=NOW, deadline=NOW))  # not FAILED

    assert history(table) == []


def test_progress_folds_into_one_entry_per_rendition_and_the_history_is_bounded() -> None:
    entries: list[Any] = []
    for percent in (10, 20, 30):
        entries = appended(entries, {"changes": [f"progress 240p {percent}%"]})
    entries = appended(entries, {"changes": ["progress 360p 5%"]})
    assert entries == [{"changes": ["progress 240p 30%", "progress 360p 5%"]}]
    entries = appended(entries, {"changes": ["240p COMPLETED"]})
    assert len(entries) == 2
    for index in range(MAX_ENTRIES * 2):
        entries = appended(entries, {"changes": [f"change {index}"]})
    assert len(entries) == MAX_ENTRIES and entries[-1] == {"changes": [f"change {MAX_ENTRIES * 2 - 1}"]}


def test_a_deletion_and_a_rerun_are_described() -> None:
    job = awaiting()
    deleted = job_state.request_deletion(job, now=NOW)
    assert deleted is not None
    assert describe_change(job, deleted) == [
        "status AWAITING_UPLOAD -> CANCELED",
        "deletion asked for (it was running: canceled)",
    ]
