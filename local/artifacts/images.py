"""A Lambda container image's `/var/task`, assembled from its Dockerfile the way `docker build` would, without Docker.

The instructions a Lambda Python image needs are carried out on the local disk: `FROM` an AWS Lambda Python base image
(whose runtime and SDK the local cloud provides), `ARG`/`ENV`, `COPY` from the build context (honouring
`.dockerignore`) into `/var/task` or `/tmp`, `RUN pip install --target /var/task ...` (run with this machine's pip,
for the function's platform) and `rm` of build files, `WORKDIR /var/task` and `CMD`. Anything else is refused with the
instruction named, never approximated: an image the local cloud cannot assemble is one it cannot vouch for.

Each `RUN pip install` is a layer cached by everything before it and what it reads, as Docker caches layers, so a
change to the code re-copies the code but does not reinstall the requirements.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from local.artifacts.cache import ensure_directory

TASK_ROOT = "/var/task"
BASE_IMAGE = re.compile(r"^public\.ecr\.aws/lambda/python:(?P<version>\d+\.\d+)[^@\s]*(@sha256:[0-9a-f]{64})?$")
# What AWS's Lambda Python base images set (their own Dockerfiles): the task root, the runtime's directory, PATH.
BASE_ENVIRONMENT = {
    "LAMBDA_TASK_ROOT": TASK_ROOT,
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
}
PIP_FLAGS_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "--target", "-t"}
PIP_FLAGS_DROPPED = {"--no-cache-dir"}  # the local pip cache only saves downloads; each layer is rebuilt cleanly
PIP_FLAGS_KEPT = {"--require-hashes", "--no-deps", "--only-binary=:all:", "--no-compile", "--upgrade", "-U", "-q"}


class ImageError(ValueError):
    """The Dockerfile asks for something the local assembly does not do."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str
    line: int


@dataclass
class AssembledImage:
    """A Lambda image's task root on disk, with the environment and command its Dockerfile sets."""

    task_root: Path
    python: str
    """The base image's Python version, `major.minor`."""
    environment: dict[str, str]
    """ENV as the image sets it, with paths under /var/task pointing into `task_root`."""
    command: list[str]
    """The image's CMD (the handler)."""


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        pending += line
        keyword, _, argument = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), argument.strip(), start))
        pending = ""
    if pending:
        raise ImageError(f"line {start}: the Dockerfile ends inside a continued instruction")
    return instructions


def dockerignore_patterns(context: Path) -> list[tuple[bool, str]]:
    """`.dockerignore` as (negated, pattern) pairs, in order."""
    path = context / ".dockerignore"
    if not path.exists():
        return []
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip("/")).replace(os.sep, "/")
        patterns.append((negated, pattern))
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    regex, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex, index = regex + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            regex, index = regex + ".*", index + 2
        elif pattern[index] in "*?":
            regex, index = regex + ("[^/]*" if pattern[index] == "*" else "[^/]"), index + 1
        else:
            regex, index = regex + re.escape(pattern[index]), index + 1
    return re.compile(regex + r"\Z")


def _pattern_matches(pattern: str, relative: str) -> bool:
    """Docker's matching: `**` spans directories, `*` and `?` do not; a matched directory excludes its contents."""
    regex = _pattern_regex(pattern)
    parts = relative.split("/")
    return any(regex.match("/".join(parts[:depth])) for depth in range(1, len(parts) + 1))


def is_ignored(relative: str, patterns: list[tuple[bool, str]]) -> bool:
    ignored = False
    for negated, pattern in patterns:
        if _pattern_matches(pattern, relative):
            ignored = not negated
    return ignored


def context_files(context: Path, source: str, patterns: list[tuple[bool, str]]) -> Iterator[tuple[Path, str]]:
    """(path, name relative to the copied source) of each file a `COPY source` sends, .dockerignore honoured;
    directories nothing could be re-included from are not walked."""
    base = context.resolve()
    root = (base / source).resolve()
    if not root.is_relative_to(base):
        raise ImageError(f"COPY {source}: outside the build context")
    if root.is_file():
        if not is_ignored(root.relative_to(base).as_posix(), patterns):
            yield root, root.name
        return
    if not root.is_dir():
        raise ImageError(f"COPY {source}: not found in the build context {context}")
    reincluded = [pattern for negated, pattern in patterns if negated]
    for directory, subdirectories, files in os.walk(root):
        here = Path(directory)
        kept = []
        for name in sorted(subdirectories):
            relative = (here / name).relative_to(base).as_posix()
            if not is_ignored(relative, patterns) or any(p.startswith(f"{relative}/") for p in reincluded):
                kept.append(name)
        subdirectories[:] = kept
        for name in sorted(files):
            path = here / name
            if not is_ignored(path.relative_to(base).as_posix(), patterns):
                yield path, path.relative_to(root).as_posix()


