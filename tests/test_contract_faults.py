"""Each contract test fails against a server that breaks its rule: the real DUT app on the reference framework
with one rule broken (tests/_servers_conformance.py dut --fault NAME), checked through pytest as users run it."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from _servers_conformance import DUT_FAULTS, REPO, running

STEP_TIMEOUT_S = 2.0  # what a fault withholds (an echo, a broadcast, a cleanup) is waited for this long, not 10 s
# fault -> the contract tests (every parametrization of each) that must fail against it
FAULTS = {
    "echo-no-prefix": ["test_echo.py::test_text_is_echoed_with_prefix"],
    "echo-bytes-as-text": ["test_echo.py::test_bytes_are_echoed_unchanged"],
    "close-code-going-away": ["test_echo.py::test_close_is_answered_with_its_code"],
    "subprotocol-none": ["test_subprotocols.py::test_offer_order_decides"],
    "subprotocol-first-offered": ["test_subprotocols.py::test_no_overlap_means_no_header"],
    "chat-all-rooms": ["test_rooms.py::test_chat_room_isolation_and_own_broadcast"],
    "chat-not-to-sender": ["test_rooms.py::test_chat_room_isolation_and_own_broadcast"],
    "pub-count-off": ["test_rooms.py::test_rooms_pub_reaches_members_and_counts_them"],
    "rooms-leave-noop": ["test_rooms.py::test_stats_exact_after_join_and_leave"],
    "stats-keep-closed": ["test_rooms.py::test_stats_exact_after_disconnect"],
    "stats-keep-dropped": ["test_rooms.py::test_stats_exact_after_abrupt_tcp_drop"],
    "burst-drop-one": ["test_burst.py::test_burst_of_1000_echoed_in_order"],
    "limit-lower": ["test_large.py::test_message_at_the_limit_is_echoed"],
    "limit-unenforced": ["test_large.py::test_message_over_the_limit_closes_1009"],
    "sse-no-blank-line": ["test_sse.py::test_events_framing", "test_sse.py::test_events_default_count"],
    "sse-uncapped": ["test_sse.py::test_events_out_of_range_is_422"],
    "openapi-no-events-query": ["test_sse.py::test_events_parameters_in_openapi"],
    "receive-firmware-shape": ["test_messages.py::test_receive_returns_the_documented_message"],
    "openapi-no-protocols": ["test_openapi.py::test_openapi_lists_websocket_routes_with_protocols"],
    "openapi-no-events-path": ["test_openapi.py::test_openapi_lists_http_routes"],
}


def contract_functions() -> set[str]:
    """file::function of every contract test, read from the suite's sources."""
    found = set()
    for path in sorted((REPO / "conformance" / "contract").glob("test_*.py")):
        for line in path.read_text().splitlines():
            if line.startswith("def test_"):
                found.add(f"{path.name}::{line[4:line.index('(')]}")
    return found


def test_every_contract_test_has_a_fault_and_every_fault_a_server():
    assert set(FAULTS) == set(DUT_FAULTS)
    assert {node for nodes in FAULTS.values() for node in nodes} == contract_functions()


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_contract_test_fails_against_broken_server(tmp_path, fault):
    junit = tmp_path / "junit.xml"
    with running("dut", "--fault", fault) as server:
        nodes = [f"conformance/contract/{node}" for node in FAULTS[fault]]
        run = subprocess.run([sys.executable, "-m", "pytest", *nodes, "--target", f"url:ws://127.0.0.1:{server.port}",
                              "-p", "no:cacheprovider", "-q", f"--junitxml={junit}"],
                             capture_output=True, text=True, timeout=240, cwd=str(REPO),
                             env={**os.environ, "VHIL_CONTRACT_STEP_TIMEOUT_S": str(STEP_TIMEOUT_S)})
    assert run.returncode == 1, run.stdout[-2000:]
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert cases, run.stdout[-2000:]
    passed = [c.get("name") for c in cases if c.find("failure") is None]
    assert not passed, f"passed against fault {fault}: {passed}"
