"""The stack's configuration as `pulumi up` would see it: Pulumi.yaml defaults, the stack file, then local layers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class StackConfig:
    """Fully-qualified keys (`project:key`, `aws:region`) to Pulumi's wire form: strings, other values as JSON."""

    project: str
    stack: str
    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.values.get(self.qualify(key))

    def qualify(self, key: str) -> str:
        return key if ":" in key else f"{self.project}:{key}"


def wire_value(value: Any) -> str:
    """Pulumi hands strings to the program unchanged and every other value as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {err}") from err
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded


def _project_defaults(project_file: dict[str, Any]) -> dict[str, Any]:
    """Defaults declared in Pulumi.yaml's `config:` block (`key: {default: ...}`, `key: {value: ...}` or a scalar)."""
    defaults: dict[str, Any] = {}
    for key, spec in (project_file.get("config") or {}).items():
        if isinstance(spec, dict):
            if "value" in spec:
                defaults[key] = spec["value"]
            elif "default" in spec:
                defaults[key] = spec["default"]
        else:
            defaults[key] = spec
    return defaults


def _stack_layer(path: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in (_read_yaml(path).get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            raise ConfigError(f"{path}: {key} is an encrypted secret; the local cloud needs a plain value in a layer")
        values[key] = value
    return values


def load_stack_config(
    project_dir: Path,
    stack: str,
    layers: list[Path] | None = None,
    overrides: dict[str, Any] | None = None,
) -> StackConfig:
    """Pulumi.yaml defaults < Pulumi.<stack>.yaml < each layer file (same format) < explicit overrides."""
    project_file = _read_yaml(project_dir / "Pulumi.yaml")
    project = project_file.get("name")
    if not isinstance(project, str) or not project:
        raise ConfigError(f"{project_dir / 'Pulumi.yaml'}: missing project name")
    merged: dict[str, Any] = dict(_project_defaults(project_file))
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        merged.update(_stack_layer(stack_file))
    for layer in layers or []:
        merged.update(_stack_layer(layer))
    merged.update(overrides or {})
    config = StackConfig(project=project, stack=stack)
    values = {config.qualify(key): wire_value(value) for key, value in merged.items()}
    return StackConfig(project=project, stack=stack, values=values)


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from the command line; the value is read as YAML, so `3`, `true` and `[1, 2]` keep their type."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(raw) if raw else ""
