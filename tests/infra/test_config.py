"""Stack config: declared once in Pulumi.yaml, read once by __main__.py, validated, and scaling the ladder cleanly."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components.lambda_runtime import load_lambda_runtime
from tests.infra.harness import REGION, ROOT, ProgramRun, run_program
from tests.infra.stack_config import declared_keys, stack_config

PROJECT_FILE = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
FUNCTION = "aws:lambda/function:Function"
THUMB = {"name": "thumb", "longEdge": 320, "formats": ["webp", "jpeg"], "watermark": False}
TYPE_CHECKS = {"string": str, "integer": int, "boolean": bool, "array": list}


def test_project_is_a_python_program_in_the_repo_virtualenv() -> None:
    assert PROJECT_FILE["name"] == "media-pipeline"
    assert PROJECT_FILE["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


def test_every_key_the_program_reads_is_declared_with_a_description_and_default(dev: ProgramRun) -> None:
    declared = declared_keys(ROOT)
    assert len(dev.config_keys_read) >= 25
    assert dev.config_keys_read == set(declared), "keys read but not declared, or declared but never read"
    for key, spec in declared.items():
        assert len(spec.description) > 20, key
        assert spec.default is not None, key


@pytest.mark.parametrize("key", sorted(PROJECT_FILE["config"]))
def test_typed_defaults_are_of_their_declared_type(key: str) -> None:
    spec = PROJECT_FILE["config"][key]
    if "type" not in spec:
        return  # untyped (a list of objects, which Pulumi's config types cannot describe)
    expected = TYPE_CHECKS[spec["type"]]
    assert isinstance(spec["default"], expected) and not (expected is int and isinstance(spec["default"], bool))
    if spec["type"] == "array":
        item_type = TYPE_CHECKS[spec["items"]["type"]]
        assert all(isinstance(item, item_type) for item in spec["default"])


def test_the_dev_stack_only_sets_declared_keys_and_the_region() -> None:
    stack_file = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert stack_file["aws:region"] == "us-east-1"
    assert set(stack_file) - {"aws:region"} <= set(declared_keys(ROOT))


def test_stack_values_override_defaults_and_reach_the_program_as_strings() -> None:
    config = stack_config(ROOT, "dev", {"maxReceiveCount": 3})
    assert config["media-pipeline:logRetentionDays"] == "14"  # Pulumi.dev.yaml over the default 30
    assert config["media-pipeline:maxReceiveCount"] == "3"
    assert config["media-pipeline:engine"] == "lambda"
    assert config["media-pipeline:renditions"].startswith('[{"name": "720p"')


def test_adding_a_rendition_adds_one_queue_one_dlq_one_subscription_and_one_function(
    dev: ProgramRun, with_480p: ProgramRun
) -> None:
    before, after = dev.count_by_type(), with_480p.count_by_type()
    added = {token: after.get(token, 0) - before.get(token, 0) for token in set(before) | set(after)}
    assert {token: n for token, n in added.items() if n} == {
        "aws:sqs/queue:Queue": 2,  # the rendition's queue and its DLQ
        "aws:sqs/queuePolicy:QueuePolicy": 1,
        "aws:sns/topicSubscription:TopicSubscription": 1,
        "aws:lambda/function:Function": 1,
        "aws:lambda/eventSourceMapping:EventSourceMapping": 1,
        "aws:iam/role:Role": 1,
        "aws:iam/rolePolicy:RolePolicy": 1,
        "aws:cloudwatch/logGroup:LogGroup": 1,
        # the queue's age, the DLQ's depth, the function's errors and throttles
        "aws:cloudwatch/metricAlarm:MetricAlarm": 4,
        "media-pipeline:index:Transcoder": 1,
        "media-pipeline:index:WorkQueue": 1,
        "media-pipeline:index:LambdaFunction": 1,
    }
    assert with_480p.named("aws:sqs/queue:Queue", "transcode-480p-dlq")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"engine": "ffmpeg"}, "engine must be one of"),
        ({"logRetentionDays": 10}, "logRetentionDays must be one of"),
        ({"processingDeadlineSeconds": 600}, "processingDeadlineSeconds must exceed"),
        ({"renditions": [{"name": "720p", "height": 721, "maxVideoBitrateKbps": 1, "audioBitrateKbps": 1}]}, "even"),
        ({"maxUploadBytes": 10 * 1024**3}, "does not fit"),
        ({"transcodeTimeoutSeconds": 1000, "processingDeadlineSeconds": 20000}, "Lambda allows 1-900 s"),
        ({"transcodeMemoryMb": 64}, "128-10240 MB"),
        ({"allowedContentTypes": ["mp4"]}, "MIME types"),
        ({"uploadRetentionDays": 0}, "at least one day"),
        ({"audioTimeoutSeconds": 900, "processingDeadlineSeconds": 1100}, "processingDeadlineSeconds must exceed"),
        ({"imagesTimeoutSeconds": 1000}, "Lambda allows 1-900 s"),
        ({"audioMemoryMb": 64}, "128-10240 MB"),
        ({"maxImageUploadBytes": 0}, "maxImageUploadBytes must be at least 1 byte"),
        ({"maxAudioUploadBytes": 6 * 1024**3}, "does not fit"),
        ({"maxImagePixels": 0}, "maxImagePixels must be at least 1"),
        ({"maxImagePixels": 300_000_000}, r"does not fit in ingestMemoryMb \(2048\) and imagesMemoryMb"),
        ({"imageDerivatives": []}, "imageDerivatives: must be a non-empty JSON list"),
        ({"imageDerivatives": {"name": "thumb"}}, "imageDerivatives: must be a non-empty JSON list"),
        ({"imageDerivatives": [{"name": "thumb", "longEdge": 320}]}, "formats must be a non-empty list"),
        ({"imageDerivatives": [{**THUMB, "size": 3}]}, r"unknown keys \['size'\]"),
        ({"imageDerivatives": [{**THUMB, "formats": ["png"]}]}, "format 'png' is not one of"),
        ({"imageDerivatives": [{**THUMB, "formats": ["webp", "webp"]}]}, "'thumb-webp' is planned twice"),
        ({"imageDerivatives": [{**THUMB, "longEdge": 0}]}, "longEdge must be an integer from 16 to 8192"),
        ({"imageDerivatives": [{**THUMB, "longEdge": 320.5}]}, "longEdge must be an integer"),
        ({"imageDerivatives": [{**THUMB, "name": "thumbnail-for-lists"}]}, "'thumbnail-for-lists-webp' is longer"),
        ({"imageDerivatives": [{**THUMB, "name": "Thumb"}]}, r"name must match \^\[a-z0-9-\]\+\$"),
        ({"imageDerivatives": [{**THUMB, "watermark": "yes"}]}, "watermark must be true or false"),
        ({"imageDerivatives": [THUMB, {**THUMB, "longEdge": 640}]}, "planned twice"),
        ({"watermarkOpacity": 1.5}, "watermarkOpacity must be 0 to 1"),
        ({"watermarkOpacity": -0.1}, "watermarkOpacity must be 0 to 1"),
        ({"watermarkScale": 0}, "watermarkScale must be above 0 and at most 1"),
        ({"watermarkScale": 2}, "watermarkScale must be above 0 and at most 1"),
        ({"watermarkText": "x" * 101}, "watermarkText must be at most 100 printable characters"),
        ({"watermarkText": "two\nlines"}, "watermarkText must be at most 100 printable characters"),
        ({"watermarkLogoKey": "outputs/logo.png"}, "which expires after jobRetentionDays"),
        ({"watermarkLogoKey": "logos/*.png"}, r"no '\*', '\?' or '\$'"),
        ({"watermarkLogoKey": "logos/${aws:username}.png"}, "must be an S3 key in the outputs bucket"),
        ({"watermarkLogoKey": "/logo.png"}, "no leading '/'"),
        ({"watermarkLogoKey": "logos/brand.jpg"}, "must name a PNG"),
        ({"loudnessTargetLufs": 0}, "loudnessTargetLufs must be -70 to -5"),
        ({"loudnessTargetLufs": -80}, "loudnessTargetLufs must be -70 to -5"),
        ({"audioBitrateKbps": 8}, "audioBitrateKbps must be 32-320"),
        ({"allowedContentTypes": {"image": "image/png"}}, "MIME types"),
        ({"maxOpenUploadsPerUser": -1}, "maxOpenUploadsPerUser must be 1-10000, or 0 for no limit"),
        ({"maxOpenUploadsPerUser": 10_001}, "maxOpenUploadsPerUser must be 1-10000, or 0 for no limit"),
        ({"maxJobsPerUserPerHour": -1}, "maxJobsPerUserPerHour must be at least 1, or 0 for no limit"),
        ({"maxStoredBytesPerUser": -1}, "maxStoredBytesPerUser must be at least 1, or 0 for no limit"),
        ({"x264Preset": "quick"}, "x264Preset must be one of ultrafast, superfast, veryfast"),
    ],
)
def test_invalid_config_stops_the_program_with_a_reason(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_program(overrides)


def test_image_and_audio_settings_reach_their_functions_as_configured() -> None:
    derivatives = [{"name": "square", "longEdge": 600, "formats": ["jpeg"]}]  # watermark defaults to false
    run = run_program(
        {
            "imageDerivatives": derivatives,
            "watermarkText": "ACME Ltd",
            "watermarkOpacity": 1,
            "watermarkScale": 0.1,
            "loudnessTargetLufs": -16.5,
            "audioBitrateKbps": 192,
            "maxImagePixels": 20_000_000,
        }
    )
    ingest = run.named(FUNCTION, "ingest-function").inputs["environment"]["variables"]
    assert json.loads(ingest["IMAGE_DERIVATIVES"]) == derivatives
    assert (ingest["AUDIO_BITRATE_KBPS"], ingest["MAX_IMAGE_PIXELS"]) == ("192", "20000000")
    images = run.named(FUNCTION, "images-function").inputs["environment"]["variables"]
    assert (images["WATERMARK_TEXT"], images["WATERMARK_OPACITY"], images["WATERMARK_SCALE"]) == (
        "ACME Ltd",
        "1",
        "0.1",
    )
    assert images["MAX_IMAGE_PIXELS"] == "20000000" and "WATERMARK_LOGO_KEY" not in images
    audio = run.named(FUNCTION, "audio-function").inputs["environment"]["variables"]
    assert audio["LOUDNESS_TARGET_LUFS"] == "-16.5"


def test_the_local_cloud_layer_sets_a_watermark_so_the_demo_shows_one() -> None:
    local = yaml.safe_load((ROOT / "local" / "Pulumi.local.yaml").read_text())["config"]
    assert set(local) <= set(declared_keys(ROOT))
    assert local["media-pipeline:watermarkText"] == "media-pipeline"
    supplied = {"cdnBaseUrl": "http://127.0.0.1:8080"}  # what the local cloud supplies below the layer (local/cloud.py)
    run = run_program(supplied | {key.split(":", 1)[1]: value for key, value in local.items()})
    assert run.outputs["consoleUrl"] == "http://127.0.0.1:8080/console/index.html"
    env = run.named(FUNCTION, "images-function").inputs["environment"]["variables"]
    assert env["WATERMARK_TEXT"] == "media-pipeline"


def test_the_program_attaches_the_pinned_layer_in_its_region_and_calls_only_known_invokes(dev: ProgramRun) -> None:
    runtime = load_lambda_runtime()
    assert "{region}" in runtime.layer_arn_template and "python311-x86_64" in runtime.layer_arn_template
    zip_functions = [f for f in dev.of_type("aws:lambda/function:Function") if f.inputs.get("packageType") == "Zip"]
    assert len(zip_functions) == 4
    assert {tuple(f.inputs["layers"]) for f in zip_functions} == {(runtime.layer_arn(REGION),)}
    assert {f.inputs["runtime"] for f in zip_functions} == {runtime.name}
    assert set(dev.calls) == {
        "aws:index/getRegion:getRegion",
        "aws:index/getCallerIdentity:getCallerIdentity",
        "aws:ecr/getAuthorizationToken:getAuthorizationToken",
    }
