"""The private Pulumi SDK functions the local engine needs, in one place, and why.

Pulumi's public testing API (`pulumi.runtime.test`) wraps a test function; the local engine instead runs a program's
`__main__.py` once, as `pulumi up` does, and must wait until every registration has finished before it reads the
stack's outputs. That takes the SDK's own program runner, `run_pulumi_func` (which also creates the root stack
resource the outputs hang on), and its blocking wait, `_sync_await`. Both are private: checked against pulumi 3.272
(pyproject.toml allows 3.200 to <4). An upgrade that moves them fails here, at import, naming this module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

T = TypeVar("T")


def run_program(program: Callable[[], Any]) -> None:
    """Runs `program` as the Pulumi CLI runs one, and returns once every resource it registered is done."""
    _sync_await(run_pulumi_func(program))


def wait_for(awaitable: Awaitable[T]) -> T:
    """The result of an awaitable, waited for on the SDK's own event loop (outside any running loop)."""
    return _sync_await(awaitable)
