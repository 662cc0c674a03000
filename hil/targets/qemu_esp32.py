"""`qemu-esp32`: Espressif's QEMU fork (`qemu-system-xtensa -M esp32`) running MicroPython for ESP32.

Configuration (environment): VHIL_QEMU_ESP32 (the binary; default `qemu-system-xtensa` on PATH, which must know
the esp32 machine: Debian's does not), VHIL_ESP32_FIRMWARE (a MicroPython ESP32 firmware .bin, written at 0x1000;
it needs the open_eth driver for networking), optionally VHIL_ESP32_FS_IMAGE (a ready filesystem image) and
VHIL_ESP32_FS_OFFSET (default 0x200000, the `vfs` partition of MicroPython's 4 MiB layout). Otherwise the
filesystem image is built here: LittleFS v2 (as MicroPython's VfsLfs2 formats it) carrying the framework, the DUT
app and dut_config.json, when `littlefs-python` is installed; without it the app is deployed over the serial
console like on a board. The flash image is merged with `esptool merge-bin`; the NIC is open_eth with a host
port forward to the app's port 80; the console is QEMU's TCP serial server.

Without Espressif's fork on PATH the target reports itself unavailable; its command lines and images are
unit-tested (docs/hil.md: what has and has not run).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hil.errors import SetupError
from hil.serial.repl import DeployedFile
from hil.targets.base import NETWORK, SERIAL, Availability
from hil.process import ManagedProcess
from hil.probe import free_tcp_port
from hil.targets.qemu import QemuTarget, wait_listening

DEFAULT_BINARY = "qemu-system-xtensa"
INSTALL_HINT = ("build or download Espressif's QEMU (https://github.com/espressif/qemu/releases, "
                "`idf_tools.py install qemu-xtensa`), set VHIL_QEMU_ESP32=/path/to/qemu-system-xtensa and "
                "VHIL_ESP32_FIRMWARE=/path/to/micropython-esp32.bin")
FIRMWARE_OFFSET = 0x1000
DEFAULT_FS_OFFSET = 0x200000
FLASH_SIZE = "4MB"
FS_SIZE = 0x200000  # MicroPython ESP32_GENERIC partitions-4MiB.csv: vfs at 0x200000, 2 MiB
FS_BLOCK = 4096  # the flash erase block VfsLfs2 is mounted with on the ESP32
LFS_IO_SIZE = 32  # VfsLfs2's default readsize/progsize/lookahead
DUT_PORT = 80
LISTEN_TIMEOUT_S = 15.0


def merge_bin_argv(firmware: Path, output: Path, fs_image: Path | None, fs_offset: int) -> list[str]:
    argv = [sys.executable, "-m", "esptool", "--chip", "esp32", "merge-bin", "--fill-flash-size", FLASH_SIZE,
            "-o", str(output), hex(FIRMWARE_OFFSET), str(firmware)]
    if fs_image is not None:
        argv += [hex(fs_offset), str(fs_image)]
    return argv


def build_fs_image(files: dict[str, bytes], output: Path) -> bool:
    """A LittleFS v2 image of `files` (device paths -> bytes) as MicroPython's VfsLfs2 would read it.

    False when littlefs-python is not installed (the caller deploys over serial instead).
    """
    try:
        from littlefs import LittleFS
    except ImportError:
        return False
    fs = LittleFS(block_size=FS_BLOCK, block_count=FS_SIZE // FS_BLOCK, read_size=LFS_IO_SIZE,
                  prog_size=LFS_IO_SIZE, lookahead_size=LFS_IO_SIZE, disk_version=0x00020000)  # v2.0: older firmware reads it
    for device_path, data in files.items():
        relative = device_path.lstrip("/")
        parent = relative.rpartition("/")[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(relative, "wb") as handle:
            handle.write(data)
    output.write_bytes(bytes(fs.context.buffer))
    return True


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
class QemuEsp32Target(QemuTarget):
    capabilities: frozenset[str] = frozenset({SERIAL, NETWORK})
    binary: str = DEFAULT_BINARY
    firmware: Path | None = None
    fs_image: Path | None = None
    fs_offset: int = DEFAULT_FS_OFFSET
    work_dir: Path | None = None
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

    def dut_config(self) -> dict[str, object]:
        return {"host": "0.0.0.0", "port": DUT_PORT}

    def app_url(self, printed_url: str) -> str:
        # the app prints its guest address (10.0.2.15:80); the host reaches it through the forward
        guest = urlsplit(printed_url)
        if guest.port not in (None, DUT_PORT):
            raise SetupError(f"target {self.name}: the app listens on port {guest.port}, but only {DUT_PORT} is forwarded")
        return f"http://127.0.0.1:{self.http_port}"

    def launch(self) -> None:
        self.require_available()
        assert self.firmware is not None
        self.work_dir = Path(tempfile.mkdtemp(prefix="vhil-qemu-esp32-"))
        flash_image = self.work_dir / "flash.bin"
        fs_image = self.fs_image or self._built_fs_image()
        merge = subprocess.run(merge_bin_argv(self.firmware, flash_image, fs_image, self.fs_offset),
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

    def _built_fs_image(self) -> Path | None:
        """The app's filesystem image, so main.py serves at first boot; None: deploy over serial instead."""
        assert self.work_dir is not None
        files = self.app_files()
        if "/main.py" not in files:
            return None
        image = self.work_dir / "fs.img"
        if not build_fs_image(files, image):
            return None
        self.deployed = [DeployedFile(path, len(data), hashlib.sha256(data).hexdigest(), 0.0)
                         for path, data in files.items()]
        self.details["fs_image"] = "built (littlefs)"
        return image

    def stop_qemu(self) -> None:
        """Also drops the merged flash image: a hard reset boots a freshly merged one."""
        super().stop_qemu()
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
