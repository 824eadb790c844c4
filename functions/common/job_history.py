"""A job's history: one entry per write, what changed, when and by which function (docs/CONTRACTS.md "Job history").

Every change to a job goes through `JobsTable.change`, which appends the entry in the same conditional write, so the
history can neither miss a change nor record one that lost its race. It lives in the item beside the record
(`history`), not in `JobRecord`: no function decides anything from it; the operator CLI (`python -m local ops history`)
reads it. It is bounded: progress reports fold into the entry before them when that one was progress too, and only the
newest `MAX_ENTRIES` are kept, so a long job never grows the item towards DynamoDB's 400 KB.
"""

from __future__ import annotations

from typing import Any

from functions.contracts.jobs import JobRecord

HISTORY_ATTRIBUTE = "history"
MAX_ENTRIES = 100
PROGRESS = "progress"


def describe_change(before: JobRecord, after: JobRecord) -> list[str]:
    """What a write changed, in words an operator reads: status, attempt, renditions, playback, bookkeeping."""
    changes: list[str] = []
    if after.attempt != before.attempt:
        mode = after.rerun.mode.value if after.rerun else "re-run"
        changes.append(f"attempt {after.attempt} ({mode})")
    if after.status != before.status:
        changes.append(f"status {before.status.value} -> {after.status.value}")
    if after.error is not None and after.error != before.error:
        changes.append(f"error {after.error.code}: {after.error.message}")
    if after.deletion is not None and before.deletion is None:
        changes.append("deletion asked for" + (" (it was running: canceled)" if after.deletion.canceled else ""))
    for name, rendition in after.renditions.items():
        previous = before.renditions.get(name)
        if previous is None or previous.status != rendition.status:
            reason = f" ({rendition.error.code})" if rendition.error and rendition.status == "FAILED" else ""
            changes.append(f"{name} {rendition.status.value}{reason}")
        elif previous.progress != rendition.progress:
            changes.append(f"{PROGRESS} {name} {rendition.progress}%")
    if after.mediaconvert is not None and before.mediaconvert is None:
        changes.append(f"MediaConvert job {after.mediaconvert.jobId} submitted")
    before_playback = before.playback.status.value if before.playback else None
    after_playback = after.playback.status.value if after.playback else None
    if after_playback != before_playback and after_playback is not None:
        changes.append(f"playback {after_playback}")
    published_before = before.playback.requestPublishedAt if before.playback else None
    if after.playback and after.playback.requestPublishedAt and not published_before:
        changes.append("Packaging Requested put on the bus")
    if after.outcomeAnnouncedAt and not before.outcomeAnnouncedAt:
        changes.append(f"outcome {after.status.value} announced")
    for key, failure in (after.webhookFailures or {}).items():
        if (before.webhookFailures or {}).get(key) != failure:
            changes.append(f"webhook {failure.eventType} to {failure.endpointId} gave up after {failure.attempts}")
    return changes or ["record rewritten"]


def history_entry(before: JobRecord, after: JobRecord, *, at: int, by: str) -> dict[str, Any]:
    changes = describe_change(before, after)
    return {"at": at, "by": by, "version": after.version, "status": after.status.value, "changes": changes}


def appended(history: list[Any], entry: dict[str, Any]) -> list[Any]:
    """The history with the entry: folded into the last one when both only report progress; the newest kept."""
    entries = list(history)
    if entries and _progress_only(entries[-1]) and _progress_only(entry):
        entry = {**entry, "changes": _merged_progress(entries[-1]["changes"], entry["changes"])}
        entries = entries[:-1]
    return [*entries, entry][-MAX_ENTRIES:]


def _progress_only(entry: Any) -> bool:
    changes = entry.get("changes") if isinstance(entry, dict) else None
    return bool(changes) and all(str(change).startswith(f"{PROGRESS} ") for change in changes)


def _merged_progress(earlier: list[str], later: list[str]) -> list[str]:
    """One line per rendition, its latest percentage."""
    latest = {change.rsplit(" ", 1)[0]: change for change in [*earlier, *later]}
    return list(latest.values())
