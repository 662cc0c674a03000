"""What the QEMU targets share: a QEMU process with its serial console on a loopback TCP port, restarted for a
hard reset (QEMU's machines here have no reset line the runner can pull)."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from hil.targets.serial import SerialTarget
from hil.process import ManagedProcess


def wait_listening(port: int, process: ManagedProcess, timeout: float) -> bool:
    """True once 127.0.0.1:port accepts; False if the process exited first (e.g. the port was taken)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            return False
        try:
            # a probe connection would take QEMU's single client slot; checking the bound socket is enough
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))
        except OSError:
            # bound, by QEMU or by someone who took the port first; QEMU exits at once when it loses that race
            time.sleep(0.2)
            return process.alive()
        time.sleep(0.05)
    return False


@dataclass
class QemuTarget(SerialTarget):
    kind: str = "qemu"
    process: ManagedProcess | None = None
    serial_port: int = 0

    def console_url(self) -> str:
        return f"socket://127.0.0.1:{self.serial_port}"

    def hard_reset(self) -> None:
        """A power cycle: QEMU is restarted and the console reconnected."""
        self.stop_qemu()
        self.launch()
        if self.console is not None:
            self.console.reconnect(self.console_url())
        else:
            self.open_console()

    def stop(self) -> None:
        super().stop()
        self.stop_qemu()

    def stop_qemu(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
