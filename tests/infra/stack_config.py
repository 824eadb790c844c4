"""Stack config the way the Pulumi CLI hands it to a program: Pulumi.yaml defaults, then Pulumi.<stack>.yaml values.

The CLI does this merge itself; the infra tests run the program without it, so they merge the same way here and the
program's defaults live in one place, Pulumi.yaml.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class DeclaredKey:
    """One config key declared in Pulumi.yaml."""

    key: str
    """Fully qualified key, e.g. `media-pipeline:renditions`."""
    description: str
    """What the key controls."""
    default: Any
    """Value used when the stack does not set one."""


def _project(project_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((project_dir / "Pulumi.yaml").read_text())


def _qualify(project_name: str, key: str) -> str:
    return key if ":" in key else f"{project_name}:{key}"


def declared_keys(project_dir: Path) -> dict[str, DeclaredKey]:
    """The project-namespaced config keys Pulumi.yaml declares, by fully qualified key."""
    project = _project(project_dir)
    name = project["name"]
    declared: dict[str, DeclaredKey] = {}
    for key, raw in (project.get("config") or {}).items():
        full_key = _qualify(name, key)
        if not full_key.startswith(f"{name}:"):
            continue  # provider settings such as aws:region carry a value, not a declaration
        spec = raw if isinstance(raw, dict) and ("default" in raw or "description" in raw) else {"default": raw}
        declared[full_key] = DeclaredKey(full_key, spec.get("description", ""), spec.get("default"))
    return declared


def _encode(value: Any) -> str:
    """Config values reach the program as strings; structured values as JSON, like the CLI sends them."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def stack_config(project_dir: Path, stack: str, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Fully qualified key -> string value: declared defaults, then the stack file, then `overrides`."""
    project = _project(project_dir)
    name = project["name"]
    values: dict[str, Any] = {key: spec.default for key, spec in declared_keys(project_dir).items()}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict) and "value" in spec:
            values[_qualify(name, key)] = spec["value"]
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        stack_values = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
        values.update({_qualify(name, key): value for key, value in stack_values.items()})
    values.update({_qualify(name, key): value for key, value in (overrides or {}).items()})
    return {key: _encode(value) for key, value in values.items()}
