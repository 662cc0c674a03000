"""`qemu-esp32`: Espressif's QEMU fork (`qemu-system-xtensa -M esp32`) running MicroPython for ESP32.

Configuration (environment): VHIL_QEMU_ESP32 (the binary; default `qemu-system-xtensa` on PATH, which must know
the esp32 machine: Debian's does not), VHIL_ESP32_FIRMWARE (a MicroPython ESP32 firmware .bin, written at 0x1000;
it needs the open_eth driver for networking), optionally VHIL_ESP32_FS_IMAGE (a filesystem image already carrying
the DUT app) and VHIL_ESP32_FS_OFFSET (default 0x200000). Without a filesystem image the app is deployed over the
serial console like on a board. The flash image is merged with `esptool merge-bin`; the NIC is open_eth with a
host port forward to the app's port 80; the console is QEMU's TCP serial server.

Not exercised here: Espressif's fork cannot be installed on this machine. The command lines are unit-tested.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hil.errors import SetupError
from hil.serial.target import SerialTarget
from hil.targets.base import NETWORK, SERIAL, Availability
from hil.targets.process import ManagedProcess
from hil.targets.qemu_microbit import free_tcp_port, wait_listening

DEFAULT_BINARY = "qemu-system-xtensa"
INSTALL_HINT = ("build or download Espressif's QEMU (https://github.com/espressif/qemu/releases, "
                "`idf_tools.py install qemu-xtensa`), set VHIL_QEMU_ESP32=/path/to/qemu-system-xtensa and "
                "VHIL_ESP32_FIRMWARE=/path/to/micropython-esp32.bin")
FIRMWARE_OFFSET = 0x1000
DEFAULT_FS_OFFSET = 0x200000
FLASH_SIZE = "4MB"
DUT_PORT = 80
LISTEN_TIMEOUT_S = 15.0


def merge_bin_argv(firmware: Path, output: Path, fs_image: Path | None, fs_offset: int) -> list[str]:
    argv = [sys.executable, "-m", "esptool", "--chip", "esp32", "merge-bin", "--fill-flash-size", FLASH_SIZE,
            "-o", str(output), hex(FIRMWARE_OFFSET), str(firmware)]
    if fs_image is not None:
        argv += [hex(fs_offset), str(fs_image)]
    return argv


def qemu_esp32_argv(binary: str, flash_image: Path, serial_port: int, http_port: int) -> list[str]:
    return [binary, "-nographic", "-machine", "esp32", "-m", "4M",
            "-drive", f"file={flash_image},if=mtd,format=raw",
            "-nic", f"user,model=open_eth,hostfwd=tcp:127.0.0.1:{http_port}-:{DUT_PORT}",
            "-serial", f"tcp:127.0.0.1:{serial_port},server=on,wait=off", "-monitor", "none"]


def machine_supported(binary: str) -> bool:
    try:
        result = subprocess.run([binary, "-machine", "help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.split()[:1] == ["esp32"] for line in result.stdout.splitlines())


@dataclass
class QemuEsp32Target(SerialTarget):
    kind: str = "qemu"
    capabilities: frozenset[str] = frozenset({SERIAL, NETWORK})
    binary: str = DEFAULT_BINARY
    firmware: Path | None = None
    fs_image: Path | None = None
    fs_offset: int = DEFAULT_FS_OFFSET
    process: ManagedProcess | None = None
    work_dir: Path | None = None
    serial_port: int = 0
    http_port: int = 0

    def availability(self) -> Availability:
        path = shutil.which(self.binary)
        if path is None:
            return Availability(False, f"{self.binary} not found. {INSTALL_HINT}")
        if not machine_supported(path):
            return Availability(False, f"{path} has no esp32 machine (Debian's QEMU lacks it). {INSTALL_HINT}")
        if self.firmware is None or not self.firmware.is_file():
            return Availability(False, f"no MicroPython ESP32 firmware ({self.firmware or 'VHIL_ESP32_FIRMWARE unset'}). {INSTALL_HINT}")
        if self.fs_image is not None and not self.fs_image.is_file():
            return Availability(False, f"VHIL_ESP32_FS_IMAGE={self.fs_image} not found")
        return Availability(True)

    def console_url(self) -> str:
        return f"socket://127.0.0.1:{self.serial_port}"

    def dut_config(self) -> dict[str, object]:
        return {"host": "0.0.0.0", "port": DUT_PORT}

    def app_url(self, printed_url: str) -> str:
        # the app prints its guest address (10.0.2.15:80); the host reaches it through the forward
        guest = urlsplit(printed_url)
        if guest.port not in (None, DUT_PORT):
            raise SetupError(f"target {self.name}: the app listens on port {guest.port}, but only {DUT_PORT} is forwarded")
        return f"http://127.0.0.1:{self.http_port}"

    def launch(self) -> None:
        availability = self.availability()
        if not availability.ok:
            raise SetupError(f"target {self.name} unavailable: {availability.reason}")
        assert self.firmware is not None
        self.work_dir = Path(tempfile.mkdtemp(prefix="vhil-qemu-esp32-"))
        flash_image = self.work_dir / "flash.bin"
        merge = subprocess.run(merge_bin_argv(self.firmware, flash_image, self.fs_image, self.fs_offset),
                               capture_output=True, text=True, timeout=120)
        if merge.returncode != 0:
            raise SetupError(f"target {self.name}: esptool merge-bin failed: {merge.stderr.strip().splitlines()[-1:]}")
        self.serial_port, self.http_port = free_tcp_port(), free_tcp_port()
        log = self.log_dir / "qemu.log" if self.log_dir else None
        self.process = ManagedProcess(qemu_esp32_argv(self.binary, flash_image, self.serial_port, self.http_port),
                                      log_path=log, die_with_parent=True)
        if not wait_listening(self.serial_port, self.process, LISTEN_TIMEOUT_S):
            raise SetupError(f"target {self.name}: QEMU did not open its serial port: {self.process.output()[-300:]}")
        self.details.update(pid=self.process.pid, serial_port=self.serial_port, http_port=self.http_port)

    def hard_reset(self) -> None:
        """A power cycle: QEMU restarted on a freshly merged image (the filesystem image is rewritten too)."""
        self._stop_qemu()
        self.launch()
        if self.console is not None:
            self.console.reconnect(self.console_url())
        else:
            self.open_console()

    def stop(self) -> None:
        super().stop()
        self._stop_qemu()

    def _stop_qemu(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None


def make_qemu_esp32_target(name: str, boards_path: object = None) -> QemuEsp32Target:
    firmware = os.environ.get("VHIL_ESP32_FIRMWARE")
    fs_image = os.environ.get("VHIL_ESP32_FS_IMAGE")
    offset_text = os.environ.get("VHIL_ESP32_FS_OFFSET", hex(DEFAULT_FS_OFFSET))
    try:
        fs_offset = int(offset_text, 0)
    except ValueError:
        raise SetupError(f"VHIL_ESP32_FS_OFFSET={offset_text!r} is not a number; use e.g. 0x200000") from None
    return QemuEsp32Target(name=name, binary=os.environ.get("VHIL_QEMU_ESP32", DEFAULT_BINARY),
                           firmware=Path(firmware) if firmware else None,
                           fs_image=Path(fs_image) if fs_image else None, fs_offset=fs_offset)
