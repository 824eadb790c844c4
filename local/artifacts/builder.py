"""What a local worker runs: the artifact a function resource declares, made ready on disk, and nothing else.

A zip function runs its declared archive, extracted, with the pinned packages of each declared layer and the runtime's
SDK (`components/lambda_runtime.toml`), on an isolated interpreter. An image function runs its image's `/var/task`,
assembled from the Dockerfile of the program's image build (`local/artifacts/images.py`), then the same SDK.
Nothing from the development environment is on the worker's `sys.path`: a handler that needs a package its artifact
lacks fails at import as it would in Lambda. Everything is cached by content under `.local/cache`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components.lambda_runtime import LambdaRuntime
from local.artifacts.cache import ensure_directory
from local.artifacts.images import BASE_ENVIRONMENT, AssembledImage, assemble_image
from local.engine.deployment import DeclaredResource, Deployment, ResourceType

CACHE_ROOT = Path(__file__).resolve().parents[2] / ".local" / "cache"  # the repository's .local/, beside the state
# Lambda's python3.11 runtime runs on Amazon Linux 2 (glibc 2.26): wheels for manylinux2014 (glibc 2.17) are what
# a layer built for it carries.
WHEEL_PLATFORM = "manylinux2014_x86_64"
# What Lambda's PATH holds before an image adds to it (the base image's ENV), on this machine's directories.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


class ArtifactError(ValueError):
    """A function's artifact cannot be made ready as declared."""


@dataclass(frozen=True)
class Artifact:
    """A function as its worker runs it."""

    handler: str
    task_root: Path
    """The function's own code (/var/task), the worker's working directory."""
    sys_path: tuple[Path, ...]
    """Import path in Lambda's order: the task root, the layers' `python` directories, the runtime's SDK."""
    environment: dict[str, str] = field(default_factory=dict)
    """What the runtime or the image sets (LAMBDA_TASK_ROOT, PATH, ...), under the function's own variables."""
    python: str = "3.11"


