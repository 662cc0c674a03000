"""The simulated board speaks MicroPython's protocol byte for byte: read with plain pyserial on its real pty."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Iterator

import pytest
import serial
from conftest import SimulatedBoard, simulated_board

from hil.serial.console import SerialConsole
from hil.serial.repl import RawRepl

BANNER = (b"MicroPython v1.23.0 on 2024-06-02; Generic ESP32 module with ESP32\r\n"
          b'Type "help()" for more information.\r\n>>> ')


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatedBoard]:
    with simulated_board(tmp_path / "fs") as board:
        yield board


def read_until(port: serial.Serial, end: bytes, timeout: float = 5.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(end) and time.monotonic() < deadline:
        data += port.read(max(1, port.in_waiting))
    assert data.endswith(end), f"wanted {end!r}, got {data!r}"
    return data


def test_power_on_rom_lines_banner_and_repls_byte_exact(sim: SimulatedBoard) -> None:
    with serial.Serial(sim.pty, 115200, timeout=0.2) as port:
        # the first boot may still be printing when the port opens: an evaluation's answer marks its end
        port.write(b"'sync'\r")
        read_until(port, b"\r\n'sync'\r\n>>> ")
        os.kill(sim.pid, signal.SIGUSR2)  # the EN pin: boot again while we listen
        boot = read_until(port, b">>> ")
        assert boot.startswith(b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n")
        assert b"entry 0x40080680\r\n" in boot and boot.endswith(BANNER)
        port.write(b"6*7\r")  # friendly REPL: echo, then the repr of an expression
        assert read_until(port, b">>> ") == b"6*7\r\n42\r\n>>> "
        port.write(b"\x01")
        assert read_until(port, b">") == b"\r\nraw REPL; CTRL-B to exit\r\n>"
        port.write(b"print('hi')\x04")
        assert read_until(port, b"\x04>") == b"OKhi\r\n\x04\x04>"
        port.write(b"1/0\x04")
        assert read_until(port, b"\x04>") == (b'OK\x04Traceback (most recent call last):\r\n  File "<stdin>", line 1, in '
                                              b"<module>\r\nZeroDivisionError: divide by zero\r\n\x04>")
        port.write(b"\x05A\x01")  # raw-paste: R\x01 then the 16-bit little-endian window
        answer = port.read(4)
        assert answer[:2] == b"R\x01"
        window = int.from_bytes(answer[2:], "little")
        assert window == 256
        code = b"x = 0\n" + b"x += 1\n" * 60 + b"print(x)\n"  # 486 bytes: crosses the window once
        port.write(code[:window])
        assert read_until(port, b"\x01") == b"\x01"  # the device grants the next window
        port.write(code[window:] + b"\x04")
        assert read_until(port, b"\x04>") == b"\x0460\r\n\x04\x04>"
        port.write(b"\x02")
        assert read_until(port, b">>> ") == b"\r\n" + BANNER


def test_ctrl_c_interrupts_running_code_and_soft_reboot_runs_main(sim: SimulatedBoard) -> None:
    (sim.fs / "main.py").write_text("print('main ran')\n")
    with serial.Serial(sim.pty, 115200, timeout=0.2) as port:
        port.write(b"\r")
        read_until(port, b">>> ")
        port.write(b"while True: pass\r")
        read_until(port, b"while True: pass\r\n... ")  # a compound statement continues, as in MicroPython
        port.write(b"\r")
        read_until(port, b"\r\n")
        seen = b""
        for _ in range(10):  # a Ctrl-C landing before the code starts is a plain character, as on a board
            port.write(b"\x03")
            seen += port.read(200)
            if b">>> " in seen:
                break
        assert (b'Traceback (most recent call last):\r\n  File "<stdin>", line 1, in <module>\r\nKeyboardInterrupt: \r\n>>> '
                in seen)
        time.sleep(0.2)
        port.reset_input_buffer()
        port.write(b"\x04")  # Ctrl-D at the friendly prompt: soft reboot, boot.py and main.py run
        assert read_until(port, b">>> ") == b"\r\nMPY: soft reboot\r\nmain ran\r\n" + BANNER


def test_board_filesystem_is_the_temporary_directory(sim: SimulatedBoard) -> None:
    console = SerialConsole(sim.pty)
    try:
        repl = RawRepl(console)
        repl.recover()
        out = repl.exec_ok("import os, hashlib\nf = open('/hello.txt', 'w'); f.write('hi'); f.close()\n"
                           "print(os.getcwd(), os.listdir('/'), hashlib.sha256(b'x').hexdigest()[:8])")
        assert out.strip() == "/ ['hello.txt'] 2d711642"
        ticks = repl.exec_ok("import time\nt = time.ticks_ms()\ntime.sleep_ms(20)\n"
                             "print(time.ticks_diff(time.ticks_ms(), t) >= 20, time.ticks_diff(1, (1 << 30) - 1))")
        assert ticks.strip() == "True 2"  # MicroPython's time API, wrap-around included
        assert (sim.fs / "hello.txt").read_text() == "hi"
        error = repl.exec("open('/../../etc/hostname')").error  # the board's flash is its only filesystem
        assert error.strip().splitlines()[-1] == "OSError: [Errno 2] ENOENT"
    finally:
        console.close()


def test_runner_falls_back_to_staged_writes_without_raw_paste(tmp_path: Path) -> None:
    with simulated_board(tmp_path / "fs", faults="no-raw-paste") as board:
        console = SerialConsole(board.pty)
        try:
            repl = RawRepl(console)
            repl.recover()
            code = "total = 0\n" + "".join(f"total += {i}\n" for i in range(40)) + "print(total)\n"
            assert repl.exec_ok(code).strip() == str(sum(range(40)))
            assert repl.raw_paste is False
            data = bytes(range(256)) * 2
            deployed = repl.deploy_file(data, "/blob.bin")
            assert deployed.size == 512 and (tmp_path / "fs" / "blob.bin").read_bytes() == data
        finally:
            console.close()
