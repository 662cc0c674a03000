"""No simulator, QEMU, pty or server outlives a run, whether it ends normally, by Ctrl-C or by SIGTERM."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.targets.qemu_microbit import FIRMWARE

QEMU_MISSING = shutil.which("qemu-system-arm") is None or not FIRMWARE.is_file()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "hil", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def wait_for_children(proc: subprocess.Popen[str], timeout: float = 20, running: str = "") -> list[int]:
    """The run's child processes, once there is one (whose command line contains `running`, if given: a child
    seen between fork and exec still has the parent's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children_of(proc.pid)
        if any(running in _cmdline(pid) for pid in kids):
            return kids
        time.sleep(0.1)
    raise AssertionError(f"the run started no child process {running}".rstrip())


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_run_on_sim_leaves_nothing_behind(stop_signal: int) -> None:
    proc = start(["hil", "run", "--target", "sim"])
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
        sim_pids = children_of(proc.pid)
        assert sim_pids
        pty_paths = {os.readlink(f"/proc/{pid}/fd/{fd}") for pid in sim_pids for fd in os.listdir(f"/proc/{pid}/fd")
                     if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/dev/pts/")}
        host, port = url[len("http://"):].split(":")
        socket.create_connection((host, int(port)), timeout=5).close()  # the DUT app serves
        assert pty_paths, "the simulator held no pty"
        stopped_at = time.time()
        proc.send_signal(stop_signal)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not [pid for pid in sim_pids if alive(pid)], "the simulator survived"
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2)
    # a pty disappears when both of its ends are closed (the simulator held both); its number may be reused since
    assert all(not os.path.exists(p) or os.stat(p).st_ctime >= stopped_at for p in pty_paths), pty_paths


@pytest.mark.skipif(QEMU_MISSING, reason="needs apt packages qemu-system-arm firmware-microbit-micropython")
def test_monitor_on_qemu_microbit_ctrl_c_stops_qemu() -> None:
    proc = start(["hil", "monitor", "--target", "qemu-microbit"])
    try:
        qemu_pids = wait_for_children(proc, running="qemu-system-arm")
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not [pid for pid in qemu_pids if alive(pid)], "QEMU survived Ctrl-C"


@pytest.mark.skipif(QEMU_MISSING, reason="needs apt packages qemu-system-arm firmware-microbit-micropython")
def test_exec_on_qemu_microbit_leaves_no_qemu(tmp_path: Path) -> None:
    before = {pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
              if alive(pid) and "microbit" in _cmdline(pid)}
    result = subprocess.run([sys.executable, "-m", "hil", "hil", "exec", "--target", "qemu-microbit", "print(1)"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    after = {pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
             if alive(pid) and "microbit" in _cmdline(pid)}
    assert after <= before  # other people's QEMUs may run on this machine; ours must be gone


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def test_sim_dies_with_a_run_killed_by_sigkill() -> None:
    """A crash that skips every handler (SIGKILL) still takes the simulator down with it."""
    proc = start(["hil", "run", "--target", "sim"])
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        sim_pids = children_of(proc.pid)
        assert sim_pids
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and [pid for pid in sim_pids if alive(pid)]:
            time.sleep(0.1)
        assert not [pid for pid in sim_pids if alive(pid)], "the simulator outlived its killed parent"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
