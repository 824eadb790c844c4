"""Zip archives built from handlers' imports: contents, vendored metadata, determinism, and the errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from components.lambda_runtime import load_lambda_runtime
from components.packaging import (
    FIXED_DATE_TIME,
    PackagingError,
    build_function_archive,
    handler_closure,
    imported_names,
    vendored_distributions,
)
from tests.infra.harness import ROOT

PROVIDED = load_lambda_runtime().provided_distributions()
# The packages each function borrows modules from today (issue 9 moves the shared contracts to one home).
ZIP_HANDLERS = {
    "api": "functions.api.handler.handler",
    "tracker": "functions.tracker.handler.handler",
    "submit": "functions.submit.handler.handler",
    "webhooks": "functions.webhooks.handler.handler",
}


def entries(path: Path) -> list[zipfile.ZipInfo]:
    return zipfile.ZipFile(io.BytesIO(path.read_bytes())).infolist()


@pytest.mark.parametrize("name", sorted(ZIP_HANDLERS))
def test_an_archive_holds_its_handler_and_what_it_imports_and_nothing_else(name: str, tmp_path: Path) -> None:
    archive = build_function_archive(ROOT, ZIP_HANDLERS[name], PROVIDED, tmp_path)
    names = set(archive.entries)
    assert f"functions/{name}/handler.py" in names
    assert {"functions/__init__.py", f"functions/{name}/__init__.py", "functions/common/__init__.py"} <= names
    # A function shares only common/ and contracts/ with the others: no other function's code is ever carried.
    others = {"ingest", "transcode", *ZIP_HANDLERS} - {name}
    assert not [n for n in names if n.split("/")[1] in others], sorted(names)
    assert "functions/contracts/jobs.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # What the runtime and the layer provide is never carried.
    assert not [n for n in names if n.split("/")[0] in {"boto3", "botocore", "aws_lambda_powertools", "pydantic"}]


@pytest.mark.parametrize("name", ["api", "webhooks"])
def test_a_vendored_distribution_travels_with_the_metadata_it_reads_at_import(name: str, tmp_path: Path) -> None:
    names = build_function_archive(ROOT, ZIP_HANDLERS[name], PROVIDED, tmp_path).entries
    assert "ulid/__init__.py" in names
    metadata = [n for n in names if n.startswith("python_ulid-") and n.endswith(".dist-info/METADATA")]
    assert len(metadata) == 1, names
    # How it was installed here (pip or uv, bytecode or not) stays out: the archive is the same on every machine.
    assert not [n for n in names if n.rsplit("/", 1)[-1] in {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}]


def test_two_builds_give_the_same_bytes_with_fixed_timestamps_and_modes(tmp_path: Path) -> None:
    first = build_function_archive(ROOT, ZIP_HANDLERS["api"], PROVIDED, tmp_path / "one")
    second = build_function_archive(ROOT, ZIP_HANDLERS["api"], PROVIDED, tmp_path / "two")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 and len(first.base64_sha256) == 44
    infos = entries(first.path)
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {FIXED_DATE_TIME}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_a_changed_source_changes_the_hash(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "__init__.py").write_text("")
    (source / "pkg" / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    before = build_function_archive(source, "pkg.handler.handler", PROVIDED, tmp_path / "out")
    (source / "pkg" / "handler.py").write_text("def handler(event, context):\n    return 2\n")
    after = build_function_archive(source, "pkg.handler.handler", PROVIDED, tmp_path / "out")
    assert before.sha256 != after.sha256


def test_relative_and_lazy_imports_are_followed(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg" / "sub").mkdir(parents=True)
    for init in ("pkg/__init__.py", "pkg/sub/__init__.py"):
        (source / init).write_text("")
    (source / "pkg" / "sub" / "handler.py").write_text(
        "from . import helper\nfrom ..shared import thing\n\ndef handler(e, c):\n    import pkg.lazy\n"
    )
    for module in ("sub/helper.py", "shared.py", "lazy.py", "unused.py"):
        (source / "pkg" / module).write_text("import json\n")
    closure = handler_closure(source, "pkg.sub.handler.handler")
    assert closure.files == (
        "pkg/__init__.py",
        "pkg/lazy.py",
        "pkg/shared.py",
        "pkg/sub/__init__.py",
        "pkg/sub/handler.py",
        "pkg/sub/helper.py",
    )
    assert closure.third_party == ()


def test_imported_names_resolve_relative_imports_within_the_package() -> None:
    names = imported_names("from .b import c\nfrom .. import d\nimport e.f\n", "p.q.a", is_package=False)
    assert names == {"p.q.b", "p.q.b.c", "p", "p.d", "e.f"}
    with pytest.raises(PackagingError, match="beyond the top-level package"):
        imported_names("from ... import x\n", "p.a", is_package=False)


def test_a_missing_handler_module_or_an_uninstalled_import_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match=r"no module 'functions\.nothing'"):
        handler_closure(ROOT, "functions.nothing.handler")
    with pytest.raises(PackagingError, match="no installed distribution provides it"):
        vendored_distributions(["no_such_package_anywhere"], PROVIDED)


def test_requirements_of_a_vendored_distribution_come_along_unless_provided() -> None:
    # python-ulid needs typing-extensions on Python 3.11, which the layer provides.
    assert vendored_distributions(["ulid"], PROVIDED) == ["python-ulid"]
    assert vendored_distributions(["ulid"], frozenset()) == ["python-ulid", "typing-extensions"]


def test_a_distribution_with_compiled_code_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "__init__.py").write_text("")
    (source / "pkg" / "handler.py").write_text("import yaml\n")
    with pytest.raises(PackagingError, match="pyyaml contains compiled code"):
        build_function_archive(source, "pkg.handler.handler", PROVIDED, tmp_path / "out")
