"""One whole-program run per config variant, shared by the infra tests."""

from __future__ import annotations

import pytest

from tests.infra.harness import ProgramRun, run_program

SD_RENDITION = {"name": "480p", "height": 480, "maxVideoBitrateKbps": 1200, "audioBitrateKbps": 96}
DEFAULT_LADDER = [
    {"name": "720p", "height": 720, "maxVideoBitrateKbps": 3000, "audioBitrateKbps": 128},
    {"name": "1080p", "height": 1080, "maxVideoBitrateKbps": 6000, "audioBitrateKbps": 160},
]
ALARM_EMAIL = "oncall@example.com"


@pytest.fixture(scope="session")
def dev() -> ProgramRun:
    """The dev stack exactly as Pulumi.yaml and Pulumi.dev.yaml configure it."""
    return run_program()


@pytest.fixture(scope="session")
def with_480p() -> ProgramRun:
    """The dev stack with a third rendition added to the default ladder."""
    return run_program({"renditions": [*DEFAULT_LADDER, SD_RENDITION]})


@pytest.fixture(scope="session")
def with_alarm_email() -> ProgramRun:
    """The dev stack with an on-call address for alarms."""
    return run_program({"alarmEmail": ALARM_EMAIL})


def pytest_configure(config: pytest.Config) -> None:
    # pulumi_aws announces its own renamed modules on import; that is not something these tests can act on.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws")
