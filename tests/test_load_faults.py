"""`vhil load` against servers that lose or misroute broadcasts must report it and exit 1.

The faulty servers are the websockets peer with its fault option: real WebSocket, real DUT protocol, wrong delivery.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from hil.probe import READY_LINE_PATTERN
from hil.process import ManagedProcess

LOAD_TIMEOUT_S = 120


def run_load(out: Path, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    completed = subprocess.run([sys.executable, "-m", "hil", "load", *args, "--out", str(out)],
                               capture_output=True, text=True, timeout=LOAD_TIMEOUT_S)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return completed.returncode, summary, completed.stdout + completed.stderr


@pytest.fixture
def faulty_peer(request: pytest.FixtureRequest) -> Iterator[str]:
    process = ManagedProcess([sys.executable, "-m", "vhil_serve.peer_websockets", "--port", "0", "--fault", request.param])
    try:
        port = process.wait_for_line(READY_LINE_PATTERN, 20).group(2)
        yield f"url:ws://127.0.0.1:{port}"
    finally:
        process.stop()


def failed_checks(summary: dict[str, Any]) -> set[str]:
    return {check["name"] for check in summary["verdict"]["checks"] if not check["ok"]}


@pytest.mark.parametrize("faulty_peer", ["drop:7"], indirect=True)
def test_dropped_broadcasts_are_counted_as_losses(faulty_peer: str, tmp_path: Path) -> None:
    code, summary, output = run_load(tmp_path, "--target", faulty_peer, "--scenario", "fanout", "--users", "10",
                                     "--rate", "20", "--duration", "2")
    assert code == 1, output
    assert summary is not None and summary["verdict"]["ok"] is False
    # every 7th delivery is skipped while the ack still counts it: 10 members x 40 broadcasts = 400 expected
    assert summary["expected"] == 400
    assert summary["losses"] == 400 - summary["delivered"]
    assert summary["losses"] in range(400 // 7 - 1, 400 // 7 + 2)
    assert summary["delivery_ratio"] < 1.0
    assert "delivery" in failed_checks(summary)
    assert "verdict FAILED" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("faulty_peer", ["wrong-room:5"], indirect=True)
def test_broadcasts_to_the_wrong_room_are_leaks(faulty_peer: str, tmp_path: Path) -> None:
    code, summary, output = run_load(tmp_path, "--target", faulty_peer, "--scenario", "rooms", "--users", "12",
                                     "--rooms", "3", "--rate", "20", "--duration", "2")
    assert code == 1, output
    assert summary is not None
    assert summary["leaks"] > 0
    assert summary["losses"] > 0  # the room it was meant for never got it
    assert {"leaks", "delivery"} <= failed_checks(summary)


def test_bad_arguments_and_unreachable_targets_exit_2(tmp_path: Path) -> None:
    code, _, output = run_load(tmp_path / "a", "--target", "host:websockets", "--scenario", "fanout", "--users", "0")
    assert code == 2 and "--users must be at least 1" in output
    code, _, output = run_load(tmp_path / "b", "--target", "url:ws://127.0.0.1:9", "--scenario", "fanout")
    assert code == 2 and "127.0.0.1:9" in output
    assert len(output.strip().splitlines()) == 1, output
