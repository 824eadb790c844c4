"""Zip archives for Lambda functions, built from what a handler imports: only what it needs, the same bytes every time.

A function's archive holds the modules its handler imports (read from the source, transitively, within the source
package), the `__init__.py` of every package on the way, and every third-party distribution those modules import that
neither the runtime nor its layers provide, copied from the environment running the program with its `*.dist-info`
(packages such as python-ulid read their own metadata at import). Entries are sorted and carry fixed timestamps and
modes, so two builds of the same sources give the same bytes and the same hash. Plain functions, no Pulumi here.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.metadata
import io
import os
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# The zip format's earliest date: the entries' timestamps carry no information, so none differs between builds.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644
# Metadata files that say how a distribution was installed here (by pip or uv, with or without bytecode), not what
# it is: left out, so the archive is the same whichever installer set up the building environment.
INSTALLATION_RECORDS = frozenset({"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"})


class PackagingError(ValueError):
    """A handler's archive cannot be built as asked: a module or an import that cannot be placed."""


@dataclass(frozen=True)
class BuiltArchive:
    """A zip archive on disk and what identifies its bytes."""

    path: Path
    sha256: str
    """Hex digest of the archive's bytes."""
    entries: tuple[str, ...]
    """Names in the archive, sorted."""

    @property
    def base64_sha256(self) -> str:
        """The digest as Lambda's CodeSha256 and Pulumi's `source_code_hash` spell it."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


@dataclass(frozen=True)
class HandlerClosure:
    """What a handler's module needs from its source tree and from installed distributions."""

    files: tuple[str, ...]
    """Source files relative to the source root (e.g. `functions/api/handler.py`), sorted."""
    third_party: tuple[str, ...]
    """Top-level names of imported modules that are neither in the source package nor in the standard library."""


def _module_file(source_root: Path, module: str) -> Path | None:
    base = source_root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of every module an import statement anywhere in `source` may load (relative ones resolved)."""
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=module)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package_parts):
                    raise PackagingError(f"{module}: relative import beyond the top-level package")
                base = package_parts[: len(package_parts) - (node.level - 1)]
                prefix = ".".join([*base, *([node.module] if node.module else [])])
            else:
                prefix = node.module or ""
            names.add(prefix)
            # `from package import name` may name a submodule: keep both readings, files decide.
            names.update(f"{prefix}.{alias.name}" for alias in node.names if alias.name != "*")
    return {name for name in names if name}


def handler_closure(source_root: Path, handler: str) -> HandlerClosure:
    """Files and third-party imports a handler (`package.module.function`) needs, following imports transitively."""
    module = handler.rpartition(".")[0]
    package = module.split(".", 1)[0]
    if not module or _module_file(source_root, module) is None:
        raise PackagingError(f"handler {handler!r}: no module {module!r} under {source_root}")
    files: set[Path] = set()
    third_party: set[str] = set()
    pending, seen = [module], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # every package on the way is imported first
            parent = ".".join(parts[:depth])
            path = _module_file(source_root, parent)
            if path is not None and path not in files:
                files.add(path)
                pending.extend(imported_names(path.read_text(), parent, path.name == "__init__.py"))
        top = parts[0]
        if top != package and top not in sys.stdlib_module_names and top != "__future__":
            third_party.add(top)
    return HandlerClosure(
        files=tuple(sorted(p.relative_to(source_root).as_posix() for p in files)),
        third_party=tuple(sorted(third_party)),
    )


def _requirements_needed(distribution: importlib.metadata.Distribution) -> list[str]:
    """Names of the distributions `distribution` requires on the Lambda runtime's Python (no extras)."""
    environment = {**default_environment(), "python_version": "3.11", "python_full_version": "3.11.0"}
    environment |= {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
    needed = []
    for line in distribution.requires or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            needed.append(canonicalize_name(requirement.name))
    return needed


def vendored_distributions(top_level_names: Iterable[str], provided: frozenset[str]) -> list[str]:
    """Distributions (canonical names, sorted) to copy into the archive: those the imports need, with their own
    requirements, except what the runtime and its layers already provide."""
    owners = importlib.metadata.packages_distributions()
    pending: list[str] = []
    for name in top_level_names:
        if name not in owners:
            raise PackagingError(f"{name!r} is imported but no installed distribution provides it")
        pending.extend(canonicalize_name(owner) for owner in owners[name])
    vendored: set[str] = set()
    while pending:
        name = pending.pop()
        if name in provided or name in vendored:
            continue
        vendored.add(name)
        pending.extend(_requirements_needed(importlib.metadata.distribution(name)))
    return sorted(vendored)


def distribution_files(name: str) -> dict[str, Path]:
    """An installed pure-Python distribution's importable files and metadata, by archive name; bytecode left out."""
    distribution = importlib.metadata.distribution(name)
    wheel = distribution.read_text("WHEEL") or ""
    if "Root-Is-Purelib: true" not in wheel:
        raise PackagingError(f"{name} contains compiled code: provide it from a layer built for Lambda instead")
    files: dict[str, Path] = {}
    for entry in distribution.files or []:
        relative = entry.as_posix()
        if relative.startswith("..") or "__pycache__" in entry.parts or relative.endswith(".pyc"):
            continue  # console scripts outside site-packages, and bytecode
        if entry.parent.name.endswith(".dist-info") and entry.name in INSTALLATION_RECORDS:
            continue
        files[relative] = Path(str(distribution.locate_file(entry)))
    return files


def write_zip(entries: Mapping[str, bytes], destination: Path) -> BuiltArchive:
    """Writes `entries` as a zip whose bytes depend only on the names and contents, and returns what identifies it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.external_attr = FILE_MODE << 16
            info.create_system = 3  # unix, so the mode above is read as such
            # Stored, not deflated: compressed bytes depend on the zlib build, and the archives are small anyway.
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, entries[name])
    data = buffer.getvalue()
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(destination)
    return BuiltArchive(destination, hashlib.sha256(data).hexdigest(), tuple(sorted(entries)))


def build_function_archive(source_root: Path, handler: str, provided: frozenset[str], build_dir: Path) -> BuiltArchive:
    """The archive of one handler: its module closure plus the distributions it needs that are not provided."""
    closure = handler_closure(source_root, handler)
    sources: dict[str, Path] = {name: source_root / name for name in closure.files}
    for distribution in vendored_distributions(closure.third_party, provided):
        sources |= distribution_files(distribution)
    module = handler.rpartition(".")[0]
    return write_zip({name: path.read_bytes() for name, path in sources.items()}, build_dir / f"{module}.zip")
