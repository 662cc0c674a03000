"""The pytest plugin on a real sim target, run as users run it (an inner pytest session in a subprocess)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

INNER_TESTS = '''
import time

def test_panics_mid_test(target):
    target.inject_panic()  # the board panics while this test runs; the test itself would pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(e.kind == "panic" for e in target.console.events):
        time.sleep(0.05)

def test_next_test_runs_on_the_recovered_board(dut):
    assert dut.exec_ok("print(6*7)").strip() == "42"

def test_app_is_back_after_recovery(base_url):
    import urllib.request
    assert urllib.request.urlopen(base_url + "/health", timeout=10).status == 200

def test_board_hangs_mid_test(target, base_url):
    import os, signal, urllib.request
    os.kill(target.process.pid, signal.SIGSTOP)  # what hang-after does: the chip stops, nothing answers
    urllib.request.urlopen(base_url + "/health", timeout=1)

def test_hung_board_was_hard_reset(dut):
    assert dut.exec_ok("print(7*6)").strip() == "42"

def test_plain_failure_carries_serial_log(dut):
    dut.exec_ok("print('marker-from-the-board')")
    assert False, "deliberate"
'''


def run_inner(tmp_path: Path, tests: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], ET.Element]:
    (tmp_path / "test_inner.py").write_text(tests)
    junit = tmp_path / "junit.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--target", "sim",
                             f"--junitxml={junit}", "--target-logs", str(tmp_path / "logs"), "test_inner.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
                            env=dict(os.environ, **(env or {})))
    return result, ET.parse(junit).getroot()


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name", "").split("[")[0]: case for case in root.iter("testcase")}


def test_panic_fails_its_test_with_backtrace_and_the_session_goes_on(tmp_path: Path) -> None:
    result, root = run_inner(tmp_path, INNER_TESTS, env={"VHIL_SIM_FAULTS": ""})
    by_name = cases(root)
    panic_failure = by_name["test_panics_mid_test"].find("failure")
    assert panic_failure is not None, result.stdout
    assert panic_failure.get("message", "").startswith("panic: Guru Meditation Error: Core  1 panic'ed (LoadProhibited)")
    assert "Backtrace: 0x400d719f:0x3ffbf0f0" in (panic_failure.text or "")
    assert "--- serial log during the test ---" in (panic_failure.text or "")
    assert by_name["test_next_test_runs_on_the_recovered_board"].find("failure") is None
    assert by_name["test_next_test_runs_on_the_recovered_board"].find("error") is None
    assert by_name["test_app_is_back_after_recovery"].find("failure") is None
    plain = by_name["test_plain_failure_carries_serial_log"].find("failure")
    assert plain is not None and "deliberate" in (plain.text or "")
    assert "serial log during the test" in (plain.text or "") and "marker-from-the-board" in (plain.text or "")
    assert by_name["test_board_hangs_mid_test"].find("failure") is not None
    assert by_name["test_hung_board_was_hard_reset"].find("failure") is None
    assert by_name["test_hung_board_was_hard_reset"].find("error") is None
    assert "3 failed, 3 passed" in result.stdout, result.stdout
    assert (tmp_path / "logs" / "sim" / "serial.log").is_file()
    recorded = json.loads((tmp_path / "logs" / "sim" / "console-events.json").read_text())["events"]
    panic = next(event for event in recorded if event["kind"] == "panic")
    assert panic["backtrace"][0] == ["0x400d719f", "0x3ffbf0f0"] and not panic["expected"]


def test_brownout_loop_fails_fast_instead_of_hanging(tmp_path: Path) -> None:
    tests = "def test_one(dut):\n    pass\n\ndef test_two(base_url):\n    pass\n"
    result, root = run_inner(tmp_path, tests, env={"VHIL_SIM_FAULTS": "brownout-loop"}, timeout=90)
    errors = [case.find("error") for case in root.iter("testcase")]
    assert len(errors) == 2 and all(error is not None for error in errors), result.stdout
    assert all("brownout" in (error.get("message", "") + (error.text or "")) for error in errors)