def image_digest(context: Path, dockerfile: Path) -> str:
    """A digest of everything a build reads: the Dockerfile and each file its COPY instructions send (.dockerignore
    honoured), so the local image reference changes exactly when the image would."""
    digest = hashlib.sha256(dockerfile.read_bytes())
    patterns = dockerignore_patterns(context)
    for instruction in parse_dockerfile(dockerfile.read_text()):
        if instruction.keyword != "COPY":
            continue
        sources = [w for w in shlex.split(instruction.argument) if not w.startswith("--")][:-1]
        for source in sources:
            for path, name in context_files(context, source, patterns):
                digest.update(f"{source}/{name}".encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return f"sha256:{digest.hexdigest()}"


def _expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), ""), value)


def _parse_assignments(argument: str) -> dict[str, str]:
    words = shlex.split(argument)
    if len(words) >= 2 and "=" not in words[0]:  # legacy `ENV KEY value`
        return {words[0]: " ".join(words[1:])}
    assignments = {}
    for word in words:
        key, separator, value = word.partition("=")
        if not separator:
            raise ImageError(f"ENV/ARG {argument!r}: expected KEY=value")
        assignments[key] = value
    return assignments


@dataclass
class _Build:
    context: Path
    cache: Path
    platform: str
    progress: Callable[[str], None]
    variables: dict[str, str] = field(default_factory=lambda: dict(BASE_ENVIRONMENT))
    environment: dict[str, str] = field(default_factory=lambda: dict(BASE_ENVIRONMENT))
    layers: list[Path] = field(default_factory=list)
    """Directories overlaid, in order, onto the task root."""
    scratch: dict[str, bytes] = field(default_factory=dict)
    """Files under /tmp, by path."""
    command: list[str] = field(default_factory=list)
    base_python: str = ""
    running_key: str = ""

    def key(self, *parts: str | bytes) -> str:
        digest = hashlib.sha256(self.running_key.encode())
        for part in parts:
            digest.update(part if isinstance(part, bytes) else part.encode())
            digest.update(b"\0")
        self.running_key = digest.hexdigest()
        return self.running_key


def _destination(path: str, instruction: Instruction) -> tuple[str, str]:
    """('task', relative) or ('tmp', absolute) for a path inside the image."""
    normal = PurePosixPath(os.path.normpath(path)).as_posix()
    if normal == TASK_ROOT or normal.startswith(TASK_ROOT + "/"):
        return "task", normal[len(TASK_ROOT) :].lstrip("/")
    if normal == "/tmp" or normal.startswith("/tmp/"):
        return "tmp", normal
    where = f"line {instruction.line}: {instruction.keyword} to {path}"
    raise ImageError(f"{where}: only {TASK_ROOT} and /tmp are assembled locally")


def _copy(build: _Build, instruction: Instruction) -> None:
    words = [w for w in shlex.split(_expand(instruction.argument, build.variables)) if not w.startswith("--chown")]
    if any(w.startswith("--") for w in words) or len(words) < 2:
        raise ImageError(f"line {instruction.line}: COPY {instruction.argument}: only `COPY src... dest` is assembled")
    *sources, destination = words
    patterns = dockerignore_patterns(build.context)
    files: list[tuple[Path, str]] = []
    for source in sources:
        sent = list(context_files(build.context, source, patterns))
        if not sent:  # Docker fails the build when a source is excluded from the context
            raise ImageError(f"line {instruction.line}: COPY {source}: excluded from the build context (.dockerignore)")
        files.extend(sent)
    into_directory = destination.endswith("/") or len(files) > 1 or (build.context / sources[0]).is_dir()
    kind, target = _destination(destination, instruction)
    names = {(f"{target.rstrip('/')}/{name}" if into_directory else target).lstrip("/"): path for path, name in files}
    if kind == "tmp":
        for name, path in names.items():
            build.scratch["/" + name] = path.read_bytes()
        return
    key = build.key("COPY", *[f"{name}\0{hashlib.sha256(p.read_bytes()).hexdigest()}" for name, p in names.items()])
    layer = build.cache / "image-layers" / key

    def write(directory: Path) -> None:
        for name, path in names.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, directory / name)

    build.layers.append(ensure_directory(layer, write))


