"""Fixtures for the ViperHTTP API contract suite: a reachable DUT app and its /health.

The suite runs against any target with a network endpoint (`--target`, from the vhil pytest plugin). It relies
only on docs/dut-app.md and the WebSocket guide; every wait is bounded.
"""
from __future__ import annotations

from typing import Any

import pytest

from conformance.contract.helpers import get_json
from hil.errors import SetupError
from hil.targets import Target
from hil.probe import SUITE_START_PROBE_TIMEOUT_S, wait_reachable


@pytest.fixture
def dut(target: Target, base_url: str) -> Target:
    """The started target with its DUT app running (a serial board's app is restarted after a failed test
    left it stopped), once it answers; an unreachable one ends the session with exit status 2."""
    try:
        wait_reachable(base_url, SUITE_START_PROBE_TIMEOUT_S)  # one TCP connect: a restarted app may still be binding
    except SetupError as exc:
        pytest.exit(str(exc), returncode=2)
    return target


@pytest.fixture(scope="session", autouse=True)
def firmware_under_test(target: Target, record_testsuite_property: Any) -> None:
    """The firmware the report certifies (JUnit properties firmware_kind, firmware_version, firmware_board):
    what a serial board reported when it booted; the target kind where no board is involved."""
    facts = target.details.get("firmware") or {"kind": target.kind, "version": "", "board": target.name}
    for key, value in facts.items():
        record_testsuite_property(f"firmware_{key}", value)


@pytest.fixture
def health(dut: Target) -> dict[str, Any]:
    return get_json(dut, "/health")
