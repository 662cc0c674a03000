"""Any pyserial URL: the runner drives the simulated board through an RFC 2217 port server (pyserial's own
PortManager bridging a TCP socket to the board's pty, as ser2net does on a board farm)."""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Iterator

import pytest
import serial
import serial.rfc2217
from conftest import simulated_board

from hil.serial.console import SerialConsole
from hil.serial.repl import RawRepl

pytestmark = pytest.mark.filterwarnings("ignore:set(Daemon|Name)\\(\\) is deprecated:DeprecationWarning")  # pyserial's own


class _PtyPort(serial.Serial):
    """A pty has no modem lines: report them low and ignore DTR/RTS, as ser2net does with ign_set_control."""

    def _update_dtr_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return False

    @property
    def dsr(self) -> bool:
        return False

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return False


class _Connection:
    """What PortManager writes its telnet answers to."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)


def _bridge(listener: socket.socket, port: serial.Serial, stop: threading.Event) -> None:
    connection, _ = listener.accept()
    connection.settimeout(0.05)
    manager = serial.rfc2217.PortManager(port, _Connection(connection))
    while not stop.is_set():
        try:
            data = connection.recv(4096)
            if not data:
                break
            port.write(b"".join(manager.filter(data)))
        except socket.timeout:
            pass
        waiting = port.in_waiting
        if waiting:
            connection.sendall(b"".join(manager.escape(port.read(waiting))))
    connection.close()


@pytest.fixture
def rfc2217_url(tmp_path: Path) -> Iterator[str]:
    with simulated_board(tmp_path / "fs") as board:
        yield from _rfc2217_bridge(board.pty)


def _rfc2217_bridge(pty: str) -> Iterator[str]:
    port = _PtyPort(pty, 115200, timeout=0)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    bridge = threading.Thread(target=_bridge, args=(listener, port, stop), daemon=True)
    bridge.start()
    try:
        yield f"rfc2217://127.0.0.1:{listener.getsockname()[1]}?ign_set_control"
    finally:
        stop.set()
        bridge.join(timeout=5)
        listener.close()
        port.close()


def test_exec_and_deploy_over_rfc2217(rfc2217_url: str) -> None:
    console = SerialConsole(rfc2217_url)
    try:
        repl = RawRepl(console)
        repl.recover()
        assert repl.exec_ok("print(6*7)").strip() == "42"
        deployed = repl.deploy_file(bytes(range(256)) * 8, "/over_rfc2217.bin")
        assert deployed.size == 2048
    finally:
        console.close()
