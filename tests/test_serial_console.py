"""The console reader on real ptys (and pyserial's loop://, which has no descriptor to select on)."""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from hil.serial.console import ConsoleClosed, ConsoleEventError, ConsoleTimeout, SerialConsole
from hil.serial.events import PANIC, RESET


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def test_reads_across_chunks_and_logs_with_timestamps(tmp_path: Path, pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    console = SerialConsole(path, log_path=tmp_path / "serial.log")
    try:
        def board() -> None:
            for piece in (b"ab", b"c\r\nrest", b" of line\x04\r\n"):
                os.write(master, piece)
                time.sleep(0.05)
        threading.Thread(target=board).start()
        assert console.read_until(b"\r\n", 5) == b"abc\r\n"
        assert console.read_until(re.compile(rb"line\x04"), 5) == b"rest of line\x04"
        console.write(b"to the board")
        assert os.read(master, 100) == b"to the board"
    finally:
        console.close()
    lines = (tmp_path / "serial.log").read_text().splitlines()
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} abc$", lines[0])
    assert lines[1].endswith("rest of line\\x04")


def test_a_panic_while_waiting_raises_with_the_event(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    console = SerialConsole(path)
    try:
        since = console.event_count()
        os.write(master, b"Guru Meditation Error: Core  0 panic'ed (IllegalInstruction). Exception was unhandled.\r\n"
                         b"Backtrace: 0x400d1234:0x3ffb0000 0x400d5678:0x3ffb0010\r\n\r\nRebooting...\r\n")
        with pytest.raises(ConsoleEventError) as raised:
            console.read_until(b">>> ", 5, events_since=since)
        assert raised.value.event.kind == PANIC and raised.value.event.complete
        assert raised.value.event.backtrace == [("0x400d1234", "0x3ffb0000"), ("0x400d5678", "0x3ffb0010")]
        with console.expecting(RESET):  # a reset the runner asked for does not interrupt it
            since = console.event_count()
            os.write(master, b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n>>> ")
            assert console.read_until(b">>> ", 5, events_since=since).endswith(b">>> ")
        assert console.events[-1].expected
    finally:
        console.close()


def test_timeout_names_what_was_awaited_and_what_came(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    console = SerialConsole(path)
    try:
        os.write(master, b"partial output")
        with pytest.raises(ConsoleTimeout, match=r"no raw REPL prompt from .* within 0.3 s; last output: b'partial output'"):
            console.read_until(b">", 0.3, what="raw REPL prompt")
    finally:
        console.close()


def test_port_going_away_is_console_closed(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    console = SerialConsole(path)
    try:
        os.close(master)  # the other end disappears, as when QEMU exits
        with pytest.raises(ConsoleClosed):
            console.read_until(b">>> ", 5)
    finally:
        console.close()


def test_ports_without_a_descriptor_are_polled() -> None:
    console = SerialConsole("loop://")
    try:
        console.write(b"echoed back\r\n")
        assert console.read_until(b"\r\n", 5) == b"echoed back\r\n"
    finally:
        console.close()
