"""MediaConvert's API as botocore ships it: the service model, wire names, and what the model says a request may hold.

The service speaks rest-json: on the wire every member goes by its `locationName` (camelCase: `settings`,
`outputGroups`, `fileInput`), while botocore's parameters and the model's shapes use the member names (PascalCase:
`Settings`, `OutputGroups`, `FileInput`). `from_wire` and `to_wire` translate between the two along the model, so the
stand-in works on exactly the parameters a boto3 caller passed, and answers in exactly the shapes botocore parses.

botocore's ParamValidator checks types and required members; the model's min/max/enum/pattern constraints are left
to the service, so `request_errors` checks them too (`constraint_errors`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import botocore.session
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

MODEL = botocore.session.get_session().get_service_model("mediaconvert")
CREATE_JOB_INPUT = MODEL.operation_model("CreateJob").input_shape
NUMBERS = ("integer", "long", "double", "float")


class ShapeMismatch(ValueError):
    """A value does not fit the model's shape (an unknown member, a list where a structure belongs)."""


def operation(name: str) -> OperationModel:
    return MODEL.operation_model(name)


def _wire_name(name: str, member: Shape) -> str:
    return str(member.serialization.get("name", name))


def from_wire(value: Any, shape: Shape, path: str = "") -> Any:
    """A JSON body member (camelCase names) as botocore parameters (member names); unknown members are refused."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise ShapeMismatch(f"{path or shape.name}: expected an object")
        by_wire = {_wire_name(name, member): (name, member) for name, member in shape.members.items()}
        params = {}
        for key, item in value.items():
            if key not in by_wire:
                raise ShapeMismatch(f"{path}.{key}: not a member of {shape.name}")
            name, member = by_wire[key]
            params[name] = from_wire(item, member, f"{path}.{key}")
        return params
    if kind == "list":
        if not isinstance(value, list):
            raise ShapeMismatch(f"{path}: expected a list")
        return [from_wire(item, shape.member, f"{path}[{index}]") for index, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise ShapeMismatch(f"{path}: expected an object")
        return {key: from_wire(item, shape.value, f"{path}[{key!r}]") for key, item in value.items()}
    return value


def to_wire(value: Any, shape: Shape, path: str = "") -> Any:
    """botocore parameters (member names) as the JSON body botocore's parser reads; None members are left out."""
    kind = shape.type_name
    if kind == "structure":
        wire = {}
        for name, item in value.items():
            if item is None:
                continue
            if name not in shape.members:
                raise ShapeMismatch(f"{path}.{name}: not a member of {shape.name}")
            member = shape.members[name]
            wire[_wire_name(name, member)] = to_wire(item, member, f"{path}.{name}")
        return wire
    if kind == "list":
        return [to_wire(item, shape.member, f"{path}[{index}]") for index, item in enumerate(value)]
    if kind == "map":
        return {key: to_wire(item, shape.value, f"{path}[{key!r}]") for key, item in value.items()}
    if kind == "timestamp" and isinstance(value, datetime):
        return int(value.timestamp())
    return value


def constraint_errors(value: Any, shape: Shape, path: str) -> list[str]:
    """min/max/enum/pattern of the model, which botocore's ParamValidator leaves to the service (it checks types)."""
    errors: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for required in meta.get("required", []):
            if required not in value:
                errors.append(f"{path}: missing required {required}")
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                errors.append(f"{path}.{key}: not in the model")
                continue
            errors += constraint_errors(item, member, f"{path}.{key}")
    elif kind == "list" and isinstance(value, list):
        errors += _bounds(len(value), meta, f"{path} (length)")
        for index, item in enumerate(value):
            errors += constraint_errors(item, shape.member, f"{path}[{index}]")
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            errors += constraint_errors(key, shape.key, f"{path} key {key!r}")
            errors += constraint_errors(item, shape.value, f"{path}[{key!r}]")
    elif kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.enum}")
        errors += _bounds(len(value), meta, f"{path} (length)")
        if "pattern" in meta and not re.match(meta["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {meta['pattern']}")
    elif kind in NUMBERS and isinstance(value, int | float) and not isinstance(value, bool):
        errors += _bounds(value, meta, path)
    return errors


def _bounds(value: float, meta: dict[str, Any], path: str) -> list[str]:
    errors = []
    if "min" in meta and value < meta["min"]:
        errors.append(f"{path}: {value} < min {meta['min']}")
    if "max" in meta and value > meta["max"]:
        errors.append(f"{path}: {value} > max {meta['max']}")
    return errors


def request_errors(operation_name: str, params: dict[str, Any]) -> list[str]:
    """Everything wrong with a request: botocore's type/shape report plus the model's constraints."""
    shape = operation(operation_name).input_shape
    report = ParamValidator().validate(params, shape)
    errors = [report.generate_report()] if report.has_errors() else []
    return errors + constraint_errors(params, shape, operation_name)


def create_job_errors(request: dict[str, Any]) -> list[str]:
    """Everything wrong with a CreateJob request (botocore parameters)."""
    return request_errors("CreateJob", request)


class ServiceError(Exception):
    """An error answer of the API: HTTP status, the `x-amzn-ErrorType` botocore reads as the code, and a message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def bad_request(message: str) -> ServiceError:
    return ServiceError(400, "BadRequestException", message)


def not_found(message: str) -> ServiceError:
    return ServiceError(404, "NotFoundException", message)


def conflict(message: str) -> ServiceError:
    return ServiceError(409, "ConflictException", message)


def too_many_requests(message: str) -> ServiceError:
    return ServiceError(429, "TooManyRequestsException", message)
