"""Exclusive boards without labgrid: two runs against one (simulated) board take turns, a waiting run names the
holder, gives up after --lock-timeout with exit 2, and a holder that dies frees the board. The board itself
records its sessions (every open of its port, from the kernel), so an overlap would be seen whatever the lock says.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import serial

from conftest import SimulatedBoard, simulated_board
from hil.lock import ExclusiveLock, read_holder
from hil.sim.sessions import read_sessions

BOARD = "bench1"


@pytest.fixture
def board(tmp_path: Path) -> Iterator[SimulatedBoard]:
    with simulated_board(tmp_path / "fs", sessions=tmp_path / "sessions.jsonl") as sim:
        (tmp_path / "boards.toml").write_text(f'[[board]]\nid = "{BOARD}"\nchip = "esp32"\nport = "{sim.pty}"\n'
                                              'reset = "soft"\n')
        yield sim


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, VHIL_LOCK_DIR=str(tmp_path / "locks"), PYTHONUNBUFFERED="1")
    env.pop("VHIL_LOCK_TIMEOUT", None)
    return env


def _exec(tmp_path: Path, code: str, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "hil.cli", "hil", "exec", "--target", f"board:{BOARD}",
            "--boards", str(tmp_path / "boards.toml"), *extra, code]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))


def _wait_until_holding(tmp_path: Path, process: subprocess.Popen[str]) -> None:
    lock_file = tmp_path / "locks" / f"board-{BOARD}.lock"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        holder = read_holder(lock_file) if lock_file.exists() else None
        if holder is not None and holder.pid == process.pid:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    pytest.fail("the first run never took the board's lock")


def _sessions(tmp_path: Path) -> list:
    time.sleep(0.3)  # the recorder writes what the kernel reported a moment after the close
    return read_sessions(tmp_path / "sessions.jsonl")


def test_two_execs_on_one_board_take_turns_and_the_second_shows_the_holder(tmp_path: Path, board: SimulatedBoard) -> None:
    first = _exec(tmp_path, "import time\ntime.sleep(2.5)\nprint('first done')")
    _wait_until_holding(tmp_path, first)
    second = _exec(tmp_path, "print('second ran')")
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert out1.strip() == "first done" and out2.strip() == "second ran"
    assert f"waiting for board {BOARD}" in err2 and f"held by pid {first.pid} on " in err2, err2
    assert "time.sleep(2.5)" in err2, "the status line names the holder's command"
    sessions = _sessions(tmp_path)
    assert len(sessions) == 2, sessions
    assert all(s.overlaps == 0 for s in sessions), sessions
    assert sessions[0].end is not None and sessions[1].start >= sessions[0].end


def test_a_run_gives_up_after_lock_timeout_naming_the_holder(tmp_path: Path, board: SimulatedBoard) -> None:
    first = _exec(tmp_path, "import time\ntime.sleep(4)\nprint('first done')")
    _wait_until_holding(tmp_path, first)
    started = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "hil.cli", "hil", "exec", "--target", f"board:{BOARD}", "--boards",
                             str(tmp_path / "boards.toml"), "--lock-timeout", "0.5", "print(1)"],
                            capture_output=True, text=True, env=_env(tmp_path), timeout=60)
    waited = time.monotonic() - started
    first.communicate(timeout=60)
    assert second.returncode == 2, second.stderr
    errors = [line for line in second.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, second.stderr
    assert f"board {BOARD} is busy: held by pid {first.pid} on " in errors[0]
    assert "gave up after 0.5 s" in errors[0]
    assert waited < 4, "it gave up before the holder finished"
    assert first.returncode == 0
    assert len(_sessions(tmp_path)) == 1, "the run that gave up must not have opened the port"


def test_a_holder_that_dies_frees_the_board(tmp_path: Path) -> None:
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from hil.lock import ExclusiveLock; "
         f"ExclusiveLock('board-x', 'board x', Path({str(lock_dir)!r})).acquire(5); print('held', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    lock = ExclusiveLock("board-x", "board x", lock_dir)
    assert not lock.try_acquire()
    holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the lock with the process
    holder.wait(10)
    lock.acquire(timeout=2)
    try:
        assert read_holder(lock.path).pid == os.getpid()
    finally:
        lock.release()


def test_the_board_records_an_overlap_when_two_clients_open_it(tmp_path: Path, board: SimulatedBoard) -> None:
    """What a missing lock looks like from the board: the check the farm rehearsal relies on can fail."""
    first = serial.serial_for_url(board.pty, timeout=0.1)
    second = serial.serial_for_url(board.pty, timeout=0.1)
    time.sleep(0.5)  # overlaps shorter than the recorder's look at /proc can pass unseen; real sessions last seconds
    second.close()
    first.close()
    sessions = _sessions(tmp_path)
    # one session with the second open inside it; the recorder may see that open more than once (inotify)
    assert len(sessions) == 1 and sessions[0].overlaps >= 1, sessions


def test_the_pytest_plugin_waits_for_a_busy_board_and_shows_the_holder(tmp_path: Path, board: SimulatedBoard) -> None:
    first = _exec(tmp_path, "import time\ntime.sleep(8)\nprint('first done')")
    _wait_until_holding(tmp_path, first)
    suite = subprocess.run([sys.executable, "-m", "pytest", str(Path(__file__).resolve().parents[1] / "hil" / "tests"),
                            "-q", "-p", "no:cacheprovider", "--target", f"board:{BOARD}", "--boards",
                            str(tmp_path / "boards.toml"), "-k", "repl_responsiveness", "--lock-timeout", "60"],
                           capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    first.communicate(timeout=60)
    assert suite.returncode == 0, suite.stdout[-2000:] + suite.stderr[-2000:]
    shown = suite.stdout + suite.stderr
    assert f"waiting for board {BOARD}" in shown and f"held by pid {first.pid} on " in shown, shown[-2000:]
    sessions = _sessions(tmp_path)
    assert len(sessions) == 2 and all(s.overlaps == 0 for s in sessions), sessions
