"""The HIL suite (hil/tests) itself passes on the simulated board and, for its serial subset, on qemu-microbit."""
from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.targets.qemu_microbit import FIRMWARE

REPO = Path(__file__).resolve().parents[1]
SERIAL_SUBSET = {"test_deploy_4k_file_verified", "test_repl_responsiveness", "test_soft_reset_recovery",
                 "test_hard_reset_recovery"}


def run_suite(tmp_path: Path, target: str, *extra: str) -> dict[str, dict[str, object]]:
    junit = tmp_path / "hil.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "junit_family=xunit1",
                             str(REPO / "hil" / "tests"), "--target", target, f"--junitxml={junit}", *extra],
                            capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "").split("[")[0]
        outcomes[name] = {"skipped": case.find("skipped") is not None,
                          **{p.get("name"): p.get("value") for p in case.iter("property")}}
    return outcomes


def test_hil_suite_passes_on_sim(tmp_path: Path) -> None:
    outcomes = run_suite(tmp_path, "sim", "--soak-seconds", "2", "--leak-messages", "1000")
    assert not [name for name, outcome in outcomes.items() if outcome["skipped"]], outcomes
    assert float(outcomes["test_boot_to_ready_time"]["boot_to_ready_s"]) > 0
    assert int(outcomes["test_free_memory_after_boot_and_websocket_messages"]["mem_free_after_1000_messages"]) > 0


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or not FIRMWARE.is_file(),
                    reason="needs apt packages qemu-system-arm firmware-microbit-micropython")
def test_hil_serial_subset_passes_on_qemu_microbit(tmp_path: Path) -> None:
    outcomes = run_suite(tmp_path, "qemu-microbit")
    ran = {name for name, outcome in outcomes.items() if not outcome["skipped"]}
    assert ran == SERIAL_SUBSET
    assert outcomes["test_deploy_4k_file_verified"]["verification"] == "byte sum (no hashlib)"
