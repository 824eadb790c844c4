"""The deployed functions against docs/CONTRACTS.md: handlers, packaging, environment; and the images they run."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from functions.common.renditions import DEFAULT_RENDITIONS, Rendition, renditions_to_json
from local.artifacts.images import dockerignore_patterns, is_ignored
from tests.infra.harness import ROOT, ProgramRun

CONTRACTS = (ROOT / "docs" / "CONTRACTS.md").read_text()
FUNCTION = "aws:lambda/function:Function"
ENV_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`(?! \(optional\))")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", CONTRACTS, re.M | re.S)
    assert match, f"docs/CONTRACTS.md has no section {title!r}"
    return match.group(1)


def contract_handlers() -> dict[str, tuple[str, str]]:
    """Function -> (handler, packaging) from the Handlers table."""
    rows = re.findall(
        r"^\| (\w+) \| `([\w.]+)` \| (.+?) \|$",
        _section("Handlers (module paths; the image's CMD or the zip handler)"),
        re.M,
    )
    return {name: (handler, "Image" if "container image" in packaging else "Zip") for name, handler, packaging in rows}


def contract_environment() -> tuple[set[str], dict[str, set[str]]]:
    """(variables every function gets, required variables per function) from the Environment variables section."""
    section = _section("Environment variables")
    common = re.search(r"Every function:(.*?)\.\s", section, re.S)
    assert common
    own: dict[str, set[str]] = {}
    for entry in re.split(r"^- ", section, flags=re.M)[1:]:
        name, _, text = entry.partition(":")
        own[name.strip()] = set(ENV_NAME.findall(text))
    return set(ENV_NAME.findall(common.group(1))), own


def _service(function_inputs: dict) -> str:
    return function_inputs["environment"]["variables"]["POWERTOOLS_SERVICE_NAME"]


def test_the_contract_parses_into_nine_functions() -> None:
    handlers = contract_handlers()
    assert set(handlers) == {
        "api",
        "tracker",
        "ingest",
        "transcode",
        "webhooks",
        "submit",
        "images",
        "audio",
        "packager",
    }
    assert handlers["packager"] == ("functions.packager.handler.handler", "Image")
    assert handlers["images"] == ("functions.images.handler.handler", "Image")
    assert handlers["audio"] == ("functions.audio.handler.handler", "Image")
    common, own = contract_environment()
    assert {"JOBS_TABLE_NAME", "EVENT_BUS_NAME", "STACK_NAME", "LOG_LEVEL"} <= common
    assert "AWS_ENDPOINT_URL" not in common
    assert own["transcode"] == {"RENDITION"} and own["tracker"] == {"VALIDATED_TOPIC_ARN"}
    assert "WEBHOOK_ALLOWED_ADDRESSES" not in own["webhooks"] | own["api"]  # optional: only a local cloud sets it
    assert own["submit"] == {"MEDIACONVERT_QUEUE_ARN", "MEDIACONVERT_ROLE_ARN"}  # the endpoint override is optional
    # No watermark text or logo means no watermark: those two are set only when configured.
    assert {"MAX_IMAGE_PIXELS", "WATERMARK_OPACITY", "WATERMARK_SCALE"} <= own["images"]
    assert not {"WATERMARK_TEXT", "WATERMARK_LOGO_KEY"} & own["images"]
    assert "LOUDNESS_TARGET_LUFS" in own["audio"]
    limits = {"MAX_IMAGE_UPLOAD_BYTES", "MAX_AUDIO_UPLOAD_BYTES"}
    assert limits | {"MAX_IMAGE_PIXELS", "IMAGE_DERIVATIVES", "AUDIO_BITRATE_KBPS"} <= own["ingest"]
    assert limits <= own["api"]


def test_every_contract_function_is_deployed_with_its_handler_and_packaging(with_480p: ProgramRun) -> None:
    handlers = contract_handlers()
    deployed = {}
    for function in with_480p.of_type(FUNCTION):
        inputs = function.inputs
        handler = inputs["handler"] if inputs["packageType"] == "Zip" else inputs["imageConfig"]["commands"][0]
        deployed.setdefault(_service(inputs), set()).add((handler, inputs["packageType"]))
    assert deployed == {name: {spec} for name, spec in handlers.items()}


def test_every_function_gets_the_contract_environment(with_480p: ProgramRun) -> None:
    common, own = contract_environment()
    for function in with_480p.of_type(FUNCTION):
        env = function.inputs["environment"]["variables"]
        missing = (common | own[_service(function.inputs)]) - set(env)
        assert not missing, (function.name, missing)
        assert all(isinstance(value, str) and value for value in env.values()), function.name


def test_common_environment_values_name_this_stacks_resources(dev: ProgramRun) -> None:
    table = dev.named("aws:dynamodb/table:Table", "jobs-table").outputs["name"]
    uploads = dev.named("aws:s3/bucket:Bucket", "uploads-bucket").outputs["bucket"]
    outputs = dev.named("aws:s3/bucket:Bucket", "outputs-bucket").outputs["bucket"]
    for function in dev.of_type(FUNCTION):
        env = function.inputs["environment"]["variables"]
        assert env["JOBS_TABLE_NAME"] == table
        assert env["EVENT_BUS_NAME"] == "media-pipeline-dev"
        assert (env["UPLOADS_BUCKET"], env["OUTPUTS_BUCKET"]) == (uploads, outputs)
        assert env["STACK_NAME"] == "dev"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "MediaPipeline"
        assert env["LOG_LEVEL"] == "DEBUG"  # Pulumi.dev.yaml


def test_ingest_and_api_get_the_limits_from_config(dev: ProgramRun) -> None:
    ingest = dev.named(FUNCTION, "ingest-function").inputs["environment"]["variables"]
    assert ingest["RENDITIONS"] == renditions_to_json(DEFAULT_RENDITIONS)
    assert ingest["ENGINE"] == "lambda"
    assert ingest["MAX_UPLOAD_BYTES"] == str(2 * 1024**3)
    assert ingest["VALIDATED_TOPIC_ARN"] == dev.named("aws:sns/topic:Topic", "ingest-validated").outputs["arn"]
    assert (ingest["MAX_WIDTH"], ingest["MAX_HEIGHT"], ingest["MAX_DURATION_SECONDS"]) == ("3840", "2160", "14400")
    assert (ingest["MAX_IMAGE_UPLOAD_BYTES"], ingest["MAX_AUDIO_UPLOAD_BYTES"]) == (
        str(50 * 1024**2),
        str(500 * 1024**2),
    )
    assert (ingest["MAX_IMAGE_PIXELS"], ingest["AUDIO_BITRATE_KBPS"]) == ("50000000", "128")
    assert json.loads(ingest["IMAGE_DERIVATIVES"]) == [
        {"name": "thumb", "longEdge": 320, "formats": ["webp", "jpeg"], "watermark": False},
        {"name": "large", "longEdge": 1280, "formats": ["webp", "jpeg"], "watermark": True},
    ]
    api = dev.named(FUNCTION, "api-function").inputs["environment"]["variables"]
    assert api["ALLOWED_CONTENT_TYPES"].split(",") == [
        *("video/mp4", "video/quicktime", "video/x-matroska", "video/webm"),
        *(
            "image/jpeg",
            "image/png",
            "image/webp",
            "image/gif",
            "image/avif",
            "image/jpg",
            "image/pjpeg",
            "image/x-png",
        ),
        *("audio/mpeg", "audio/mp4", "audio/x-m4a", "audio/aac", "audio/wav", "audio/x-wav", "audio/flac"),
        *("audio/ogg", "audio/opus", "audio/webm", "audio/mp3", "audio/x-aac", "audio/wave", "audio/vnd.wave"),
        "audio/x-flac",
    ]
    assert (api["MAX_UPLOAD_BYTES"], api["MAX_IMAGE_UPLOAD_BYTES"], api["MAX_AUDIO_UPLOAD_BYTES"]) == (
        ingest["MAX_UPLOAD_BYTES"],
        ingest["MAX_IMAGE_UPLOAD_BYTES"],
        ingest["MAX_AUDIO_UPLOAD_BYTES"],
    )
    assert api["JOB_RETENTION_DAYS"] == "7"  # Pulumi.dev.yaml
    assert ingest["PROCESSING_DEADLINE_SECONDS"] == "7200"
    # a new job's deadline starts at its upload, which ingest sees; a re-run's when the api asks for it
    assert api["PROCESSING_DEADLINE_SECONDS"] == ingest["PROCESSING_DEADLINE_SECONDS"]


def test_images_and_audio_get_their_settings_from_config(dev: ProgramRun) -> None:
    images = dev.named(FUNCTION, "images-function").inputs
    env = images["environment"]["variables"]
    assert (env["MAX_IMAGE_PIXELS"], env["WATERMARK_OPACITY"], env["WATERMARK_SCALE"]) == ("50000000", "0.5", "0.25")
    assert env["MAX_IMAGE_UPLOAD_BYTES"] == str(50 * 1024**2)  # ingest's limit, checked again on the read
    assert "WATERMARK_TEXT" not in env and "WATERMARK_LOGO_KEY" not in env  # Pulumi.yaml: no watermark
    assert (images["timeout"], images["memorySize"]) == (120, 2048)
    assert images["ephemeralStorage"]["size"] >= 2 * 50 + 512  # source and output of a 50 MiB image
    audio = dev.named(FUNCTION, "audio-function").inputs
    assert audio["environment"]["variables"]["LOUDNESS_TARGET_LUFS"] == "-23"
    assert (audio["timeout"], audio["memorySize"]) == (900, 2048)
    assert audio["ephemeralStorage"]["size"] >= 2 * 500 + 512  # source and rendition of a 500 MiB upload
    ingest = dev.named(FUNCTION, "ingest-function").inputs
    assert ingest["ephemeralStorage"]["size"] >= 2048 + 512  # a copy of the largest upload of any kind


@pytest.mark.parametrize("name", ["480p", "720p", "1080p"])
def test_each_transcoder_knows_exactly_its_rendition_and_has_room_for_it(with_480p: ProgramRun, name: str) -> None:
    function = with_480p.named(FUNCTION, f"transcode-{name}-function").inputs
    rendition = Rendition(**json.loads(function["environment"]["variables"]["RENDITION"]))
    assert rendition.name == name
    assert function["timeout"] == 900 and function["memorySize"] == 4096
    assert function["ephemeralStorage"]["size"] >= 2 * 2048  # source and output of a 2 GiB upload


def test_the_build_context_holds_only_what_the_images_copy() -> None:
    patterns = dockerignore_patterns(ROOT)
    for left_out in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/e2e/conftest.py",
        ".local/cache/x",
        "README.md",
        "build/a.zip",
    ):
        assert is_ignored(left_out, patterns), left_out
    assert is_ignored("functions/api/__pycache__/handler.cpython-311.pyc", patterns)
    for sent in (
        "functions/api/handler.py",
        "containers/ffmpeg/requirements.txt",
        "containers/ffmpeg/Dockerfile",
        "containers/images/requirements.txt",
        "containers/images/Dockerfile",
    ):
        assert not is_ignored(sent, patterns), sent


def test_zip_functions_ship_their_own_archive_with_its_hash(dev: ProgramRun) -> None:
    handlers = contract_handlers()
    zip_functions = [f for f in dev.of_type(FUNCTION) if f.inputs["packageType"] == "Zip"]
    assert zip_functions
    for function in zip_functions:
        path = Path(function.inputs["code"].path)
        data = path.read_bytes()
        assert base64.b64encode(hashlib.sha256(data).digest()).decode() == function.inputs["sourceCodeHash"]
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        module = handlers[_service(function.inputs)][0].rsplit(".", 1)[0]
        assert function.inputs["handler"] == handlers[_service(function.inputs)][0]
        assert f"{module.replace('.', '/')}.py" in names, function.name
