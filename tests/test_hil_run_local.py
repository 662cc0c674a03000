"""`vhil hil run --target mpy|host`: the DUT app served locally, its base URL printed, up until Ctrl-C; a server
that dies ends the run with exit 1. Real subprocesses, real sockets."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from hil.probe import get_json
from hil.targets.mpy import MpyTarget

VHIL = [sys.executable, "-m", "hil"]
START_TIMEOUT_S = 30.0


def start_run(target: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*VHIL, "hil", "run", "--target", target], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()  # the first line is the base URL
    assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")
    return proc, url


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.mark.parametrize("target", ["mpy", "host"])
def test_run_serves_the_dut_app_until_ctrl_c(target: str) -> None:
    if target == "mpy" and not MpyTarget(name="mpy").availability().ok:
        pytest.skip(MpyTarget(name="mpy").availability().reason)
    proc, url = start_run(target)
    try:
        time.sleep(1.0)  # it stays up after printing the URL
        assert proc.poll() is None
        assert get_json(url + "/health", 10)["status"] == "ok"
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(START_TIMEOUT_S) == 130
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    finally:
        stop(proc)


def test_run_exits_1_when_the_vm_dies() -> None:
    if not MpyTarget(name="mpy").availability().ok:
        pytest.skip(MpyTarget(name="mpy").availability().reason)
    proc, _ = start_run("mpy")
    try:
        node = [c for c in psutil.Process(proc.pid).children(recursive=True) if "node" in c.name()]
        assert node, "no VM process under vhil hil run"
        node[0].kill()
        assert proc.wait(START_TIMEOUT_S) == 1
        assert proc.stderr is not None
        assert "exited: the mpy server stopped" in proc.stderr.read()
    finally:
        stop(proc)