def _pip_install(build: _Build, words: list[str], instruction: Instruction) -> None:
    arguments: list[str] = []
    target: str | None = None
    read: list[bytes] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word in PIP_FLAGS_WITH_VALUE:
            value = words[index + 1]
            index += 2
            if word in ("--target", "-t"):
                target = value
                continue
            kind, path = _destination(value, instruction)
            if kind != "tmp" or path not in build.scratch:
                raise ImageError(f"line {instruction.line}: pip {word} {value}: not a file copied into /tmp")
            read.append(build.scratch[path])
            arguments += [word, path]
            continue
        if word in PIP_FLAGS_DROPPED:
            index += 1
            continue
        if word.startswith("-") and word not in PIP_FLAGS_KEPT:
            raise ImageError(f"line {instruction.line}: pip option {word} is not assembled locally")
        arguments.append(word)
        index += 1
    if target is None or _destination(target, instruction) != ("task", ""):
        raise ImageError(f"line {instruction.line}: pip install must name --target {TASK_ROOT}")
    key = build.key("RUN pip install", " ".join(arguments), *read)

    def install(directory: Path) -> None:
        scratch = directory.with_name(directory.name + ".files")
        shutil.rmtree(scratch, ignore_errors=True)
        mapped = []
        for word in arguments:
            if word not in build.scratch:
                mapped.append(word)
                continue
            local = scratch / word.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(build.scratch[word])
            mapped.append(str(local))
        build.progress(f"installing the image's requirements with pip (once per change): {' '.join(arguments)}")
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
        command += ["--only-binary=:all:", "--platform", build.platform, "--python-version", build.base_python]
        command += ["--implementation", "cp", "--target", str(directory), *mapped]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
        if result.returncode != 0:
            raise ImageError(f"line {instruction.line}: pip install failed:\n{result.stderr[-2000:]}")

    build.layers.append(ensure_directory(build.cache / "image-layers" / key, install))


def _run(build: _Build, instruction: Instruction) -> None:
    for command in _expand(instruction.argument, build.variables).split("&&"):
        words = shlex.split(command)
        if words[:2] == ["pip", "install"] or words[:2] == ["pip3", "install"]:
            _pip_install(build, words[2:], instruction)
        elif words[:4] in (["python", "-m", "pip", "install"], ["python3", "-m", "pip", "install"]):
            _pip_install(build, words[4:], instruction)
        elif words and words[0] == "rm":
            for path in [w for w in words[1:] if not w.startswith("-")]:
                kind, name = _destination(path, instruction)
                if kind != "tmp":
                    raise ImageError(f"line {instruction.line}: rm {path}: only build files in /tmp are removed")
                build.scratch.pop(name, None)
        else:
            raise ImageError(f"line {instruction.line}: RUN {command.strip()!r} is not assembled locally")


def _from(build: _Build, instruction: Instruction) -> None:
    match = BASE_IMAGE.match(instruction.argument.split(" AS ")[0].strip())
    if not match:
        raise ImageError(f"line {instruction.line}: FROM {instruction.argument}: only AWS's Lambda Python base images")
    build.base_python = match.group("version")
    build.key("FROM", instruction.argument)


def assemble_image(
    context: Path,
    dockerfile: Path,
    cache: Path,
    platform: str = "manylinux2014_x86_64",
    progress: Callable[[str], None] = lambda message: None,
) -> AssembledImage:
    """The image's /var/task under `cache`, built once per content (cached by the Dockerfile and what it copies)."""
    build = _Build(context=context.resolve(), cache=cache, platform=platform, progress=progress)
    for instruction in parse_dockerfile(dockerfile.read_text()):
        if instruction.keyword == "FROM":
            _from(build, instruction)
        elif not build.base_python:
            raise ImageError(f"line {instruction.line}: {instruction.keyword} before FROM")
        elif instruction.keyword in ("ARG", "ENV"):
            values = {k: _expand(v, build.variables) for k, v in _parse_assignments(instruction.argument).items()}
            build.variables |= values
            if instruction.keyword == "ENV":
                build.environment |= values
                build.key("ENV", json.dumps(values, sort_keys=True))
        elif instruction.keyword == "COPY":
            _copy(build, instruction)
        elif instruction.keyword == "RUN":
            _run(build, instruction)
        elif instruction.keyword == "WORKDIR":
            if _destination(_expand(instruction.argument, build.variables), instruction) != ("task", ""):
                raise ImageError(f"line {instruction.line}: WORKDIR must be {TASK_ROOT}")
        elif instruction.keyword == "CMD":
            command = json.loads(instruction.argument)
            if not isinstance(command, list) or not command:
                raise ImageError(f"line {instruction.line}: CMD must be a JSON list naming the handler")
            build.command = [str(c) for c in command]
        else:
            raise ImageError(f"line {instruction.line}: {instruction.keyword} is not assembled locally")
    if not build.base_python:
        raise ImageError(f"{dockerfile}: no FROM")
    task_root = build.cache / "images" / build.key("task root")

    def overlay(directory: Path) -> None:
        for layer in build.layers:
            # Hard links: layers are never modified once complete, so the task root shares their files.
            shutil.copytree(layer, directory, dirs_exist_ok=True, copy_function=_link_or_copy)

    ensure_directory(task_root, overlay)
    environment = {k: v.replace(TASK_ROOT, str(task_root)) for k, v in build.environment.items()}
    return AssembledImage(task_root, build.base_python, environment, build.command)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