def _content_key(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def archive_files(archive: Any, base: Path) -> dict[str, bytes]:
    """The files a Pulumi archive stands for, by path in the archive (FileArchive of a directory or zip,
    AssetArchive of assets and archives); relative paths are the program's, resolved against `base`."""
    if isinstance(archive, pulumi.FileArchive):
        path = (base / archive.path).resolve()
        if path.is_dir():
            return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as opened:
                return {n: opened.read(n) for n in opened.namelist() if not n.endswith("/")}
        raise ArtifactError(f"archive {path}: only directories and zip files are read locally")
    if isinstance(archive, pulumi.AssetArchive):
        files: dict[str, bytes] = {}
        for name, member in archive.assets.items():
            if isinstance(member, pulumi.FileAsset):
                files[name] = (base / member.path).read_bytes()
            elif isinstance(member, pulumi.StringAsset):
                files[name] = member.text.encode()
            elif isinstance(member, pulumi.Archive):
                files |= {f"{name}/{inner}": data for inner, data in archive_files(member, base).items()}
            else:
                raise ArtifactError(f"asset {name}: {type(member).__name__} is not read locally (no network)")
        return files
    raise ArtifactError(f"code {type(archive).__name__}: only file and asset archives are read locally")


def worker_interpreter(python: str) -> str:
    """An interpreter of the runtime's Python version: this one if it matches, else `pythonX.Y` on PATH."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python:
        return sys.executable
    found = shutil.which(f"python{python}")
    if found is None:
        raise ArtifactError(f"the functions run on Python {python}: install python{python} to run them locally")
    return found


class ArtifactBuilder:
    """Makes each function's artifact ready, once per content, reporting first-time work through `progress`."""

    def __init__(
        self,
        deployment: Deployment,
        project_dir: Path,
        runtime: LambdaRuntime,
        cache_root: Path = CACHE_ROOT,
        progress: Callable[[str], None] = lambda message: None,
    ) -> None:
        self._deployment = deployment
        self._project_dir = project_dir
        self._runtime = runtime
        self._cache = cache_root
        self._progress = progress

    def _pip_target(self, kind: str, requirements: tuple[str, ...]) -> Path:
        key = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:24]

        def install(directory: Path) -> None:
            self._progress(f"installing the pinned {kind} packages for the local runtime (first run only)")
            command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            command += ["--no-deps", "--no-compile", "--only-binary=:all:", "--platform", WHEEL_PLATFORM]
            command += ["--python-version", self._runtime.python, "--implementation", "cp"]
            command += ["--target", str(directory), *requirements]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise ArtifactError(f"pip could not install the {kind} packages:\n{result.stderr[-2000:]}")

        return ensure_directory(self._cache / kind / key, install)

    def sdk(self) -> Path:
        """The runtime's SDK (boto3 and what it needs), as /var/runtime holds it."""
        return self._pip_target("sdk", self._runtime.sdk)

    def layer(self, arn: str) -> Path:
        """A declared layer's `python` directory (/opt/python); only the pinned layer is known locally."""
        if arn != self._runtime.layer_arn(self._deployment.region):
            known = self._runtime.layer_arn(self._deployment.region)
            raise ArtifactError(f"layer {arn}: the local cloud provides only {known} (components/lambda_runtime.toml)")
        return self._pip_target("layer", self._runtime.layer_packages)

    def for_function(self, function: DeclaredResource) -> Artifact:
        inputs = function.inputs
        if (inputs.get("packageType") or "Zip") == "Image":
            return self._image_function(function)
        runtime = inputs.get("runtime")
        if runtime != self._runtime.name:
            expected = self._runtime.name
            raise ArtifactError(f"function {function.name}: runtime {runtime}; the local cloud runs {expected}")
        if not inputs.get("handler"):
            raise ArtifactError(f"zip function {function.name} declares no handler")
        files = archive_files(inputs["code"], self._project_dir)
        task_root = self._cache / "zip" / _content_key(files)

        def extract(directory: Path) -> None:
            for name, data in files.items():
                (directory / name).parent.mkdir(parents=True, exist_ok=True)
                (directory / name).write_bytes(data)

        ensure_directory(task_root, extract)
        layers = tuple(self.layer(str(arn)) for arn in inputs.get("layers") or [])
        sdk = self.sdk()
        return Artifact(
            handler=str(inputs["handler"]),
            task_root=task_root,
            sys_path=(task_root, *layers, sdk),
            environment={"LAMBDA_TASK_ROOT": str(task_root), "LAMBDA_RUNTIME_DIR": str(sdk), "PATH": SYSTEM_PATH},
            python=self._runtime.python,
        )

    def _image(self, function: DeclaredResource) -> AssembledImage:
        uri = str(function.inputs.get("imageUri") or "")
        for image in self._deployment.of_type(ResourceType.DOCKER_IMAGE):
            digest = image.state.get("digest")
            if digest and uri.endswith(f"@{digest}"):
                context = self._project_dir / image.inputs["context"]["location"]
                dockerfile = self._project_dir / image.inputs["dockerfile"]["location"]
                return assemble_image(context, dockerfile, self._cache, WHEEL_PLATFORM, self._progress)
        raise ArtifactError(
            f"image function {function.name}: {uri} is not an image this program builds (a docker-build Image whose "
            "digest it names); the local cloud runs only images it can assemble from their Dockerfile"
        )

    def _image_function(self, function: DeclaredResource) -> Artifact:
        image = self._image(function)
        if image.python != self._runtime.python:
            expected = self._runtime.python
            raise ArtifactError(f"function {function.name}: base image Python {image.python}; local runs {expected}")
        commands = (function.inputs.get("imageConfig") or {}).get("commands") or image.command
        if not commands:
            raise ArtifactError(f"image function {function.name}: neither image_config.commands nor the image's CMD")
        sdk = self.sdk()
        environment = {
            k: v.replace(BASE_ENVIRONMENT["LAMBDA_RUNTIME_DIR"], str(sdk)) for k, v in image.environment.items()
        }
        environment["PATH"] = environment["PATH"].replace(BASE_ENVIRONMENT["PATH"], SYSTEM_PATH)
        return Artifact(
            handler=str(commands[0]),
            task_root=image.task_root,
            sys_path=(image.task_root, sdk),
            environment=environment,
            python=image.python,
        )
