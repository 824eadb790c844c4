"""The MediaConvert engine as the program deploys it: least privilege, the fan-out queue, routing config, and the
tracker's rule checked against real MediaConvert events with moto's EventBridge pattern matcher."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from components import patterns
from functions.common.renditions import DEFAULT_RENDITIONS
from tests.fixtures import MEDIACONVERT_FIXTURES
from tests.infra.harness import ACCOUNT, ProgramRun, run_program

QUEUE = "aws:sqs/queue:Queue"
FUNCTION = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
RULE = "aws:cloudwatch/eventRule:EventRule"
THIS_STACK = ["canceled", "complete", "error", "input-information", "progressing", "status-update"]


@pytest.fixture(scope="module")
def on_mediaconvert() -> ProgramRun:
    """A stack that sends every job to MediaConvert."""
    return run_program({"engine": "mediaconvert"})


def _service_role(run: ProgramRun) -> Any:
    return run.named(ROLE, "mediaconvert-service-role")


def _grants(run: ProgramRun, function_name: str) -> list[dict[str, Any]]:
    """The function's statements beyond its own log group and X-Ray, without their Sids."""
    statements = run.function_policy(run.named(FUNCTION, function_name))["Statement"][2:]
    return [{k: v for k, v in s.items() if k != "Sid"} for s in statements]


def test_the_service_role_is_mediaconverts_and_reads_uploads_and_writes_outputs_only(dev: ProgramRun) -> None:
    role = _service_role(dev)
    uploads = dev.named("aws:s3/bucket:Bucket", "uploads-bucket").outputs["arn"]
    outputs = dev.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["arn"]

    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "mediaconvert.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    (policy,) = [p for p in dev.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role.id]
    statements = [{k: v for k, v in s.items() if k != "Sid"} for s in json.loads(policy.inputs["policy"])["Statement"]]
    assert statements == [
        # Only the copies submit pins (uploads/{jobId}/validated), never a raw upload a reused form can replace.
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{uploads}/uploads/*/validated"]},
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [f"{outputs}/outputs/*"]},
    ]
    assert not [
        a for a in dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if a.inputs["role"] == role.id
    ]


def test_the_submit_function_may_create_jobs_in_its_queue_pass_the_role_to_mediaconvert_and_record_them(
    dev: ProgramRun,
) -> None:
    job_queue = dev.named("aws:mediaconvert/queue:Queue", "mediaconvert-jobs")
    table = dev.named("aws:dynamodb/table:Table", "jobs-table").outputs["arn"]
    bus = dev.only("aws:cloudwatch/eventBus:EventBus").outputs["arn"]
    queue = dev.named(QUEUE, "mediaconvert-queue").outputs["arn"]
    uploads = dev.named("aws:s3/bucket:Bucket", "uploads-bucket").outputs["arn"]

    assert _grants(dev, "mediaconvert-submit") == [
        {
            "Effect": "Allow",
            "Action": ["mediaconvert:CreateJob"],
            # CreateJob is authorised on the job it creates too (a required resource type), not on the queue alone.
            "Resource": [job_queue.outputs["arn"], f"arn:aws:mediaconvert:us-east-1:{ACCOUNT}:jobs/*"],
        },
        # CancelJob of the job it just created for a pipeline job canceled meanwhile: jobs only, not the queue.
        {
            "Effect": "Allow",
            "Action": ["mediaconvert:CancelJob"],
            "Resource": [f"arn:aws:mediaconvert:us-east-1:{ACCOUNT}:jobs/*"],
        },
        {
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": [_service_role(dev).outputs["arn"]],
            "Condition": {"StringEquals": {"iam:PassedToService": "mediaconvert.amazonaws.com"}},
        },
        {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": [table]},
        {"Effect": "Allow", "Action": ["events:PutEvents"], "Resource": [bus]},
        # CopyObject of the validated upload: read any upload, write only the pinned copy ingest never hears about.
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{uploads}/uploads/*"]},
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [f"{uploads}/uploads/*/validated"]},
        {
            "Effect": "Allow",
            "Action": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
            "Resource": [queue],
        },
    ]
    assert job_queue.outputs["arn"] == f"arn:aws:mediaconvert:us-east-1:{ACCOUNT}:queues/{job_queue.id}"
    assert (job_queue.inputs["pricingPlan"], job_queue.inputs["status"]) == ("ON_DEMAND", "ACTIVE")


def test_only_mediaconvert_may_be_handed_a_role(dev: ProgramRun) -> None:
    passes = [
        (function.name, statement)
        for function in dev.of_type(FUNCTION)
        for statement in dev.function_policy(function)["Statement"]
        if "iam:PassRole" in statement["Action"]
    ]
    assert [name for name, _ in passes] == ["mediaconvert-submit"]
    for _, statement in passes:
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "mediaconvert.amazonaws.com"}}


def test_the_submit_function_runs_the_zip_with_the_queue_and_role_it_submits_with(dev: ProgramRun) -> None:
    function = dev.named(FUNCTION, "mediaconvert-submit").inputs
    env = function["environment"]["variables"]

    assert (function["packageType"], function["handler"]) == ("Zip", "functions.submit.handler.handler")
    assert (
        env["MEDIACONVERT_QUEUE_ARN"] == dev.named("aws:mediaconvert/queue:Queue", "mediaconvert-jobs").outputs["arn"]
    )
    assert env["MEDIACONVERT_ROLE_ARN"] == _service_role(dev).outputs["arn"]
    assert (env["POWERTOOLS_SERVICE_NAME"], env["STACK_NAME"]) == ("submit", "dev")
    assert "AWS_ENDPOINT_URL_MEDIACONVERT" not in env  # the regional endpoint in AWS


