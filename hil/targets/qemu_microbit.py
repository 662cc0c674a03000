"""`qemu-microbit`: Debian's qemu-system-arm running the micro:bit's MicroPython 1.9.2 (serial only).

It exercises the runner against a real MicroPython REPL that has no raw-paste mode, 16 KiB of RAM and an `os`
without `ilistdir`/`stat`, and that loses bytes on long plain raw REPL writes. Serial is QEMU's TCP server.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hil.errors import SetupError
from hil.targets.base import SERIAL, Availability
from hil.process import ManagedProcess
from hil.probe import free_tcp_port
from hil.targets.qemu import QemuTarget, wait_listening

QEMU_BINARY = "qemu-system-arm"
FIRMWARE = Path("/usr/share/firmware-microbit-micropython/firmware.hex")
INSTALL_HINT = "apt-get install qemu-system-arm firmware-microbit-micropython"
PORT_ATTEMPTS = 3
LISTEN_TIMEOUT_S = 10.0


def qemu_microbit_argv(binary: str, firmware: Path, serial_port: int) -> list[str]:
    return [binary, "-M", "microbit", "-device", f"loader,file={firmware}", "-nographic", "-monitor", "none",
            "-serial", f"tcp:127.0.0.1:{serial_port},server=on,wait=off"]


@dataclass
class QemuMicrobitTarget(QemuTarget):
    capabilities: frozenset[str] = frozenset({SERIAL})
    binary: str = QEMU_BINARY
    firmware: Path = FIRMWARE

    def availability(self) -> Availability:
        if shutil.which(self.binary) is None:
            return Availability(False, f"{self.binary} not found; install it: {INSTALL_HINT}")
        if not self.firmware.is_file():
            return Availability(False, f"{self.firmware} not found; install it: {INSTALL_HINT}")
        return Availability(True)

    def launch(self) -> None:
        self.require_available()
        log = self.log_dir / "qemu.log" if self.log_dir else None
        for _ in range(PORT_ATTEMPTS):
            self.serial_port = free_tcp_port()
            process = ManagedProcess(qemu_microbit_argv(self.binary, self.firmware, self.serial_port), log_path=log,
                                     die_with_parent=True)
            self.process = process
            if wait_listening(self.serial_port, process, LISTEN_TIMEOUT_S):
                self.details.update(pid=process.pid, serial_port=self.serial_port)
                return
            process.stop()  # lost the race for the port: try another
        raise SetupError(f"target {self.name}: QEMU did not open its serial port; output: {process.output()[-300:]}")


def make_qemu_microbit_target(name: str, boards_path: object = None) -> QemuMicrobitTarget:
    return QemuMicrobitTarget(name=name, binary=os.environ.get("VHIL_QEMU_ARM", QEMU_BINARY))
