"""Container images that rebuild the same: base pinned by digest, requirements pinned with hashes, a real handler."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from components.lambda_runtime import load_lambda_runtime
from components.packaging import handler_closure
from local.artifacts.images import context_files, dockerignore_patterns, parse_dockerfile
from tests.infra.harness import ROOT, ProgramRun, Recorded

DOCKERFILES = sorted((ROOT / "containers").glob("*/Dockerfile"))
FUNCTION = "aws:lambda/function:Function"
IMAGE = "docker-build:index:Image"


def pinned_requirements(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a hash-pinned requirements file; fails on any line that is not."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for entry in path.read_text().replace("\\\n", " ").splitlines():
        line = entry.split("#", 1)[0].strip() if not entry.strip().startswith("--hash") else entry.strip()
        if not line:
            continue
        requirement, *options = line.split(" --hash=")
        parsed = Requirement(requirement.strip())
        (specifier,) = parsed.specifier
        assert specifier.operator == "==", line
        hashes = [o.strip() for o in options]
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), line
        pins[canonicalize_name(parsed.name)] = (specifier.version, hashes)
    return pins


def handler_exists(handler: str) -> bool:
    module, _, function = handler.rpartition(".")
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    if not path.exists():
        return False
    return any(isinstance(n, ast.FunctionDef) and n.name == function for n in ast.parse(path.read_text()).body)


def test_there_is_an_image_and_each_is_one_the_program_builds(dev: ProgramRun) -> None:
    built = {Path(i.inputs["dockerfile"]["location"]).resolve() for i in dev.of_type(IMAGE)}
    assert DOCKERFILES and set(DOCKERFILES) == built


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_base_image_is_pinned_by_digest(dockerfile: Path) -> None:
    (base,) = [i.argument for i in parse_dockerfile(dockerfile.read_text()) if i.keyword == "FROM"]
    assert re.fullmatch(r"public\.ecr\.aws/lambda/python:3\.11[\w.-]*@sha256:[0-9a-f]{64}", base), base


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_requirements_are_pinned_with_hashes_and_installed_requiring_them(dockerfile: Path) -> None:
    runs = [i.argument for i in parse_dockerfile(dockerfile.read_text()) if i.keyword == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs and all("--require-hashes" in r for r in installs)
    assert pinned_requirements(dockerfile.parent / "requirements.txt")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_default_command_names_a_handler_that_exists(dockerfile: Path) -> None:
    (command,) = [json.loads(i.argument) for i in parse_dockerfile(dockerfile.read_text()) if i.keyword == "CMD"]
    assert len(command) == 1 and handler_exists(command[0]), command


def copied_into_task_root(dockerfile: Path) -> set[str]:
    """Paths under /var/task the Dockerfile's COPY instructions put files at (relative, as in the repository)."""
    patterns = dockerignore_patterns(ROOT)
    landed: set[str] = set()
    for instruction in parse_dockerfile(dockerfile.read_text()):
        if instruction.keyword != "COPY":
            continue
        *sources, destination = instruction.argument.replace("${LAMBDA_TASK_ROOT}", "/var/task").split()
        if not destination.startswith("/var/task/"):
            continue
        target = destination.removeprefix("/var/task/")
        for source in sources:
            # A directory's files, or a file copied into a directory (`dest/`, or one of several sources), keep their
            # names under the destination; a single file copied to a file path takes that path.
            into_directory = (ROOT / source).is_dir() or destination.endswith("/") or len(sources) > 1
            for _, name in context_files(ROOT, source, patterns):
                landed.add(f"{target.rstrip('/')}/{name}" if into_directory else target)
    return landed


def test_every_image_function_finds_the_code_its_handler_imports_in_its_image(dev: ProgramRun) -> None:
    checked = set()
    for function in dev.of_type(FUNCTION):
        if function.inputs["packageType"] != "Image":
            continue
        dockerfile = built_dockerfile(dev, function)
        (handler,) = function.inputs["imageConfig"]["commands"]
        missing = set(handler_closure(ROOT, handler).files) - copied_into_task_root(dockerfile)
        assert not missing, (function.name, dockerfile.parent.name, sorted(missing))
        checked.add(function.name)
    assert {"images-function", "audio-function", "ingest-function"} <= checked


def test_every_image_function_runs_a_handler_that_exists(dev: ProgramRun) -> None:
    images = [f for f in dev.of_type(FUNCTION) if f.inputs["packageType"] == "Image"]
    assert images
    for function in images:
        (handler,) = function.inputs["imageConfig"]["commands"]
        assert handler_exists(handler), (function.name, handler)


def built_dockerfile(run: ProgramRun, function: Recorded) -> Path:
    """The Dockerfile of the image an image function runs (the docker-build Image whose digest its URI names)."""
    uri = function.inputs["imageUri"]
    (image,) = [i for i in run.of_type(IMAGE) if uri.endswith(f"@{i.outputs['digest']}")]
    return Path(image.inputs["dockerfile"]["location"]).resolve()


def test_the_images_function_runs_the_pillow_image_and_the_others_the_ffmpeg_image(dev: ProgramRun) -> None:
    images = {
        f.name: built_dockerfile(dev, f).parent.name
        for f in dev.of_type(FUNCTION)
        if f.inputs["packageType"] == "Image"
    }
    assert images == {
        "ingest-function": "ffmpeg",
        "transcode-720p-function": "ffmpeg",
        "transcode-1080p-function": "ffmpeg",
        "audio-function": "ffmpeg",
        "packager-function": "ffmpeg",
        "images-function": "images",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_image_and_the_layer_agree_on_every_package_they_share(dockerfile: Path) -> None:
    image = pinned_requirements(dockerfile.parent / "requirements.txt")
    layer = {
        canonicalize_name(Requirement(r).name): str(Requirement(r).specifier)[2:]
        for r in load_lambda_runtime().layer_packages
    }
    shared = set(image) & set(layer)
    assert {"aws-lambda-powertools", "pydantic", "pydantic-core"} <= shared
    assert {name: image[name][0] for name in shared} == {name: layer[name] for name in shared}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_image_carries_the_sdk_the_zip_functions_run_with(dockerfile: Path) -> None:
    image = pinned_requirements(dockerfile.parent / "requirements.txt")
    for line in load_lambda_runtime().sdk:
        requirement = Requirement(line)
        assert image[canonicalize_name(requirement.name)][0] == next(iter(requirement.specifier)).version, line


def test_what_the_image_functions_import_is_pinned_in_the_image_or_provided_by_the_runtime(dev: ProgramRun) -> None:
    sdk = {canonicalize_name(Requirement(r).name) for r in load_lambda_runtime().sdk}
    owners = importlib.metadata.packages_distributions()
    for function in dev.of_type(FUNCTION):
        if function.inputs["packageType"] != "Image":
            continue
        pins = set(pinned_requirements(built_dockerfile(dev, function).parent / "requirements.txt"))
        for name in handler_closure(ROOT, function.inputs["imageConfig"]["commands"][0]).third_party:
            distributions = {canonicalize_name(d) for d in owners[name]}
            assert distributions & (pins | sdk), (function.name, name)
