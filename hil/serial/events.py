"""Console watchers: turn the board's console stream into structured events.

Recognised: MicroPython tracebacks, ESP-IDF panics (`Guru Meditation Error`, `abort() was called`) with the
`Backtrace:` PC:SP pairs, ROM reset lines (`rst:0x..`) with their reasons (brownout and watchdog resets named
as such), the brownout detector, the task watchdog, and MicroPython soft reboots. Backtraces are decoded with
addr2line when a firmware ELF and the matching addr2line are configured; otherwise the raw addresses stay.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hil.redact import redact

PANIC = "panic"
TRACEBACK = "traceback"
RESET = "reset"
BROWNOUT = "brownout"
WATCHDOG = "watchdog"
REBOOT = "reboot"
# kinds that fail a test (or an exec/run) unless the runner asked for them
FATAL_KINDS = (PANIC, BROWNOUT, WATCHDOG, RESET, REBOOT, TRACEBACK)

_PANIC_START = re.compile(r"(Guru Meditation Error:.*|abort\(\) was called at PC 0x[0-9a-fA-F]+.*|\*\*\*ERROR\*\*\* A stack overflow.*)")
_BACKTRACE = re.compile(r"Backtrace:\s*(.*)")
_PC_SP = re.compile(r"(0x[0-9a-fA-F]{8}):(0x[0-9a-fA-F]{8})")
_ROM_RESET = re.compile(r"^rst:(0x[0-9a-fA-F]+) \(([A-Z0-9_]+)\)")
_BROWNOUT = re.compile(r"Brownout detector was triggered")
_TASK_WDT = re.compile(r"(Task watchdog got triggered.*|task_wdt: .*)")
_SOFT_REBOOT = re.compile(r"(MPY: )?soft reboot$")
_PANIC_END = re.compile(r"^(Rebooting\.\.\.|ets [A-Z][a-z]{2} .*|rst:0x.*|ESP-ROM:.*)")
_MAX_PANIC_LINES = 60  # a panic dump is ~20 lines; stop collecting if the end marker never comes


@dataclass
class ConsoleEvent:
    kind: str
    summary: str  # the line that identified it
    time: float  # time.time() when seen
    details: list[str] = field(default_factory=list)
    backtrace: list[tuple[str, str]] = field(default_factory=list)  # (PC, SP) pairs as printed
    decoded: list[str] = field(default_factory=list)  # addr2line output, one line per frame
    expected: bool = False  # the runner caused it (a reset it asked for, a traceback from its own exec)
    complete: bool = True  # a panic dump still being collected is not complete

    def headline(self) -> str:
        return redact(f"{self.kind}: {self.summary}")

    def report(self) -> str:
        """The one-line headline followed by details, backtrace (decoded when possible)."""
        lines = [self.headline()]
        lines += [f"  {line}" for line in self.details]
        if self.decoded:
            lines.append("  decoded backtrace:")
            lines += [f"    {line}" for line in self.decoded]
        elif self.backtrace:
            lines.append("  backtrace (not decoded: no ELF/addr2line configured): "
                         + " ".join(f"{pc}:{sp}" for pc, sp in self.backtrace))
        return redact("\n".join(lines))

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "summary": redact(self.summary), "time": self.time,
                "details": [redact(d) for d in self.details], "backtrace": [list(p) for p in self.backtrace],
                "decoded": self.decoded, "expected": self.expected}


class Addr2Line:
    """Decode code addresses with a toolchain's addr2line against the firmware ELF."""

    def __init__(self, tool: str, elf: Path) -> None:
        self.tool = tool
        self.elf = elf

    @classmethod
    def configured(cls, tool: str | None, elf: Path | None) -> "Addr2Line | None":
        if not tool or elf is None or not elf.is_file() or shutil.which(tool) is None:
            return None
        return cls(tool, elf)

    def decode(self, addresses: list[str]) -> list[str]:
        if not addresses:
            return []
        try:
            result = subprocess.run([self.tool, "-pfiaC", "-e", str(self.elf), *addresses],
                                    capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [f"(addr2line failed: {exc})"]
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]


class ConsoleWatcher:
    """Fed the console text as it arrives; emits events through `on_event` (once when first seen)."""

    def __init__(self, on_event: Callable[[ConsoleEvent], None], decoder: Addr2Line | None = None,
                 expected: Callable[[str], bool] = lambda kind: False) -> None:
        self.on_event = on_event
        self.decoder = decoder
        self.expected = expected  # asked at event time: did the runner cause an event of this kind?
        self._partial = ""
        self._panic: ConsoleEvent | None = None
        self._traceback: list[str] | None = None  # frame lines of a traceback being read

    def feed(self, text: str) -> None:
        text = self._partial + text
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line.rstrip("\r"))

    def _emit(self, kind: str, summary: str, complete: bool = True) -> ConsoleEvent:
        event = ConsoleEvent(kind=kind, summary=summary, time=time.time(), expected=self.expected(kind),
                             complete=complete)
        self.on_event(event)
        return event

    def _finish_panic(self) -> None:
        panic, self._panic = self._panic, None
        if panic is None:
            return
        if self.decoder is not None and panic.backtrace:
            panic.decoded = self.decoder.decode([pc for pc, _ in panic.backtrace])
        panic.complete = True

    def _line(self, line: str) -> None:
        line = line.strip("\x00")
        if self._panic is not None:
            if _PANIC_END.match(line) or len(self._panic.details) >= _MAX_PANIC_LINES:
                self._finish_panic()
            else:
                if line.strip():
                    self._panic.details.append(line)
                match = _BACKTRACE.search(line)
                if match:
                    self._panic.backtrace = _PC_SP.findall(match.group(1))
                return
        if self._traceback is not None:
            if line.startswith(" "):
                self._traceback.append(line)
                return
            # reported once complete: the exception line is what names it
            event = self._emit(TRACEBACK, line.lstrip("\x04") or "(no exception line)")
            event.details, self._traceback = self._traceback, None
            return
        if line.endswith("Traceback (most recent call last):"):  # raw REPL output may precede it: OK\x04Traceback
            self._traceback = []
            return
        match = _PANIC_START.search(line)
        if match:
            self._panic = self._emit(PANIC, match.group(1).strip(), complete=False)
            return
        match = _ROM_RESET.match(line)
        if match:
            reason = match.group(2)
            kind = BROWNOUT if "BROWN" in reason else WATCHDOG if "WDT" in reason and "SW_" not in reason else RESET
            self._emit(kind, line.strip())
            return
        if _BROWNOUT.search(line):
            self._emit(BROWNOUT, "Brownout detector was triggered")
            return
        match = _TASK_WDT.search(line)
        if match:
            self._emit(WATCHDOG, match.group(1).strip())
            return
        match = _SOFT_REBOOT.search(line.strip())
        if match:
            self._emit(REBOOT, match.group(0))
