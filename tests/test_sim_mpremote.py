"""The simulated board works with MicroPython's own client, mpremote (raw REPL, raw-paste, file copy, soft reset):
an independent implementation of the host side of the protocol."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from conftest import simulated_board

pytestmark = pytest.mark.skipif(shutil.which("mpremote") is None, reason="needs mpremote (pip install mpremote)")


@pytest.fixture
def sim_pty(tmp_path: Path) -> Iterator[str]:
    with simulated_board(tmp_path / "fs") as board:
        yield board.pty


def mpremote(pty: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mpremote", "connect", pty, *args], capture_output=True, text=True, timeout=60)


def test_mpremote_exec_run_copy_and_soft_reset(tmp_path: Path, sim_pty: str) -> None:
    assert mpremote(sim_pty, "exec", "print(6*7)").stdout == "42\n"
    script = tmp_path / "count.py"
    script.write_text("x = 0\n" + "x += 1\n" * 2000 + "print(x)\n")  # 14 KB: many raw-paste windows
    assert mpremote(sim_pty, "run", str(script)).stdout.strip() == "2000"
    copied = mpremote(sim_pty, "fs", "cp", str(script), ":count.py")
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "fs" / "count.py").read_bytes() == script.read_bytes()
    listing = mpremote(sim_pty, "fs", "ls", ":")
    assert "count.py" in listing.stdout and str(script.stat().st_size) in listing.stdout
    error = mpremote(sim_pty, "exec", "1/0")
    assert error.returncode == 1 and "ZeroDivisionError: divide by zero" in error.stdout + error.stderr
    after = mpremote(sim_pty, "exec", "vhil_marker = 1", "soft-reset", "exec", "print('vhil_marker' in globals())")
    assert after.stdout.strip() == "False", after.stderr
