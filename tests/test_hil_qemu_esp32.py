"""qemu-esp32 and esptool flashing, as far as they run here: Espressif's QEMU is not installable on this machine,
so the image merge runs for real (esptool merge-bin) and the QEMU/esptool command lines are checked."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hil.errors import SetupError
from hil.inventory import Board, FlashImage
from hil.targets.flash import esptool_argv, flash_board
from hil.targets.qemu_esp32 import (DEFAULT_FS_OFFSET, DUT_PORT, FS_SIZE, QemuEsp32Target, build_fs_image,
                                    make_qemu_esp32_target, merge_bin_argv, qemu_esp32_argv)


def test_merge_bin_places_firmware_and_filesystem(tmp_path: Path) -> None:
    firmware = tmp_path / "micropython.bin"
    firmware.write_bytes(b"\xe9" + b"F" * 4095)  # esptool only copies it; 0xE9 is the image magic
    fs_image = tmp_path / "fs.img"
    fs_image.write_bytes(b"L" * 8192)
    output = tmp_path / "flash.bin"
    subprocess.run(merge_bin_argv(firmware, output, fs_image, DEFAULT_FS_OFFSET), check=True, capture_output=True)
    flash = output.read_bytes()
    assert len(flash) == 4 * 1024 * 1024
    assert flash[0x1000:0x1000 + 4096][1:] == b"F" * 4095
    assert flash[DEFAULT_FS_OFFSET:DEFAULT_FS_OFFSET + 8192] == b"L" * 8192
    assert set(flash[0x3000:DEFAULT_FS_OFFSET]) == {0xFF}  # erased flash between the regions


def test_qemu_command_line_forwards_the_app_port_and_serves_serial_on_tcp(tmp_path: Path) -> None:
    argv = qemu_esp32_argv("/opt/qemu/bin/qemu-system-xtensa", tmp_path / "flash.bin", 4555, 4556)
    assert argv[:4] == ["/opt/qemu/bin/qemu-system-xtensa", "-nographic", "-machine", "esp32"]
    assert f"file={tmp_path / 'flash.bin'},if=mtd,format=raw" in argv
    assert f"user,model=open_eth,hostfwd=tcp:127.0.0.1:4556-:{DUT_PORT}" in argv
    assert "tcp:127.0.0.1:4555,server=on,wait=off" in argv


def test_unavailable_with_reason_and_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VHIL_QEMU_ESP32", str(tmp_path / "nope"))
    availability = make_qemu_esp32_target("qemu-esp32").availability()
    assert not availability.ok and "not found" in availability.reason and "VHIL_QEMU_ESP32" in availability.reason
    if shutil.which("qemu-system-arm"):  # a real QEMU that has no esp32 machine (like Debian's xtensa one)
        target = QemuEsp32Target(name="qemu-esp32", binary="qemu-system-arm", firmware=tmp_path / "fw.bin")
        assert "has no esp32 machine" in target.availability().reason
    monkeypatch.setenv("VHIL_ESP32_FS_OFFSET", "two megabytes")
    with pytest.raises(SetupError, match="VHIL_ESP32_FS_OFFSET"):
        make_qemu_esp32_target("qemu-esp32")


def test_app_url_is_the_host_side_of_the_forward() -> None:
    target = QemuEsp32Target(name="qemu-esp32", http_port=4556)
    assert target.app_url("http://10.0.2.15:80") == "http://127.0.0.1:4556"
    with pytest.raises(SetupError, match="only 80 is forwarded"):
        target.app_url("http://10.0.2.15:8080")


def test_esptool_command_line_from_the_inventory(tmp_path: Path) -> None:
    board = Board(id="b1", chip="esp32s3", port="rfc2217://127.0.0.1:4001", reset="dtr-rts", flash_baud=921600,
                  erase=True, images=(FlashImage(0x0, tmp_path / "boot.bin"), FlashImage(0x10000, tmp_path / "app.bin")))
    argv = esptool_argv(board)
    assert argv[1:3] == ["-m", "esptool"]
    assert argv[3:] == ["--chip", "esp32s3", "--port", "rfc2217://127.0.0.1:4001", "--baud", "921600",
                        "--before", "default-reset", "--after", "hard-reset", "write-flash", "--erase-all",
                        "0x0", str(tmp_path / "boot.bin"), "0x10000", str(tmp_path / "app.bin")]
    soft = Board(id="b2", chip="esp32", port="/dev/ttyUSB0", reset="soft", images=board.images)
    assert "no-reset" in esptool_argv(soft)


def test_flash_skipped_without_images_and_missing_image_is_setup_error(tmp_path: Path) -> None:
    assert "no flash.images" in (flash_board(Board(id="b1", chip="esp32", port="/dev/ttyUSB0")).skipped or "")
    board = Board(id="b1", chip="esp32", port="/dev/ttyUSB0", images=(FlashImage(0x1000, tmp_path / "missing.bin"),))
    with pytest.raises(SetupError, match="board b1: flash image .*missing.bin not found"):
        flash_board(board)


def test_filesystem_image_carries_the_app_as_littlefs(tmp_path: Path) -> None:
    littlefs = pytest.importorskip("littlefs", reason="needs littlefs-python to build the image")
    files = {"/main.py": b"print('hi')\n", "/viperhttp/app.py": b"APP = 1\n", "/dut_config.json": b'{"port": 80}'}
    image = tmp_path / "fs.img"
    assert build_fs_image(files, image)
    assert image.stat().st_size == FS_SIZE
    # read it back the way the board will: LittleFS with VfsLfs2's geometry
    fs = littlefs.LittleFS(block_size=4096, block_count=FS_SIZE // 4096, read_size=32, prog_size=32,
                           lookahead_size=32, mount=False)
    fs.context.buffer = bytearray(image.read_bytes())
    fs.mount()
    assert sorted(fs.listdir("/")) == ["dut_config.json", "main.py", "viperhttp"]
    for device_path, data in files.items():
        with fs.open(device_path.lstrip("/"), "rb") as handle:
            assert handle.read() == data