def test_the_mediaconvert_queue_takes_every_mediaconvert_video_job_and_dead_letters(dev: ProgramRun) -> None:
    queue = dev.named(QUEUE, "mediaconvert-queue")
    dlq = dev.named(QUEUE, "mediaconvert-dlq")
    topic = dev.named("aws:sns/topic:Topic", "ingest-validated").outputs["arn"]
    subscription = dev.named("aws:sns/topicSubscription:TopicSubscription", "mediaconvert-subscription")

    assert json.loads(queue.inputs["redrivePolicy"]) == {
        "deadLetterTargetArn": dlq.outputs["arn"],
        "maxReceiveCount": 5,
    }
    assert (subscription.inputs["topic"], subscription.inputs["endpoint"]) == (topic, queue.outputs["arn"])
    assert subscription.inputs["rawMessageDelivery"] is True
    policy = json.loads(subscription.inputs["filterPolicy"])
    assert policy == {"mediaType": ["video"], "engine": ["mediaconvert"]}
    for renditions in (["720p"], ["720p", "1080p"]):
        assert patterns.matches(policy, {"mediaType": "video", "engine": "mediaconvert", "renditions": renditions})
    assert not patterns.matches(policy, {"mediaType": "video", "engine": "lambda", "renditions": ["720p"]})
    for rendition in DEFAULT_RENDITIONS:  # and no transcoder hears of a MediaConvert job
        transcode = dev.named("aws:sns/topicSubscription:TopicSubscription", f"transcode-{rendition.name}-subscription")
        attributes = {"mediaType": "video", "engine": "mediaconvert", "renditions": [rendition.name]}
        assert not patterns.matches(json.loads(transcode.inputs["filterPolicy"]), attributes)


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((MEDIACONVERT_FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize("fixture", [*THIS_STACK, "other-pipeline-complete"])
def test_the_tracker_rule_hears_this_stacks_mediaconvert_jobs_and_no_others(dev: ProgramRun, fixture: str) -> None:
    rule = dev.named(RULE, "tracker-mediaconvert")
    pattern = rule.inputs["eventPattern"]
    event = _fixture(fixture)

    matched = EventPattern.load(pattern).matches_event(event)

    assert rule.inputs["eventBusName"] == "default"
    assert matched is (fixture in THIS_STACK)
    assert patterns.matches(json.loads(pattern), event) is matched  # the project's own matcher agrees


def test_the_tracker_rule_of_another_stack_does_not_hear_this_one(on_mediaconvert: ProgramRun) -> None:
    pattern = json.loads(on_mediaconvert.named(RULE, "tracker-mediaconvert").inputs["eventPattern"])
    pattern["detail"]["userMetadata"]["pipeline"] = ["prod"]  # what the prod stack's program declares

    assert not EventPattern.load(json.dumps(pattern)).matches_event(_fixture("complete"))
    assert EventPattern.load(json.dumps(pattern)).matches_event(_fixture("other-pipeline-complete"))


def test_ingest_knows_the_transcode_budget_it_must_never_exceed(dev: ProgramRun) -> None:
    ingest = dev.named(FUNCTION, "ingest-function").inputs["environment"]["variables"]
    transcoder = dev.named(FUNCTION, "transcode-720p-function").inputs

    assert int(ingest["TRANSCODE_TIMEOUT_SECONDS"]) == transcoder["timeout"] == 900
    assert int(ingest["TRANSCODE_MEMORY_MB"]) == transcoder["memorySize"] == 4096
    assert ingest["LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND"] == "44"
    assert ingest["MEDIACONVERT_THRESHOLD_SECONDS"] == "0"  # auto: Lambda, long sources in segments
    assert ingest["SEGMENT_TARGET_SECONDS"] == "60"


def test_a_stack_on_mediaconvert_deploys_the_same_engine_and_tells_ingest(
    dev: ProgramRun, on_mediaconvert: ProgramRun
) -> None:
    ingest = on_mediaconvert.named(FUNCTION, "ingest-function").inputs["environment"]["variables"]

    assert ingest["ENGINE"] == "mediaconvert"
    assert on_mediaconvert.count_by_type() == dev.count_by_type()  # the engine is always deployed


def test_the_encode_throughput_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lambdaEncodeMegapixelsPerVcpuSecond"):
        run_program({"lambdaEncodeMegapixelsPerVcpuSecond": 0})


def test_the_x264_preset_reaches_every_transcoder_and_nothing_else(dev: ProgramRun) -> None:
    quality_first = run_program({"x264Preset": "medium"})

    for run, preset in ((dev, "veryfast"), (quality_first, "medium")):
        transcoders = [f for f in run.of_type(FUNCTION) if f.name.startswith("transcode-")]
        assert len(transcoders) == 2  # the dev ladder: 720p and 1080p
        assert {f.inputs["environment"]["variables"]["FFMPEG_PRESET"] for f in transcoders} == {preset}
        others = [f for f in run.of_type(FUNCTION) if not f.name.startswith("transcode-")]
        assert all("FFMPEG_PRESET" not in f.inputs["environment"]["variables"] for f in others)
