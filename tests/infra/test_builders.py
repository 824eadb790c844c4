"""The pure builders behind the components, tested without Pulumi."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime import MockCallArgs

from components import patterns, policies
from components.dashboard import dashboard_body, job_metric_search
from components.function import scratch_space_mb
from components.media_image import keep_recent_images
from components.work_queue import visibility_timeout
from functions.submit.service import validated_key
from tests.fixtures import MEDIACONVERT_FIXTURES
from tests.infra.harness import RecordingMocks, UnknownInvoke

LOG_GROUP = "arn:aws:logs:us-east-1:123456789012:log-group:/media-pipeline/dev/api-function"
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs"


def test_function_policy_scopes_logs_to_its_group_and_lists_each_grant() -> None:
    grant = policies.ResolvedGrant(("dynamodb:PutItem", "dynamodb:GetItem"), (TABLE, TABLE))
    document = policies.function_policy(LOG_GROUP, [grant])
    assert document["Version"] == "2012-10-17"
    logs, xray, table = document["Statement"]
    assert logs["Resource"] == f"{LOG_GROUP}:*"
    assert xray == {
        "Sid": "XRayTraces",
        "Effect": "Allow",
        "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
        "Resource": "*",
    }
    assert table == {
        "Sid": "Grant0",
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
        "Resource": [TABLE],
    }


def test_function_policy_keeps_conditions() -> None:
    grant = policies.ResolvedGrant(("s3:ListBucket",), ("arn:aws:s3:::b",), {"StringLike": {"s3:prefix": ["u/*"]}})
    (statement,) = policies.function_policy(LOG_GROUP, [grant])["Statement"][2:]
    assert statement["Condition"] == {"StringLike": {"s3:prefix": ["u/*"]}}


@pytest.mark.parametrize(
    ("actions", "resources"),
    [
        (("*",), (TABLE,)),
        (("s3:*",), (TABLE,)),
        (("s3:Get*",), (TABLE,)),
        (("GetObject",), (TABLE,)),
        (("s3:GetObject",), ("*",)),
        (("s3:GetObject",), ("my-bucket",)),
        ((), (TABLE,)),
        (("s3:GetObject",), ()),
    ],
)
def test_function_policy_refuses_wildcards_and_unnamed_resources(
    actions: tuple[str, ...], resources: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match="grant"):
        policies.function_policy(LOG_GROUP, [policies.ResolvedGrant(actions, resources)])


def test_queue_send_policy_admits_one_service_for_named_sources() -> None:
    queue = "arn:aws:sqs:us-east-1:123456789012:q"
    (statement,) = policies.queue_send_policy(queue, "sns.amazonaws.com", ["arn:aws:sns:us-east-1:1:t"])["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage" and statement["Resource"] == queue
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": ["arn:aws:sns:us-east-1:1:t"]}}
    (pinned,) = policies.queue_send_policy(queue, "s3.amazonaws.com", ["arn:aws:s3:::b"], "123")["Statement"]
    assert pinned["Condition"]["StringEquals"] == {"aws:SourceAccount": "123"}
    with pytest.raises(ValueError, match="at least one source"):
        policies.queue_send_policy(queue, "events.amazonaws.com", [])


def test_redrive_policy_and_its_bounds() -> None:
    assert policies.redrive_policy("arn:dlq", 5) == {"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 5}
    with pytest.raises(ValueError, match="at least 1"):
        policies.redrive_policy("arn:dlq", 0)


def test_bucket_policy_denies_every_request_without_tls() -> None:
    (statement,) = policies.deny_insecure_transport("arn:aws:s3:::b")["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*" and statement["Action"] == "s3:*"
    assert statement["Resource"] == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_mediaconvert_jobs_arn_is_the_queues_account_and_region() -> None:
    queue = "arn:aws:mediaconvert:eu-west-1:123456789012:queues/mediaconvert-jobs-1a2b"
    assert policies.mediaconvert_jobs_arn(queue) == "arn:aws:mediaconvert:eu-west-1:123456789012:jobs/*"
    with pytest.raises(ValueError):
        policies.mediaconvert_jobs_arn("arn:aws:sqs:eu-west-1:123456789012:queue")


def test_object_arns_need_a_folder_prefix() -> None:
    assert policies.object_arns("arn:aws:s3:::b", "uploads/") == "arn:aws:s3:::b/uploads/*"
    with pytest.raises(ValueError, match="must end with"):
        policies.object_arns("arn:aws:s3:::b", "uploads")


def test_object_arns_may_name_only_keys_with_a_suffix() -> None:
    arn = policies.object_arns("arn:aws:s3:::b", patterns.UPLOAD_PREFIX, patterns.VALIDATED_SUFFIX)
    assert arn == "arn:aws:s3:::b/uploads/*/validated"
    # the key submit pins is that suffix, and ingest's notification (suffix /source) never announces it
    assert validated_key("j").endswith(patterns.VALIDATED_SUFFIX)
    assert not validated_key("j").endswith(patterns.UPLOAD_SUFFIX)
    with pytest.raises(ValueError, match="must start with"):
        policies.object_arns("arn:aws:s3:::b", "uploads/", "validated")


def test_assume_role_policy_trusts_one_service() -> None:
    (statement,) = policies.assume_role_policy("lambda.amazonaws.com")["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }


def _fanout_attributes(engine: str, renditions: list[str], media_type: str = "video") -> dict[str, object]:
    return {"mediaType": media_type, "engine": engine, "renditions": renditions}


@pytest.mark.parametrize(
    ("attributes", "delivered"),
    [
        (_fanout_attributes("lambda", ["720p", "1080p"]), True),
        (_fanout_attributes("lambda", ["1080p"]), False),
        (_fanout_attributes("mediaconvert", ["720p"]), False),
        (_fanout_attributes("lambda", ["720p"], media_type="image"), False),
        ({"mediaType": "video", "engine": "lambda"}, False),
    ],
)
def test_rendition_filter_policy_selects_lambda_video_jobs_that_queued_the_rendition(
    attributes: dict[str, object], delivered: bool
) -> None:
    assert patterns.matches(patterns.rendition_filter_policy("720p"), attributes) is delivered


def test_pipeline_pattern_matches_rendition_events_and_not_job_outcomes() -> None:
    pattern = patterns.pipeline_events_pattern()
    assert patterns.matches(pattern, {"source": "media-pipeline", "detail-type": "Rendition Completed"})
    assert patterns.matches(pattern, {"source": "media-pipeline", "detail-type": "Rendition Progress"})
    assert not patterns.matches(pattern, {"source": "media-pipeline", "detail-type": "Job Completed"})
    assert not patterns.matches(pattern, {"source": "someone-else", "detail-type": "Rendition Failed"})


@pytest.mark.parametrize(
    ("fixture", "matched"),
    [
        ("complete.json", True),
        ("error.json", True),
        ("progressing.json", True),
        ("input-information.json", True),
        ("other-pipeline-complete.json", False),
    ],
)
def test_mediaconvert_pattern_matches_this_stacks_jobs_only(fixture: str, matched: bool) -> None:
    event = json.loads((MEDIACONVERT_FIXTURES / fixture).read_text())
    assert patterns.matches(patterns.mediaconvert_state_change_pattern("dev"), event) is matched


def test_dashboard_lists_queues_dlqs_functions_and_outcomes() -> None:
    body = dashboard_body("eu-west-1", {"ingest": "q1"}, {"ingest": "d1"}, {"api": "f1"})
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert titles == [
        "Work queue depth",
        "Oldest message age (s)",
        "Dead-letter queue depth",
        "Lambda errors",
        "Job outcomes",
    ]
    depth, age, dlq, errors, outcomes = (w["properties"]["metrics"] for w in body["widgets"])
    assert depth == [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "q1", {"label": "ingest"}]]
    assert age[0][1] == "ApproximateAgeOfOldestMessage"
    assert dlq[0][3] == "d1" and errors == [["AWS/Lambda", "Errors", "FunctionName", "f1", {"label": "api"}]]
    assert [m[0]["label"] for m in outcomes] == ["JobsCompleted", "JobsFailed", "JobsRejected", "JobsExpired"]
    assert {w["properties"]["region"] for w in body["widgets"]} == {"eu-west-1"}
    assert len({(w["x"], w["y"]) for w in body["widgets"]}) == 5
    with pytest.raises(ValueError, match="at least one"):
        dashboard_body("eu-west-1", {}, {}, {})


def test_job_metric_search_sums_every_service() -> None:
    assert job_metric_search("JobsFailed") == "SEARCH('{MediaPipeline,service} MetricName=\"JobsFailed\"', 'Sum', 60)"


def test_visibility_timeout_is_six_function_timeouts_within_sqs_limits() -> None:
    assert visibility_timeout(900) == 5400
    for bad in (0, 7201):
        with pytest.raises(ValueError, match="outside SQS limits"):
            visibility_timeout(bad)


def test_scratch_space_fits_the_copies_and_lambdas_limit() -> None:
    assert scratch_space_mb(2 * 1024**3, copies=1) == 2048 + 512
    assert scratch_space_mb(2 * 1024**3, copies=2) == 4096 + 512
    assert scratch_space_mb(1, copies=1) == 513
    with pytest.raises(ValueError, match="does not fit"):
        scratch_space_mb(5 * 1024**3, copies=2)


def test_ecr_lifecycle_keeps_the_newest_images() -> None:
    (rule,) = keep_recent_images(10)["rules"]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10}
    assert rule["action"] == {"type": "expire"}
    with pytest.raises(ValueError, match="at least one"):
        keep_recent_images(0)


def test_mocks_refuse_invokes_the_program_is_not_known_to_make() -> None:
    mocks = RecordingMocks()
    with pytest.raises(UnknownInvoke, match="getAvailabilityZones"):
        mocks.call(MockCallArgs("aws:index/getAvailabilityZones:getAvailabilityZones", {}, ""))
    assert mocks.call(MockCallArgs("aws:index/getRegion:getRegion", {}, ""))["region"] == "us-east-1"
