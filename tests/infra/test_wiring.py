"""How the parts are wired: who sends to whom, who may do what, and what the stack exports."""

from __future__ import annotations

import json

import pytest

from components import patterns
from functions.common.jobs_table import OPEN_DEADLINE_INDEX, OWNER_INDEX
from tests.infra.conftest import ALARM_EMAIL
from tests.infra.harness import ACCOUNT, TEST_ISSUER, ProgramRun, run_program

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
FUNCTION = "aws:lambda/function:Function"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
RULE = "aws:cloudwatch/eventRule:EventRule"
TABLE = "aws:dynamodb/table:Table"


def _queue_policy(run: ProgramRun, queue_name: str) -> dict:
    queue = run.named(QUEUE, queue_name)
    (policy,) = [p for p in run.of_type(QUEUE_POLICY) if p.inputs["queueUrl"] == queue.outputs["url"]]
    return json.loads(policy.inputs["policy"])


def _grants(run: ProgramRun, function_name: str) -> dict[str, set[str]]:
    """Action -> resources the function's role is granted, beyond logs and X-Ray."""
    granted: dict[str, set[str]] = {}
    for statement in run.function_policy(run.named(FUNCTION, function_name))["Statement"][2:]:
        for action in statement["Action"]:
            granted.setdefault(action, set()).update(statement["Resource"])
    return granted


def test_uploads_notify_the_ingest_queue_which_admits_only_that_bucket(dev: ProgramRun) -> None:
    uploads = dev.named("aws:s3/bucket:Bucket", "uploads-bucket")
    ingest_queue = dev.named(QUEUE, "ingest-queue")
    (notification,) = dev.of_type("aws:s3/bucketNotification:BucketNotification")
    assert notification.inputs["bucket"] == uploads.outputs["bucket"]
    assert notification.inputs["queues"] == [
        {
            "queueArn": ingest_queue.outputs["arn"],
            "events": ["s3:ObjectCreated:*"],
            "filterPrefix": "uploads/",
            "filterSuffix": "/source",
        }
    ]
    (statement,) = _queue_policy(dev, "ingest-queue")["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == ingest_queue.outputs["arn"]
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": [uploads.outputs["arn"]]},
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
    }


def test_each_rendition_queue_subscribes_to_the_validated_topic_for_its_rendition_only(with_480p: ProgramRun) -> None:
    (topic,) = [t for t in with_480p.of_type("aws:sns/topic:Topic") if t.name == "ingest-validated"]
    for name in ("480p", "720p", "1080p"):
        queue = with_480p.named(QUEUE, f"transcode-{name}-queue")
        subscription = with_480p.named(SUBSCRIPTION, f"transcode-{name}-subscription")
        assert subscription.inputs["topic"] == topic.outputs["arn"]
        assert subscription.inputs["endpoint"] == queue.outputs["arn"]
        assert json.loads(subscription.inputs["filterPolicy"]) == {
            "mediaType": ["video"],
            "engine": ["lambda"],
            "renditions": [name],
        }
        (statement,) = _queue_policy(with_480p, f"transcode-{name}-queue")["Statement"]
        assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": [topic.outputs["arn"]]}}


