"""The zip functions' runtime and layer, as `lambda_runtime.toml` pins them: read by the program and the local cloud."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PINS = Path(__file__).resolve().with_name("lambda_runtime.toml")


def _pinned(requirements: list[str]) -> tuple[str, ...]:
    for line in requirements:
        specifiers = list(Requirement(line).specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise ValueError(f"{PINS.name}: {line!r} must pin one exact version (name==version)")
    return tuple(requirements)


@dataclass(frozen=True)
class LambdaRuntime:
    """A managed runtime with its SDK, and the one layer zip functions get."""

    name: str
    """Lambda runtime identifier, e.g. `python3.11`."""
    architecture: str
    """Instruction set of the functions (and of the layer and images), e.g. `x86_64`."""
    python: str
    """The runtime's Python version, `major.minor`."""
    sdk: tuple[str, ...]
    """The packages the runtime itself provides, pinned (`boto3==...`)."""
    layer_arn_template: str
    """ARN of the layer with `{region}` for the stack's region."""
    layer_packages: tuple[str, ...]
    """The packages that layer version provides, pinned."""

    def layer_arn(self, region: str) -> str:
        return self.layer_arn_template.replace("{region}", region)

    def provided_distributions(self) -> frozenset[str]:
        """Canonical names of every distribution a zip function finds without carrying it."""
        return frozenset(canonicalize_name(Requirement(line).name) for line in (*self.sdk, *self.layer_packages))


def load_lambda_runtime(path: Path = PINS) -> LambdaRuntime:
    data = tomllib.loads(path.read_text())
    runtime, layer = data["runtime"], data["powertools_layer"]
    return LambdaRuntime(
        name=runtime["name"],
        architecture=runtime["architecture"],
        python=runtime["python"],
        sdk=_pinned(runtime["sdk"]),
        layer_arn_template=layer["arn"],
        layer_packages=_pinned(layer["packages"]),
    )
