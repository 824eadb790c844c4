"""Directories built once and shared: the local cloud's cache of assembled artifacts, safe for concurrent clouds."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def ensure_directory(path: Path, build: Callable[[Path], None]) -> Path:
    """`path`, made by `build(temporary_directory)` and renamed into place the first time; a complete directory is
    never modified again, and a second process asking for the same one waits for the first instead of building it."""
    complete = path.with_name(f"{path.name}.complete")
    if complete.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f".{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete.exists():
            return path
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        try:
            build(temporary)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        shutil.rmtree(path, ignore_errors=True)  # a build interrupted before it was marked complete
        temporary.rename(path)
        complete.touch()
    return path
