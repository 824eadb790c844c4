"""A Lambda image's /var/task assembled from its Dockerfile without Docker: what is honoured, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.artifacts.images import ImageError, assemble_image, image_digest, is_ignored, parse_dockerfile

BASE = "public.ecr.aws/lambda/python:3.11@sha256:" + "0" * 64


def context(tmp_path: Path, dockerfile: str, ignore: str = "") -> Path:
    (tmp_path / "app" / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "app" / "pkg" / "handler.py").write_text("def handler(e, c):\n    return 1\n")
    (tmp_path / "app" / "pkg" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "app" / "notes.txt").write_text("not copied")
    (tmp_path / "Dockerfile").write_text(dockerfile)
    (tmp_path / ".dockerignore").write_text(ignore)
    return tmp_path


def test_instructions_are_joined_across_continuations_and_comments_dropped() -> None:
    parsed = parse_dockerfile('# c\nFROM x\nRUN a \\\n    # inner comment\n    && b\n\nCMD ["h"]\n')
    assert [(i.keyword, i.argument, i.line) for i in parsed] == [
        ("FROM", "x", 2),
        ("RUN", "a && b", 3),
        ("CMD", '["h"]', 7),
    ]


def test_dockerignore_matches_like_docker() -> None:
    patterns = [(False, "**/__pycache__"), (False, "*.md"), (False, "tests"), (True, "tests/keep.py")]
    assert is_ignored("a/b/__pycache__/x.pyc", patterns)
    assert is_ignored("README.md", patterns) and not is_ignored("docs/README.md", patterns)
    assert is_ignored("tests/test_a.py", patterns) and not is_ignored("tests/keep.py", patterns)


def test_copy_env_and_cmd_make_the_task_root(tmp_path: Path) -> None:
    dockerfile = (
        f'FROM {BASE}\nENV GREETING=hello PATH="${{LAMBDA_TASK_ROOT}}/bin:${{PATH}}"\n'
        'COPY app/pkg/ ${LAMBDA_TASK_ROOT}/pkg/\nWORKDIR /var/task\nCMD ["pkg.handler.handler"]\n'
    )
    root = context(tmp_path / "ctx", dockerfile, "**/__pycache__\n")
    image = assemble_image(root, root / "Dockerfile", tmp_path / "cache")
    files = sorted(p.relative_to(image.task_root).as_posix() for p in image.task_root.rglob("*") if p.is_file())
    assert files == ["pkg/handler.py"]
    assert image.command == ["pkg.handler.handler"] and image.python == "3.11"
    assert image.environment["GREETING"] == "hello"
    assert image.environment["PATH"].startswith(f"{image.task_root}/bin:/var/lang/bin")
    again = assemble_image(root, root / "Dockerfile", tmp_path / "cache")
    assert again.task_root == image.task_root  # cached by content


def test_the_digest_follows_what_the_image_copies_and_nothing_else(tmp_path: Path) -> None:
    root = context(tmp_path, f"FROM {BASE}\nCOPY app/pkg/ /var/task/pkg/\n", "**/__pycache__\n")
    before = image_digest(root, root / "Dockerfile")
    (root / "app" / "pkg" / "__pycache__" / "other.pyc").write_bytes(b"1")
    assert image_digest(root, root / "Dockerfile") == before
    (root / "app" / "notes.txt").write_text("not copied, so no new image")
    assert image_digest(root, root / "Dockerfile") == before
    (root / "app" / "pkg" / "handler.py").write_text("changed\n")
    assert image_digest(root, root / "Dockerfile") != before


def test_a_copy_of_something_the_context_leaves_out_fails_as_docker_fails(tmp_path: Path) -> None:
    root = context(tmp_path / "ctx", f"FROM {BASE}\nCOPY app/notes.txt /var/task/\n", "app/notes.txt\n")
    with pytest.raises(ImageError, match="excluded from the build context"):
        assemble_image(root, root / "Dockerfile", tmp_path / "cache")


@pytest.mark.parametrize(
    ("instruction", "message"),
    [
        ("RUN apt-get install -y curl", "is not assembled locally"),
        ("COPY app/ /opt/app/", "only /var/task and /tmp"),
        ("USER nobody", "USER is not assembled locally"),
        ("RUN pip install --index-url https://example.invalid x", "pip option --index-url"),
        ("RUN pip install -r /tmp/missing.txt --target /var/task", "not a file copied into /tmp"),
        ("COPY ../outside /var/task/", "outside the build context"),
    ],
)
def test_what_cannot_be_assembled_is_refused_with_the_instruction_named(
    tmp_path: Path, instruction: str, message: str
) -> None:
    root = context(tmp_path / "ctx", f"FROM {BASE}\n{instruction}\n")
    with pytest.raises(ImageError, match=message):
        assemble_image(root, root / "Dockerfile", tmp_path / "cache")


def test_only_aws_lambda_python_base_images(tmp_path: Path) -> None:
    root = context(tmp_path / "ctx", "FROM python:3.11-slim\n")
    with pytest.raises(ImageError, match="only AWS's Lambda Python base images"):
        assemble_image(root, root / "Dockerfile", tmp_path / "cache")
