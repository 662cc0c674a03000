"""Console watchers: real ESP-IDF / MicroPython console text in, structured events out; addr2line decoding."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hil.serial.events import BROWNOUT, PANIC, REBOOT, RESET, TRACEBACK, WATCHDOG, Addr2Line, ConsoleEvent, ConsoleWatcher

PANIC_TEXT = (
    "Guru Meditation Error: Core  0 panic'ed (StoreProhibited). Exception was unhandled.\r\n\r\n"
    "Core  0 register dump:\r\n"
    "PC      : 0x400d2f4e  PS      : 0x00060030  A0      : 0x800d1c5a  A1      : 0x3ffb1f70  \r\n"
    "Backtrace: 0x400d2f4b:0x3ffb1f70 0x400d1c57:0x3ffb1f90 0x40086a6d:0x3ffb1fb0 |<-CORRUPTED\r\n\r\n"
    "ELF file SHA256: 0123456789abcdef\r\n\r\n"
    "Rebooting...\r\n"
    "ets Jun  8 2016 00:22:57\r\n\r\n"
    "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
)


def feed(text: str, chunk: int = 7, decoder: Addr2Line | None = None) -> list[ConsoleEvent]:
    events: list[ConsoleEvent] = []
    watcher = ConsoleWatcher(events.append, decoder)
    for start in range(0, len(text), chunk):  # split mid-line, as serial reads are
        watcher.feed(text[start:start + chunk])
    return events


def test_panic_with_backtrace_then_reset() -> None:
    events = feed(PANIC_TEXT)
    assert [e.kind for e in events] == [PANIC, RESET]
    panic = events[0]
    assert panic.complete and panic.summary.startswith("Guru Meditation Error: Core  0 panic'ed (StoreProhibited)")
    assert panic.backtrace == [("0x400d2f4b", "0x3ffb1f70"), ("0x400d1c57", "0x3ffb1f90"), ("0x40086a6d", "0x3ffb1fb0")]
    report = panic.report()
    assert report.splitlines()[0].startswith("panic: Guru Meditation Error")
    assert "not decoded" in report and "0x400d1c57:0x3ffb1f90" in report
    assert events[1].summary.startswith("rst:0xc (SW_CPU_RESET)")


def test_abort_brownout_watchdog_soft_reboot() -> None:
    text = ("abort() was called at PC 0x400d8a1b on core 1\r\n\r\nBacktrace: 0x40083a2e:0x3ffbe360\r\n\r\nRebooting...\r\n"
            "Brownout detector was triggered\r\n\r\n"
            "rst:0xf (RTCWDT_BROWN_OUT_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
            "E (5312) task_wdt: Task watchdog got triggered. The following tasks did not reset the watchdog in time:\r\n"
            "rst:0x7 (TG0WDT_SYS_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
            "MPY: soft reboot\r\n")
    events = feed(text)
    assert [e.kind for e in events] == [PANIC, BROWNOUT, BROWNOUT, WATCHDOG, WATCHDOG, REBOOT]
    assert events[0].summary.startswith("abort() was called at PC 0x400d8a1b") and events[0].backtrace


def test_micropython_traceback_inside_raw_repl_framing() -> None:
    events = feed('OK\x04Traceback (most recent call last):\r\n  File "<stdin>", line 1, in <module>\r\n'
                  "ZeroDivisionError: divide by zero\r\n\x04>")
    assert len(events) == 1 and events[0].kind == TRACEBACK
    assert events[0].summary == "ZeroDivisionError: divide by zero"
    assert events[0].details == ['  File "<stdin>", line 1, in <module>']


def test_ordinary_output_is_no_event() -> None:
    assert feed("listening on http://127.0.0.1:80\r\n>>> print('rst:0x1 in text')\r\nrst:0x1 in text\r\n") == []


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("addr2line") is None, reason="needs gcc and binutils")
def test_backtrace_decoded_with_addr2line_and_elf(tmp_path: Path) -> None:
    """The decoding path with a real toolchain: a host ELF stands in for the firmware ELF."""
    source = tmp_path / "fw.c"
    source.write_text("int handler(int x) {\n  return x * 2;\n}\nint main(void) { return handler(1); }\n")
    elf = tmp_path / "fw.elf"
    subprocess.run(["gcc", "-g", "-O0", "-no-pie", "-o", str(elf), str(source)], check=True)
    symbols = subprocess.run(["nm", str(elf)], capture_output=True, text=True, check=True).stdout
    handler = next(line.split()[0] for line in symbols.splitlines() if line.endswith(" handler"))
    address = f"0x{int(handler, 16) + 4:08x}"
    decoder = Addr2Line.configured("addr2line", elf)
    assert decoder is not None
    events = feed(PANIC_TEXT.replace("0x400d2f4b", address), decoder=decoder)
    panic = events[0]
    assert panic.decoded and "handler" in panic.decoded[0] and "fw.c:" in panic.decoded[0]
    assert "decoded backtrace" in panic.report()


def test_decoder_needs_tool_and_elf(tmp_path: Path) -> None:
    assert Addr2Line.configured(None, tmp_path / "x.elf") is None
    assert Addr2Line.configured("addr2line", tmp_path / "missing.elf") is None
    assert Addr2Line.configured("no-such-addr2line", None) is None
