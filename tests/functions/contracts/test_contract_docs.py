"""docs/CONTRACTS.md and functions/contracts/ describe the same shapes: every field named in one is in the other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from functions.contracts import events, fanout, jobs, playback

CONTRACTS = (Path(__file__).resolve().parents[3] / "docs" / "CONTRACTS.md").read_text()


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}.*?\n(.*?)(?=^## )", CONTRACTS, re.M | re.S)
    assert match, f"docs/CONTRACTS.md has no section {title!r}"
    return match.group(1)


def braced(text: str) -> str:
    """The text inside the first balanced `{...}` of `text`."""
    start = text.index("{")
    depth = 0
    for position in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[start + 1 : position]
    raise AssertionError(f"unbalanced braces in {text!r}")


def top_level_names(listing: str) -> set[str]:
    """Names of a documented `{a, b (note), "c": {...}, d|null}` listing, without what is nested deeper."""
    names, depth, item = set(), 0, ""
    for char in listing + ",":
        if char in "{[(":
            depth += 1
        elif char in "}])":
            depth -= 1
        elif char == "," and depth == 0:
            match = re.match(r'\s*"?([A-Za-z]\w*)', item)
            if match:
                names.add(match.group(1))
            item = ""
            continue
        if depth == 0:
            item += char
    return names


def wire_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def documented_fields(text: str) -> dict[str, str]:
    """Backticked `name` or `name {...}` spans of a section: name -> what is inside the braces ('' when none)."""
    fields: dict[str, str] = {}
    for span in re.findall(r"`([^`]+)`", text):
        match = re.fullmatch(r"([a-z][A-Za-z]*)(\s*\{.*\})?", span.strip(), re.S)
        if match:
            fields.setdefault(match.group(1), braced(match.group(2)) if match.group(2) else "")
    return fields


JOB_RECORD = documented_fields(section("Job record").split("GSIs:")[0])


def test_the_job_record_names_every_field_of_the_model_and_nothing_else() -> None:
    assert set(JOB_RECORD) == set(jobs.JobRecord.model_fields)


@pytest.mark.parametrize(
    ("field", "model"),
    [
        ("source", jobs.JobSource),
        ("error", jobs.ErrorInfo),
        ("hls", jobs.ObjectLocation),
        ("mediaconvert", jobs.MediaConvertSubmission),
        ("playback", jobs.PlaybackRecord),
    ],
)
def test_nested_parts_of_the_job_record_match_their_models(field: str, model: type[BaseModel]) -> None:
    assert top_level_names(JOB_RECORD[field]) == set(model.model_fields)


def test_renditions_and_webhook_failures_match_their_models() -> None:
    assert top_level_names(braced(JOB_RECORD["renditions"])) == set(jobs.RenditionRecord.model_fields)
    assert top_level_names(braced(JOB_RECORD["webhookFailures"].split(":", 1)[1])) == set(
        jobs.WebhookFailureEntry.model_fields
    )


def test_the_probe_section_matches_the_probe_model() -> None:
    assert top_level_names(braced(section("Probe"))) == set(jobs.Probe.model_fields)


def test_the_fan_out_body_matches_the_message_model() -> None:
    body = section("Fan-out message").split("Body (JSON):", 1)[1]
    assert top_level_names(braced(body)) == set(fanout.FanOutMessage.model_fields)
    source = braced(body[body.index('"source"') :])
    assert top_level_names(source) == set(fanout.SourceObject.model_fields)
    renditions = braced(body[body.index('"renditions"') :])
    assert top_level_names(renditions) == set(fanout.PlannedRendition.model_fields)


@pytest.mark.parametrize(
    ("detail_type", "model"),
    [
        (events.DetailType.RENDITION_PROGRESS, events.RenditionProgress),
        (events.DetailType.RENDITION_COMPLETED, events.RenditionCompleted),
        (events.DetailType.RENDITION_FAILED, events.RenditionFailed),
        (events.DetailType.JOB_ACCEPTED, events.JobAccepted),
        (events.DetailType.PACKAGING_REQUESTED, events.PackagingRequested),
        (events.DetailType.PACKAGING_COMPLETED, events.PackagingCompleted),
        (events.DetailType.PACKAGING_FAILED, events.PackagingFailed),
    ],
)
def test_each_event_detail_matches_its_model(detail_type: str, model: type[BaseModel]) -> None:
    assert top_level_names(braced(event_detail(detail_type))) == wire_names(model)


def event_detail(detail_type: str) -> str:
    """The documented detail of an event: `- `{detail type}` `{...}``."""
    line = re.search(rf"^- `{re.escape(detail_type)}` `(\{{.*?\}})`", section("Events"), re.M)
    assert line, f"docs/CONTRACTS.md does not document {detail_type}"
    return line.group(1)


def test_the_packaging_request_lists_renditions_as_the_packager_reads_them() -> None:
    detail = event_detail(events.DetailType.PACKAGING_REQUESTED)
    assert top_level_names(braced(detail[detail.index("renditions") :])) == set(playback.PackagingSource.model_fields)


def test_every_detail_type_the_tracker_applies_is_documented_as_its_rule_matches() -> None:
    rule = section("Events").split("The tracker's rule matches", 1)[1].split(";", 1)[0]
    for detail_type in events.TRACKED_DETAIL_TYPES:
        assert detail_type in rule or detail_type.startswith("Rendition"), detail_type
        event_detail(detail_type)


@pytest.mark.parametrize(
    "model",
    [
        playback.PlaybackPackage,
        playback.HlsVariant,
        playback.Poster,
        playback.Thumbnails,
        playback.PackagingSource,
    ],
)
def test_the_playback_section_matches_the_package_models(model: type[BaseModel]) -> None:
    line = re.search(rf"^- `{model.__name__}` `(\{{.*?\}})`", section("Playback"), re.M | re.S)
    assert line, f"docs/CONTRACTS.md does not document {model.__name__}"
    assert top_level_names(braced(line.group(1))) == set(model.model_fields)


def test_the_playback_layout_is_the_one_the_contract_module_declares() -> None:
    layout = section("Playback")
    documented = re.findall(r"^    (\S+)\s{2,}", layout, re.M)
    assert documented == re.findall(r"^    (\S+)\s{2,}", playback.__doc__ or "", re.M)
    for name in (playback.MASTER_PLAYLIST, playback.POSTER, playback.SPRITE, playback.THUMBNAILS_VTT):
        assert name in documented


def test_the_job_outcome_detail_matches_its_model() -> None:
    line = re.search(r"`JobOutcome\.of\(job\)` `(\{.*?\}\}\})`", section("Events"), re.S)
    assert line, "docs/CONTRACTS.md does not document the job outcome detail"
    outcome = braced(line.group(1))
    assert top_level_names(outcome) == wire_names(events.JobOutcome)
    assert top_level_names(braced(braced(outcome[outcome.index("renditions") :]))) == wire_names(
        events.OutcomeRendition
    )
