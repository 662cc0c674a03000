"""Options of the HIL suite (run it with `pytest hil/tests --target sim`, or any serial target)."""
from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vhil-hil", "ViperHTTP HIL suite")
    group.addoption("--soak-seconds", type=float, default=10.0,
                    help="duration of the soak test's echo traffic (default 10; CI board farms use minutes)")
    group.addoption("--leak-messages", type=int, default=1000,
                    help="WebSocket messages between the two free-memory readings (default 1000)")


@pytest.fixture
def soak_seconds(request: pytest.FixtureRequest) -> float:
    return float(request.config.getoption("--soak-seconds"))


@pytest.fixture
def leak_messages(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--leak-messages"))