def test_transcoders_read_uploads_write_and_check_outputs_and_publish_to_the_bus_only(with_480p: ProgramRun) -> None:
    uploads = with_480p.named("aws:s3/bucket:Bucket", "uploads-bucket").outputs["arn"]
    outputs = with_480p.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["arn"]
    bus = with_480p.only("aws:cloudwatch/eventBus:EventBus").outputs["arn"]
    table = with_480p.named(TABLE, "jobs-table").outputs["arn"]
    for name in ("480p", "720p", "1080p"):
        queue = with_480p.named(QUEUE, f"transcode-{name}-queue").outputs["arn"]
        assert _grants(with_480p, f"transcode-{name}-function") == {
            # The upload itself (uploads/{jobId}/source), never submit's validated copies beside it.
            "s3:GetObject": {f"{uploads}/uploads/*/source", f"{outputs}/outputs/*"},
            "s3:ListBucket": {uploads, outputs},
            "s3:PutObject": {f"{outputs}/outputs/*"},
            "s3:AbortMultipartUpload": {f"{outputs}/outputs/*"},
            # The stitch deletes the parts of a segment-parallel rendition, and nothing else.
            "s3:DeleteObject": {f"{outputs}/outputs/*/segments/*"},
            "events:PutEvents": {bus},
            # The job gate: read the job (canceled? another attempt?), never write it.
            "dynamodb:GetItem": {table},
            "sqs:ReceiveMessage": {queue},
            "sqs:DeleteMessage": {queue},
            "sqs:GetQueueAttributes": {queue},
        }
        env = with_480p.named(FUNCTION, f"transcode-{name}-function").inputs["environment"]["variables"]
        assert env["JOBS_TABLE_NAME"] == with_480p.named(TABLE, "jobs-table").outputs["name"]


