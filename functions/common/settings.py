"""One typed reader of a function's environment, and the one error a misconfigured deployment raises.

Every function's `settings.py` reads its variables through `EnvironmentReader`, which collects every problem
and reports them at once, naming each variable: a deployment with three mistakes fails with one message that
lists all three, at cold start, instead of one per request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class SettingsError(RuntimeError):
    """The environment does not describe a usable deployment: a defect to fix, not an event to retry."""


class EnvironmentReader:
    """Reads variables, collects what is wrong with them; `done` raises SettingsError listing every problem."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.env: Mapping[str, str] = os.environ if environ is None else environ
        self.problems: list[str] = []

    def raw(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def text(self, name: str) -> str:
        """A required, non-empty value."""
        value = self.raw(name)
        if not value:
            self.problems.append(f"{name} is required")
        return value

    def required(self, name: str) -> str:
        """A required, non-empty value, reported as "{name} is not set" when missing (`text` says "is required")."""
        value = self.raw(name)
        if not value:
            self.problems.append(f"{name} is not set")
        return value

    def optional(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def integer(self, name: str, low: int, high: int, *, default: int | None = None) -> int:
        """A whole number from `low` to `high`; `default` when unset (required when there is none)."""
        raw = self.raw(name)
        if not raw and default is not None:
            return default
        if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
            self.problems.append(f"{name} must be an integer from {low} to {high}, got {raw!r}")
            return low if default is None else default
        return int(raw)

    def arn(self, name: str) -> str:
        value = self.text(name)
        if value and not value.startswith("arn:"):
            self.problems.append(f"{name} must be an ARN, got {value!r}")
        return value

    def parsed(self, name: str, parse: Callable[[str], T], fallback: T) -> T:
        """`parse(value)`; a ValueError it raises becomes a problem named after the variable."""
        try:
            return parse(self.raw(name))
        except ValueError as err:
            self.problems.append(f"{name}: {err}")
            return fallback

    def problem(self, text: str) -> None:
        """A problem the caller found itself, e.g. two settings that contradict each other."""
        self.problems.append(text)

    def done(self, what: str) -> None:
        if self.problems:
            raise SettingsError(f"{what} misconfigured: " + "; ".join(self.problems))
