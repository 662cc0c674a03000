"""`vhil hil run --target sim` yields a URL on which the contract and conformance suites pass."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

VHIL = [sys.executable, "-m", "hil"]


def test_contract_and_conformance_pass_on_the_url_run_prints(tmp_path: Path) -> None:
    run = subprocess.Popen([*VHIL, "hil", "run", "--target", "sim"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)
    try:
        url = run.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), run.stderr.read() if run.poll() is not None else url
        ws = "url:" + url.replace("http://", "ws://")
        contract = subprocess.run([*VHIL, "contract", "--target", ws, "--out", str(tmp_path / "contract")],
                                  capture_output=True, text=True, timeout=300)
        assert contract.returncode == 0, contract.stdout[-2000:] + contract.stderr[-2000:]
        conformance = subprocess.run([*VHIL, "conformance", "--target", ws, "--cases", "1.*", "2.*", "5.*", "7.*",
                                      "--no-baseline", "--out", str(tmp_path / "conformance")],
                                     capture_output=True, text=True, timeout=300)
        assert conformance.returncode == 0, conformance.stdout[-2000:] + conformance.stderr[-2000:]
        assert run.poll() is None, "the run ended while the suites used it"
        run.send_signal(signal.SIGINT)
        assert run.wait(30) == 130
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
