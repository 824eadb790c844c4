"""The stack's configuration as `pulumi up` would see it: Pulumi.yaml defaults, the stack file, what the local cloud
supplies for itself (its CDN key and URL), then local layers and overrides."""

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
    secret_keys: frozenset[str] = frozenset()
    """Keys Pulumi holds as secrets (`pulumi.runtime.is_config_secret`): the stack file's `secure` values, whatever
    layer stands in for them locally, and the secrets the local cloud supplies."""

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


def _stack_layer(path: Path) -> tuple[dict[str, Any], set[str]]:
    """A config file's plain values, and the keys it holds as encrypted secrets (which the local cloud cannot read)."""
    values: dict[str, Any] = {}
    encrypted: set[str] = set()
    for key, value in (_read_yaml(path).get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            encrypted.add(key)
        else:
            values[key] = value
    return values, encrypted


def load_stack_config(
    project_dir: Path,
    stack: str,
    layers: list[Path] | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    supplied: dict[str, Any] | None = None,
    supplied_secrets: frozenset[str] = frozenset(),
) -> StackConfig:
    """Pulumi.yaml defaults < Pulumi.<stack>.yaml < `supplied` (what the local cloud provides for itself, e.g. its
    own CDN key) < each layer file (same format) < explicit overrides. An encrypted secret in the stack file is an
    error unless something above it replaces it; a key stays a secret whichever layer gives its value, as do the
    `supplied_secrets`."""
    project_file = _read_yaml(project_dir / "Pulumi.yaml")
    project = project_file.get("name")
    if not isinstance(project, str) or not project:
        raise ConfigError(f"{project_dir / 'Pulumi.yaml'}: missing project name")
    config = StackConfig(project=project, stack=stack)

    def qualified(values: dict[str, Any]) -> dict[str, Any]:
        # Merged by fully-qualified key, so `engine` and `media-pipeline:engine` are one key whichever layer names it.
        return {config.qualify(key): value for key, value in values.items()}

    merged: dict[str, Any] = qualified(_project_defaults(project_file))
    encrypted: dict[str, Path] = {}
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        values, secure = _stack_layer(stack_file)
        merged.update(qualified(values))
        encrypted = {config.qualify(key): stack_file for key in secure}
        for key in encrypted:
            merged.pop(key, None)  # the stack's secret replaces any default
    above = [qualified(supplied or {})]
    for layer in layers or []:
        values, secure = _stack_layer(layer)
        if secure:
            raise ConfigError(f"{layer}: {sorted(secure)[0]} is an encrypted secret; a local layer needs a plain value")
        above.append(qualified(values))
    above.append(qualified(overrides or {}))
    for values in above:
        merged.update(values)
    for key, path in encrypted.items():
        if not any(key in values for values in above):
            raise ConfigError(f"{path}: {key} is an encrypted secret; the local cloud needs a plain value in a layer")
    secrets = (set(encrypted) | {config.qualify(key) for key in supplied_secrets}) & set(merged)
    return StackConfig(
        project=project,
        stack=stack,
        values={key: wire_value(value) for key, value in merged.items()},
        secret_keys=frozenset(secrets),
    )


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from the command line; the value is read as YAML, so `3`, `true` and `[1, 2]` keep their type."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(raw) if raw else ""
