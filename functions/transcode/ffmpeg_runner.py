"""Running ffmpeg and ffprobe as child processes: a deadline, live progress, and the end of stderr on failure.

Both run with `media_tools.tool_env()`, not the function's environment: a parser of uploaded files has no use for
the function's AWS credentials.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from functions.common.media_tools import ffprobe_path, tool_env

STDERR_TAIL_CHARS = 500
PROBE_OPTIONS = ("-v", "error", "-protocol_whitelist", "file", "-print_format", "json", "-show_format", "-show_streams")


class FfmpegFailed(RuntimeError):
    """ffmpeg exited with an error: the input cannot be encoded as planned. Permanent, not worth a retry."""

    def __init__(self, returncode: int, stderr_tail: str) -> None:
        super().__init__(stderr_tail or f"ffmpeg exited with status {returncode}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class FfmpegTimedOut(RuntimeError):
    """ffmpeg did not finish before the deadline and was killed. Raised so SQS delivers the message again."""


class FfmpegKilled(RuntimeError):
    """ffmpeg was killed by a signal it did not ask for (e.g. out of memory). Raised so SQS retries."""


def stderr_tail(text: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last non-empty lines of `text` that fit in `limit` characters: where ffmpeg says what went wrong."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tail: list[str] = []
    size = 0
    for line in reversed(lines):
        if tail and size + len(line) + 1 > limit:
            break
        tail.insert(0, line[-limit:])
        size += len(line) + 1
    return "\n".join(tail)


def run_ffmpeg(args: list[str], *, timeout_seconds: float, on_progress_line: Callable[[str], None]) -> None:
    """Run ffmpeg (whose `-progress pipe:1` lines go to `on_progress_line`) and kill it at the deadline."""
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
            errors="replace",
            env=tool_env(),
        )

        def kill_at_deadline() -> None:
            timed_out.set()
            process.kill()

        watchdog = threading.Timer(timeout_seconds, kill_at_deadline)
        watchdog.start()
        try:
            for line in process.stdout or ():
                on_progress_line(line)
            returncode = process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        if timed_out.is_set():
            raise FfmpegTimedOut(f"ffmpeg was still running after {timeout_seconds:.0f} s")
        if returncode < 0:
            raise FfmpegKilled(f"ffmpeg was killed by signal {-returncode}")
        if returncode > 0:
            stderr_file.seek(0)
            raise FfmpegFailed(returncode, stderr_tail(stderr_file.read().decode("utf-8", "replace")))


def probe_file(path: Path, *, timeout_seconds: float = 60) -> dict[str, Any]:
    """ffprobe's JSON (format and streams) for a local file; FfmpegFailed when it cannot be read."""
    try:
        result = subprocess.run(
            [ffprobe_path(), *PROBE_OPTIONS, str(path)],
            stdin=subprocess.DEVNULL,
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise FfmpegTimedOut(f"ffprobe was still running after {timeout_seconds:.0f} s") from err
    if result.returncode != 0:
        raise FfmpegFailed(result.returncode, stderr_tail(result.stderr))
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise FfmpegFailed(0, f"ffprobe printed no JSON: {err}") from err
