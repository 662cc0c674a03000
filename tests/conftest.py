"""Shared fixtures: an app served by the reference framework on loopback, in a thread of this process."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from viperhttp.server import Server


@contextmanager
def serve_in_thread(app: Any) -> Iterator[int]:
    """Serve `app` with the real asyncio server on 127.0.0.1 in a background loop; yields the port."""
    loop = asyncio.new_event_loop()
    server = Server(app)
    started = threading.Event()
    port_box: list[int] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        port_box.append(loop.run_until_complete(server.start("127.0.0.1", 0)))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="app-server", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("test server did not start")
    try:
        yield port_box[0]
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def dut_port() -> Iterator[int]:
    """The DUT app (framework/dut/main.py) on the reference framework."""
    from vhil_serve.cli import load_dut_module

    with serve_in_thread(load_dut_module().app) as port:
        yield port


@dataclass(frozen=True)
class SimulatedBoard:
    pty: str  # the board's serial port
    pid: int  # the simulator process (SIGUSR2 pulls its EN pin)
    fs: Path  # its flash filesystem


@contextmanager
def simulated_board(fs: Path, faults: str = "", sessions: Path | None = None) -> Iterator[SimulatedBoard]:
    """The simulated ESP32 (`python -m hil.sim`) on a fresh pty with VHIL_SIM_FAULTS=`faults`; with `sessions`,
    it records every open and close of its port there (hil/sim/sessions.py)."""
    record = ["--sessions", str(sessions)] if sessions is not None else []
    proc = subprocess.Popen([sys.executable, "-m", "hil.sim", "--fs", str(fs), *record], stdout=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, VHIL_SIM_FAULTS=faults))
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("pty "), line
        yield SimulatedBoard(line.split()[1], proc.pid, fs)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