@pytest.mark.parametrize(("name", "media_type"), [("images", "image"), ("audio", "audio")])
def test_the_images_and_audio_queues_subscribe_to_the_validated_topic_for_their_media_type_only(
    with_480p: ProgramRun, name: str, media_type: str
) -> None:
    topic = with_480p.named("aws:sns/topic:Topic", "ingest-validated").outputs["arn"]
    queue = with_480p.named(QUEUE, f"{name}-queue")
    subscription = with_480p.named(SUBSCRIPTION, f"{name}-subscription")
    assert subscription.inputs["topic"] == topic
    assert subscription.inputs["endpoint"] == queue.outputs["arn"]
    # Every unit of a job of that media type, whatever its engine or unit names; never a video's.
    assert json.loads(subscription.inputs["filterPolicy"]) == {"mediaType": [media_type]}
    (statement,) = _queue_policy(with_480p, f"{name}-queue")["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage" and statement["Resource"] == queue.outputs["arn"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": [topic]}}
    (mapping,) = [
        m
        for m in with_480p.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
        if m.inputs["eventSourceArn"] == queue.outputs["arn"]
    ]
    assert mapping.inputs["functionName"] == with_480p.named(FUNCTION, f"{name}-function").outputs["arn"]
    dlq = with_480p.named(QUEUE, f"{name}-dlq").outputs["arn"]
    assert json.loads(queue.inputs["redrivePolicy"]) == {"deadLetterTargetArn": dlq, "maxReceiveCount": 5}


@pytest.mark.parametrize(
    ("attributes", "routed_to"),
    [
        ({"mediaType": "image", "engine": "lambda", "renditions": ["thumb-webp"]}, {"images"}),
        ({"mediaType": "image", "engine": "lambda", "renditions": ["metadata"]}, {"images"}),
        ({"mediaType": "audio", "engine": "lambda", "renditions": ["audio"]}, {"audio"}),
        ({"mediaType": "audio", "engine": "lambda", "renditions": ["waveform"]}, {"audio"}),
        # A rendition named like an image or audio unit is still a video's.
        ({"mediaType": "video", "engine": "lambda", "renditions": ["720p", "audio"]}, {"transcode-720p"}),
        ({"mediaType": "video", "engine": "mediaconvert", "renditions": ["720p"]}, {"mediaconvert"}),
    ],
)
def test_each_fan_out_message_reaches_exactly_its_consumers_queue(
    dev: ProgramRun, attributes: dict, routed_to: set[str]
) -> None:
    subscriptions = {
        s.name.removesuffix("-subscription"): json.loads(s.inputs["filterPolicy"])
        for s in dev.of_type(SUBSCRIPTION)
        if s.inputs["protocol"] == "sqs"
    }
    assert {"images", "audio", "mediaconvert", "transcode-720p", "transcode-1080p"} == set(subscriptions)
    assert {name for name, policy in subscriptions.items() if patterns.matches(policy, attributes)} == routed_to


def test_images_and_audio_read_the_upload_write_outputs_and_publish_to_the_bus_only(with_480p: ProgramRun) -> None:
    uploads = with_480p.named("aws:s3/bucket:Bucket", "uploads-bucket").outputs["arn"]
    outputs = with_480p.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["arn"]
    bus = with_480p.only("aws:cloudwatch/eventBus:EventBus").outputs["arn"]
    table = with_480p.named(TABLE, "jobs-table").outputs["arn"]
    for name in ("images", "audio"):
        queue = with_480p.named(QUEUE, f"{name}-queue").outputs["arn"]
        # The upload object only (not submit's validated copies); outputs/ read (HEAD) and written, the outputs
        # bucket listed (so that HEAD of an output not made yet answers 404); no uploads listing, no topic; the job
        # read (the job gate), never written.
        expected = {
            "s3:GetObject": {f"{uploads}/uploads/*/source", f"{outputs}/outputs/*"},
            "s3:PutObject": {f"{outputs}/outputs/*"},
            "s3:ListBucket": {outputs},
            "events:PutEvents": {bus},
            "dynamodb:GetItem": {table},
            "sqs:ReceiveMessage": {queue},
            "sqs:DeleteMessage": {queue},
            "sqs:GetQueueAttributes": {queue},
        }
        if name == "audio":  # the AAC rendition may be uploaded in parts (images are one PUT)
            expected["s3:AbortMultipartUpload"] = {f"{outputs}/outputs/*"}
        assert _grants(with_480p, f"{name}-function") == expected, name
        env = with_480p.named(FUNCTION, f"{name}-function").inputs["environment"]["variables"]
        assert env["JOBS_TABLE_NAME"] == with_480p.named(TABLE, "jobs-table").outputs["name"], name


def test_a_watermark_logo_is_the_one_object_outside_outputs_the_images_function_may_read() -> None:
    run = run_program({"watermarkLogoKey": "watermarks/logo.png", "watermarkText": "ACME"})
    outputs = run.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["arn"]
    grants = _grants(run, "images-function")
    assert grants["s3:GetObject"] == {
        f"{run.named('aws:s3/bucket:Bucket', 'uploads-bucket').outputs['arn']}/uploads/*/source",
        f"{outputs}/outputs/*",
        f"{outputs}/watermarks/logo.png",
    }
    assert grants["s3:PutObject"] == {f"{outputs}/outputs/*"}
    env = run.named(FUNCTION, "images-function").inputs["environment"]["variables"]
    assert (env["WATERMARK_TEXT"], env["WATERMARK_LOGO_KEY"]) == ("ACME", "watermarks/logo.png")
    assert "watermarks/logo.png" not in json.dumps(run.function_policy(run.named(FUNCTION, "audio-function")))


def test_ingest_may_read_uploads_write_jobs_publish_to_the_topic_and_the_bus(dev: ProgramRun) -> None:
    uploads = dev.named("aws:s3/bucket:Bucket", "uploads-bucket").outputs["arn"]
    table = dev.named("aws:dynamodb/table:Table", "jobs-table").outputs["arn"]
    topic = dev.named("aws:sns/topic:Topic", "ingest-validated").outputs["arn"]
    grants = _grants(dev, "ingest-function")
    assert grants["s3:GetObject"] == {f"{uploads}/uploads/*"}
    assert grants["s3:ListBucket"] == {uploads}
    assert grants["dynamodb:GetItem"] == grants["dynamodb:PutItem"] == {table}
    assert grants["sns:Publish"] == {topic}
    assert "events:PutEvents" in grants
    assert not any(action.startswith("s3:Put") for action in grants)


def test_api_reads_and_writes_jobs_signs_uploads_and_downloads_and_manages_webhooks(dev: ProgramRun) -> None:
    uploads = dev.named("aws:s3/bucket:Bucket", "uploads-bucket").outputs["arn"]
    outputs = dev.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["arn"]
    table = dev.named(TABLE, "jobs-table").outputs["arn"]
    endpoints = dev.named(TABLE, "webhooks-endpoints").outputs["arn"]
    deliveries = dev.named(TABLE, "webhooks-deliveries").outputs["arn"]
    usage = dev.named(TABLE, "api-usage").outputs["arn"]
    assert _grants(dev, "api-function") == {
        "dynamodb:GetItem": {table, f"{table}/index/{OWNER_INDEX}", endpoints, usage},
        "dynamodb:PutItem": {table, f"{table}/index/{OWNER_INDEX}", endpoints, usage},
        "dynamodb:Query": {table, f"{table}/index/{OWNER_INDEX}", endpoints, f"{deliveries}/index/byAttemptedAt"},
        "dynamodb:DeleteItem": {endpoints},
        "dynamodb:UpdateItem": {endpoints},
        "s3:PutObject": {f"{uploads}/uploads/*"},
        "s3:GetObject": {f"{outputs}/outputs/*"},
        "secretsmanager:GetSecretValue": {dev.only("aws:secretsmanager/secret:Secret").outputs["arn"]},  # playback
        # DELETE /jobs/{jobId} announces the cancel and asks the tracker to delete; retry and reprocess go to ingest
        "events:PutEvents": {dev.only("aws:cloudwatch/eventBus:EventBus").outputs["arn"]},
        "sqs:SendMessage": {dev.named(QUEUE, "ingest-queue").outputs["arn"]},
    }


def test_jobs_table_matches_the_job_record_contract(dev: ProgramRun) -> None:
    table = dev.named(TABLE, "jobs-table")
    inputs = table.inputs
    assert inputs["billingMode"] == "PAY_PER_REQUEST"
    assert inputs["hashKey"] == "jobId"
    assert {a["name"]: a["type"] for a in inputs["attributes"]} == {
        "jobId": "S",
        "ownerId": "S",
        "createdAt": "N",
        "openJob": "S",
        "deadlineAt": "N",
    }
    indexes = {i["name"]: i for i in inputs["globalSecondaryIndexes"]}
    assert set(indexes) == {OWNER_INDEX, OPEN_DEADLINE_INDEX}
    assert indexes[OWNER_INDEX]["projectionType"] == "ALL"
    assert indexes[OPEN_DEADLINE_INDEX]["projectionType"] == "KEYS_ONLY"
    key = {i: [(k["attributeName"], k["keyType"]) for k in indexes[i]["keySchemas"]] for i in indexes}
    assert key[OWNER_INDEX] == [("ownerId", "HASH"), ("createdAt", "RANGE")]
    assert key[OPEN_DEADLINE_INDEX] == [("openJob", "HASH"), ("deadlineAt", "RANGE")]
    assert inputs["ttl"] == {"attributeName": "expiresAt", "enabled": True}
    assert inputs["pointInTimeRecovery"]["enabled"] is True
    assert inputs["serverSideEncryption"]["enabled"] is True


def test_the_bus_keeps_the_urn_it_had_as_the_job_stores_child(dev: ProgramRun) -> None:
    """The bus has its own component now; its alias names the old parent, so a deployed stack keeps its bus."""
    (bus,) = [
        urn
        for urn in dev.urns
        if urn.endswith("::media-pipeline:index:EventBus$aws:cloudwatch/eventBus:EventBus::jobs-bus")
    ]
    (store,) = [urn for urn in dev.urns if urn.endswith("$media-pipeline:index:JobStore::jobs")]
    assert dev.alias_parents == {bus: [store]}


def test_the_packager_hears_packaging_requests_on_its_own_queue_and_never_reads_uploads(dev: ProgramRun) -> None:
    bus = dev.only("aws:cloudwatch/eventBus:EventBus")
    rule = dev.named(RULE, "packager-requests")
    assert rule.inputs["eventBusName"] == bus.outputs["name"]
    assert json.loads(rule.inputs["eventPattern"]) == {
        "source": ["media-pipeline"],
        "detail-type": ["Packaging Requested"],
    }
    queue, dlq = dev.named(QUEUE, "packager-requests-queue"), dev.named(QUEUE, "packager-requests-dlq")
    (target,) = [t for t in dev.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.inputs["rule"] == rule.id]
    assert target.inputs["arn"] == queue.outputs["arn"]
    assert target.inputs["deadLetterConfig"]["arn"] == dlq.outputs["arn"]
    for name in ("packager-requests-queue", "packager-requests-dlq"):
        (statement,) = _queue_policy(dev, name)["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == [rule.outputs["arn"]]

    # The packager remuxes the renditions under outputs/ into the package beside them; the uploads bucket and the
    # topic are none of its business (packaging never re-reads the source), and it only reads the job (the job gate).
    outputs = dev.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["arn"]
    function = dev.named(FUNCTION, "packager-function")
    assert _grants(dev, "packager-function") == {
        "s3:GetObject": {f"{outputs}/outputs/*"},
        "s3:PutObject": {f"{outputs}/outputs/*"},
        "s3:AbortMultipartUpload": {f"{outputs}/outputs/*"},
        "s3:ListBucket": {outputs},
        "events:PutEvents": {bus.outputs["arn"]},
        "dynamodb:GetItem": {dev.named(TABLE, "jobs-table").outputs["arn"]},
        "sqs:ReceiveMessage": {queue.outputs["arn"]},
        "sqs:DeleteMessage": {queue.outputs["arn"]},
        "sqs:GetQueueAttributes": {queue.outputs["arn"]},
    }
    assert function.inputs["packageType"] == "Image"
    assert function.inputs["imageConfig"]["commands"] == ["functions.packager.handler.handler"]
    assert function.inputs["environment"]["variables"]["THUMBNAIL_INTERVAL_SECONDS"] == "2"
    assert (
        function.inputs["environment"]["variables"]["JOBS_TABLE_NAME"] == dev.named(TABLE, "jobs-table").outputs["name"]
    )
    # /tmp holds every rendition of the longest accepted input at its bitrate cap, and their segments
    ladder_bytes = (3000 + 128 + 6000 + 160) * 1000 // 8 * 900
    assert function.inputs["ephemeralStorage"]["size"] >= 2 * ladder_bytes // 1024**2


def test_a_thumbnail_interval_off_the_gop_grid_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 2"):
        run_program({"thumbnailIntervalSeconds": 3})


def test_tracker_hears_its_events_mediaconvert_for_this_stack_and_the_sweep(dev: ProgramRun) -> None:
    bus = dev.only("aws:cloudwatch/eventBus:EventBus").outputs["name"]
    events = dev.named(RULE, "tracker-pipeline-events")
    assert events.inputs["eventBusName"] == bus
    assert json.loads(events.inputs["eventPattern"]) == {
        "source": ["media-pipeline"],
        "detail-type": [
            "Rendition Progress",
            "Rendition Completed",
            "Rendition Failed",
            "Segment Completed",
            "Packaging Completed",
            "Packaging Failed",
            "Job Deletion Requested",
        ],
    }
    mediaconvert = dev.named(RULE, "tracker-mediaconvert")
    assert mediaconvert.inputs["eventBusName"] == "default"
    assert json.loads(mediaconvert.inputs["eventPattern"])["detail"] == {"userMetadata": {"pipeline": ["dev"]}}
    assert dev.named(RULE, "tracker-sweep").inputs["scheduleExpression"] == "rate(5 minutes)"

    tracker = dev.named(FUNCTION, "tracker-function")
    dlq = dev.named(QUEUE, "tracker-dlq")
    rules = [rule for rule in dev.of_type(RULE) if rule.name.startswith("tracker-")]
    assert len(rules) == 3
    for rule in rules:
        (target,) = [t for t in dev.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.inputs["rule"] == rule.id]
        assert target.inputs["arn"] == tracker.outputs["arn"]
        assert target.inputs["deadLetterConfig"]["arn"] == dlq.outputs["arn"]
        (permission,) = [
            p
            for p in dev.of_type("aws:lambda/permission:Permission")
            if p.inputs.get("sourceArn") == rule.outputs["arn"]
        ]
        assert permission.inputs["principal"] == "events.amazonaws.com"
        assert permission.inputs["function"] == tracker.outputs["name"]
    (statement,) = _queue_policy(dev, "tracker-dlq")["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert sorted(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(r.outputs["arn"] for r in rules)


def test_tracker_failed_invocations_go_to_its_dlq_and_it_may_write_jobs(dev: ProgramRun) -> None:
    (invoke_config,) = dev.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
    dlq = dev.named(QUEUE, "tracker-dlq").outputs["arn"]
    assert invoke_config.inputs["destinationConfig"] == {"onFailure": {"destination": dlq}}
    table = dev.named("aws:dynamodb/table:Table", "jobs-table").outputs["arn"]
    grants = _grants(dev, "tracker-function")
    assert grants["dynamodb:Query"] == {table, f"{table}/index/{OPEN_DEADLINE_INDEX}"}
    assert grants["sqs:SendMessage"] == {dlq}
    assert "events:PutEvents" in grants
    outputs = dev.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["arn"]
    uploads = dev.named("aws:s3/bucket:Bucket", "uploads-bucket").outputs["arn"]
    assert grants["s3:GetObject"] == {f"{outputs}/outputs/*"}  # HEAD of MediaConvert outputs for their size
    # a deleted job's files, under its prefixes only, and its MediaConvert job
    assert grants["s3:DeleteObject"] == {f"{outputs}/outputs/*", f"{uploads}/uploads/*"}
    assert grants["s3:ListBucket"] == {outputs, uploads}
    assert grants["mediaconvert:CancelJob"] == {"arn:aws:mediaconvert:us-east-1:123456789012:jobs/*"}
    # the stitch of a segment-parallel rendition, published to the fan-out topic (encrypted with the topics' key)
    topic = dev.named("aws:sns/topic:Topic", "ingest-validated").outputs["arn"]
    assert grants["sns:Publish"] == {topic}
    assert grants["kms:GenerateDataKey"] == {dev.named("aws:kms/key:Key", "topics-key").outputs["arn"]}
    env = dev.named(FUNCTION, "tracker-function").inputs["environment"]["variables"]
    assert env["VALIDATED_TOPIC_ARN"] == topic


def test_api_routes_authorize_with_the_configured_jwt_except_health(dev: ProgramRun) -> None:
    (authorizer,) = dev.of_type("aws:apigatewayv2/authorizer:Authorizer")
    assert authorizer.inputs["authorizerType"] == "JWT"
    assert authorizer.inputs["identitySources"] == ["$request.header.Authorization"]
    assert authorizer.inputs["jwtConfiguration"] == {"issuer": TEST_ISSUER, "audiences": ["media-pipeline"]}
    (integration,) = dev.of_type("aws:apigatewayv2/integration:Integration")
    assert integration.inputs["integrationType"] == "AWS_PROXY"
    assert integration.inputs["payloadFormatVersion"] == "2.0"
    assert integration.inputs["integrationUri"] == dev.named(FUNCTION, "api-function").outputs["arn"]
    routes = {r.inputs["routeKey"]: r.inputs for r in dev.of_type("aws:apigatewayv2/route:Route")}
    assert set(routes) == {
        "POST /uploads",
        "GET /jobs/{jobId}",
        "DELETE /jobs/{jobId}",
        "POST /jobs/{jobId}/retry",
        "POST /jobs/{jobId}/reprocess",
        "GET /jobs",
        "GET /usage",
        "POST /webhooks",
        "GET /webhooks",
        "DELETE /webhooks/{webhookId}",
        "POST /webhooks/{webhookId}/rotate-secret",
        "GET /webhooks/{webhookId}/deliveries",
        "GET /health",
    }
    for key, route in routes.items():
        assert route["target"] == f"integrations/{integration.id}"
        if key == "GET /health":
            assert route["authorizationType"] == "NONE" and "authorizerId" not in route
        else:
            assert route["authorizationType"] == "JWT" and route["authorizerId"] == authorizer.id


def test_api_stage_deploys_itself_throttles_and_logs_json_access_lines(dev: ProgramRun) -> None:
    (stage,) = dev.of_type("aws:apigatewayv2/stage:Stage")
    assert stage.inputs["name"] == "$default" and stage.inputs["autoDeploy"] is True
    assert stage.inputs["defaultRouteSettings"]["throttlingBurstLimit"] == 100
    assert stage.inputs["defaultRouteSettings"]["throttlingRateLimit"] == 50
    logs = dev.named("aws:cloudwatch/logGroup:LogGroup", "api-access-logs")
    assert stage.inputs["accessLogSettings"]["destinationArn"] == logs.outputs["arn"]
    assert logs.inputs["retentionInDays"] == 14
    assert "$context.requestId" in json.loads(stage.inputs["accessLogSettings"]["format"]).values()
    (api,) = dev.of_type("aws:apigatewayv2/api:Api")
    assert api.inputs["corsConfiguration"]["allowOrigins"] == ["http://localhost:3000", "http://127.0.0.1:3000"]
    permission = dev.named("aws:lambda/permission:Permission", "api-invoke")
    assert permission.inputs["principal"] == "apigateway.amazonaws.com"
    assert permission.inputs["sourceArn"] == f"{api.outputs['executionArn']}/*/*"


def test_uploads_accept_browser_posts_and_expire_while_outputs_follow_job_retention(dev: ProgramRun) -> None:
    uploads = dev.named("aws:s3/bucket:Bucket", "uploads-bucket").id
    outputs = dev.named("aws:s3/bucket:Bucket", "outputs-bucket").id
    (cors,) = dev.of_type("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration")
    assert cors.inputs["bucket"] == uploads
    assert cors.inputs["corsRules"][0]["allowedMethods"] == ["POST"]
    assert cors.inputs["corsRules"][0]["allowedOrigins"] == ["http://localhost:3000", "http://127.0.0.1:3000"]
    expiry = {}
    for lifecycle in dev.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"):
        for rule in lifecycle.inputs["rules"]:
            if "expiration" in rule:
                expiry[(lifecycle.inputs["bucket"], rule["filter"]["prefix"])] = rule["expiration"]["days"]
    assert expiry == {(uploads, "uploads/"): 3, (outputs, "outputs/"): 7}  # Pulumi.dev.yaml


def test_functions_run_an_image_by_digest_or_the_zip_with_powertools(dev: ProgramRun) -> None:
    images = {}
    for name in ("ffmpeg", "images"):
        image = dev.named("docker-build:index:Image", f"{name}-image")
        assert image.inputs["push"] is True and image.inputs["platforms"] == ["linux/amd64"]
        assert image.inputs["dockerfile"]["location"].endswith(f"containers/{name}/Dockerfile")
        repository = dev.named("aws:ecr/repository:Repository", f"{name}-repository").outputs["repositoryUrl"]
        assert image.inputs["tags"] == [f"{repository}:latest"]
        images[name] = f"{repository}@{image.outputs['digest']}"
    assert len(dev.of_type("docker-build:index:Image")) == 2
    layer = "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:18"
    for function in dev.of_type(FUNCTION):
        assert function.inputs["architectures"] == ["x86_64"]
        if function.inputs["packageType"] == "Image":
            expected = images["images" if function.name == "images-function" else "ffmpeg"]
            assert function.inputs["imageUri"] == expected, function.name
        else:
            assert function.inputs["runtime"] == "python3.11"
            assert function.inputs["layers"] == [layer]


def test_alarms_watch_every_dlq_and_work_queue_and_notify_the_alarm_topic(dev: ProgramRun) -> None:
    dlqs = dev.dead_letter_queue_arns()
    queues = dev.of_type(QUEUE)
    topic = dev.named("aws:sns/topic:Topic", "observability-alarms").outputs["arn"]
    alarms = dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    on_queues = [a for a in alarms if a.inputs["namespace"] == "AWS/SQS"]
    watched = {(a.inputs["metricName"], a.inputs["dimensions"]["QueueName"]) for a in on_queues}
    expected = {
        ("ApproximateNumberOfMessagesVisible" if q.outputs["arn"] in dlqs else "ApproximateAgeOfOldestMessage", q.id)
        for q in queues
    }
    assert watched == {(metric, url.rsplit("/", 1)[-1]) for metric, url in expected}
    for alarm in alarms:
        assert alarm.inputs["alarmActions"] == [topic]
        assert alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
    assert not [s for s in dev.of_type(SUBSCRIPTION) if s.inputs["protocol"] == "email"]


def test_an_alarm_email_subscribes_to_the_alarm_topic(with_alarm_email: ProgramRun) -> None:
    (email,) = [s for s in with_alarm_email.of_type(SUBSCRIPTION) if s.inputs["protocol"] == "email"]
    assert email.inputs["endpoint"] == ALARM_EMAIL
    assert email.inputs["topic"] == with_alarm_email.named("aws:sns/topic:Topic", "observability-alarms").outputs["arn"]


def test_dashboard_shows_every_queue_function_and_job_outcome(dev: ProgramRun) -> None:
    (dashboard,) = dev.of_type("aws:cloudwatch/dashboard:Dashboard")
    body = json.loads(dashboard.inputs["dashboardBody"])
    text = json.dumps(body)
    for queue in dev.of_type(QUEUE):
        assert f'"{queue.outputs["name"]}"' in text, queue.name
    for function in dev.of_type(FUNCTION):
        assert f'"{function.outputs["name"]}"' in text, function.name
    for metric in ("JobsCompleted", "JobsFailed", "JobsRejected", "JobsExpired"):
        assert f'MetricName=\\"{metric}\\"' in text
    assert {w["properties"]["region"] for w in body["widgets"]} == {"us-east-1"}


def test_stack_exports_what_clients_and_operators_need(with_480p: ProgramRun) -> None:
    outputs = with_480p.outputs
    assert outputs["apiUrl"].startswith("https://")
    assert outputs["uploadsBucket"] == with_480p.named("aws:s3/bucket:Bucket", "uploads-bucket").outputs["bucket"]
    assert outputs["outputsBucket"] == with_480p.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["bucket"]
    assert outputs["jobsTable"] == with_480p.named("aws:dynamodb/table:Table", "jobs-table").outputs["name"]
    assert outputs["eventBusName"] == "media-pipeline-dev"
    assert outputs["ingestQueueUrl"] == with_480p.named(QUEUE, "ingest-queue").outputs["url"]
    assert outputs["transcodeQueueUrls"] == {
        name: with_480p.named(QUEUE, f"transcode-{name}-queue").outputs["url"] for name in ("480p", "720p", "1080p")
    }
    assert set(outputs["deadLetterQueueUrls"]) == {
        "ingest",
        "transcode-480p",
        "transcode-720p",
        "transcode-1080p",
        "images",
        "audio",
        "packager",
        "mediaconvert",
        "tracker",
        "webhooks",
    }
    assert outputs["packagerQueueUrl"] == with_480p.named(QUEUE, "packager-requests-queue").outputs["url"]
    for name in ("images", "audio"):
        assert outputs["deadLetterQueueUrls"][name] == with_480p.named(QUEUE, f"{name}-dlq").outputs["url"]
        assert outputs[f"{name}QueueUrl"] == with_480p.named(QUEUE, f"{name}-queue").outputs["url"]
    assert outputs["mediaconvertQueueUrl"] == with_480p.named(QUEUE, "mediaconvert-queue").outputs["url"]
    job_queue = with_480p.named("aws:mediaconvert/queue:Queue", "mediaconvert-jobs").outputs["arn"]
    assert outputs["mediaconvertJobQueueArn"] == job_queue
    for key in ("validatedTopicArn", "mediaImageUri", "imagesImageUri", "alarmTopicArn", "dashboardName"):
        assert outputs[key], key


def test_upload_key_layout_matches_the_contract() -> None:
    assert (patterns.UPLOAD_PREFIX, patterns.UPLOAD_SUFFIX, patterns.OUTPUT_PREFIX) == (
        "uploads/",
        "/source",
        "outputs/",
    )
