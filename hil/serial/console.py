"""The serial console: one reader thread per port, a timestamped log, watchers, and waits with timeouts.

Reads are non-blocking and large, woken by select() on the port's descriptor: everything that has arrived is taken
in one read, as soon as it arrives (never one byte per `in_waiting` poll: pyserial's `socket://` reports at most
one byte waiting, and a blocking read(N) with a timeout would wait out the timeout on every short reply). Every received byte is written to the serial log as it arrives (flushed per read), with a
timestamp at each line start and secrets redacted. Watchers see the same stream, so a panic during an HTTP test is
caught even when nobody is reading the console.
"""
from __future__ import annotations

import codecs
import contextlib
import re
import select
import threading
import time
from pathlib import Path
from typing import IO, Iterator

import serial

from hil.errors import BoardFailure, SetupError
from hil.redact import redact, split_safe
from hil.serial.events import FATAL_KINDS, PANIC, Addr2Line, ConsoleEvent, ConsoleWatcher

IDLE_WAKE_S = 0.2  # how often an idle reader checks whether the console was closed
POLL_S = 0.005  # ports without a selectable descriptor (rfc2217://) are read this often
READ_SIZE = 65536
WRITE_TIMEOUT_S = 10.0
PANIC_DUMP_GRACE_S = 2.0  # after a panic line, how long to let the rest of the dump arrive before reporting it


class ConsoleTimeout(BoardFailure):
    """Expected output did not arrive in time; the message ends with what did arrive."""

    label = "hang"


class ConsoleEventError(BoardFailure):
    """An unexpected console event (panic, reset, brownout, ...) interrupted what the runner was doing."""

    def __init__(self, event: ConsoleEvent) -> None:
        super().__init__(event.headline())
        self.event = event

    def report(self) -> str:
        return self.event.report()


class ConsoleClosed(BoardFailure):
    """The port went away (QEMU exited, USB unplugged)."""

    label = "disconnected"


def _printable(text: str) -> str:
    """Control characters other than newline/tab shown as \\xNN so the log stays a faithful text file."""
    return "".join(ch if ch in "\n\t" or ch >= " " else f"\\x{ord(ch):02x}" for ch in text.replace("\r", ""))


class SerialLog:
    """Append-only text log; each line starts with a wall-clock timestamp; flushed on every write."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._at_line_start = True
        self._held = ""  # tail that might be the beginning of a secret
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8", errors="replace")

    @staticmethod
    def _stamp() -> str:
        now = time.time()
        return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d} "

    def write(self, text: str) -> None:
        if self._file is None:
            return
        with self._lock:
            safe, self._held = split_safe(self._held + text)
            out = []
            for piece in _printable(safe).splitlines(keepends=True):
                if self._at_line_start:
                    out.append(self._stamp())
                out.append(piece)
                self._at_line_start = piece.endswith("\n")
            self._file.write("".join(out))
            self._file.flush()

    def note(self, message: str) -> None:
        """A runner annotation (event seen, reset requested) on its own line."""
        self.write(("" if self._at_line_start else "\n") + f"[vhil] {message}\n")

    def position(self) -> int:
        if self._file is None:
            return 0
        with self._lock:
            return self._file.tell()

    def text_since(self, position: int) -> str:
        if self.path is None:
            return ""
        with open(self.path, "rb") as handle:
            handle.seek(position)
            return handle.read().decode("utf-8", errors="replace")

    def close(self) -> None:
        with self._lock:
            if self._file is not None and not self._file.closed:
                if self._held:
                    self._file.write(_printable(redact(self._held)))
                self._file.close()


class SerialConsole:
    """An open serial port with a background reader, watchers and an unconsumed-input buffer."""

    def __init__(self, url: str, baud: int = 115200, log_path: Path | None = None,
                 decoder: Addr2Line | None = None) -> None:
        self.url = url
        self.baud = baud
        self.log = SerialLog(log_path)
        self.events: list[ConsoleEvent] = []
        self._expected_kinds: list[frozenset[str]] = []
        self._watcher = ConsoleWatcher(self._on_event, decoder, expected=self._is_expected)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._rx = bytearray()
        self._cond = threading.Condition()
        self._closed = False
        self._error: str | None = None
        try:
            self._connect(url)
        except SetupError:
            self.log.close()
            raise

    def _connect(self, url: str) -> None:
        try:
            port = serial.serial_for_url(url, do_not_open=True, baudrate=self.baud, timeout=0)
            if not url.startswith("rfc2217://"):  # pyserial's rfc2217 refuses to open with a write timeout
                port.write_timeout = WRITE_TIMEOUT_S  # a board that stopped reading must not block the runner
            # deasserted DTR/RTS on open: on ESP32 dev boards they drive EN/IO0, asserting them resets the chip
            port.dtr = False
            port.rts = False
            port.open()
        except (serial.SerialException, ValueError, OSError) as exc:
            raise SetupError(f"cannot open serial port {url}: {exc}") from None
        self.url = url
        self.port = port
        self._closed = False
        self._error = None
        self._reader = threading.Thread(target=self._read_loop, name=f"serial-{url}", daemon=True)
        self._reader.start()

    def reconnect(self, url: str) -> None:
        """Re-open on a (possibly new) URL, e.g. after QEMU restarted; events and the log carry on."""
        self._disconnect()
        with self._cond:
            self._rx.clear()
        self.log.note(f"console reconnected on {url}")
        self._connect(url)

    # -- reading ---------------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            selectable: int | None = self.port.fileno()
        except (AttributeError, NotImplementedError, OSError, serial.SerialException):
            selectable = None
        while not self._closed:
            try:
                if selectable is not None:
                    select.select([selectable], [], [], IDLE_WAKE_S)
                data = self.port.read(READ_SIZE)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial's socket:// read racing a close from another thread
                with self._cond:
                    if not self._closed:
                        self._error = f"serial port {self.url} failed: {exc}"
                    self._cond.notify_all()
                return
            if not data:
                if selectable is None:
                    time.sleep(POLL_S)
                continue
            text = self._decoder.decode(data)
            self.log.write(text)
            with self._cond:
                self._rx += data
                self._watcher.feed(text)
                self._cond.notify_all()

    def _on_event(self, event: ConsoleEvent) -> None:
        # called with self._cond held (from the reader thread)
        self.events.append(event)
        self.log.note(f"event {event.headline()}" + (" (expected)" if event.expected else ""))

    def _is_expected(self, kind: str) -> bool:
        return any(kind in kinds for kinds in self._expected_kinds)

    @contextlib.contextmanager
    def expecting(self, *kinds: str) -> Iterator[None]:
        """Events of these kinds seen inside the block were caused by the runner (a reset, its own exec)."""
        entry = frozenset(kinds)
        with self._cond:
            self._expected_kinds.append(entry)
        try:
            yield
        finally:
            with self._cond:
                self._expected_kinds.remove(entry)

    def event_count(self) -> int:
        with self._cond:
            return len(self.events)

    def unexpected_events(self, since: int, kinds: tuple[str, ...] = FATAL_KINDS) -> list[ConsoleEvent]:
        with self._cond:
            return [e for e in self.events[since:] if e.kind in kinds and not e.expected]

    def wait_complete(self, event: ConsoleEvent, timeout: float = PANIC_DUMP_GRACE_S) -> ConsoleEvent:
        """Let a panic dump finish arriving (backtrace, reboot line) before it is reported."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not event.complete and time.monotonic() < deadline:
                self._cond.wait(0.05)
        return event

    def _raise_if_stopped(self, events_since: int | None) -> None:
        """Raise what ends a read early: an unexpected event after `events_since` (None: do not watch), or the
        console's end."""
        if events_since is not None:
            events = self.unexpected_events(events_since)
            if events:
                first = events[0]
                if first.kind == PANIC:
                    self.wait_complete(first)  # re-entrant: the condition's RLock is released while it waits
                raise ConsoleEventError(first)
        if self._error or self._closed:
            raise ConsoleClosed(self._error or "console closed")

    def read_until(self, terminator: bytes | re.Pattern[bytes], timeout: float, *, events_since: int | None = None,
                   what: str = "") -> bytes:
        """Consume and return input up to and including `terminator` (bytes or compiled regex).

        Raises ConsoleTimeout, ConsoleClosed, or ConsoleEventError when an unexpected event is seen after
        `events_since` (an index into `events`; None = do not watch).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if isinstance(terminator, bytes):
                    index = self._rx.find(terminator)
                    end = index + len(terminator) if index >= 0 else -1
                else:
                    match = terminator.search(self._rx)
                    end = match.end() if match else -1
                if end >= 0:
                    data = bytes(self._rx[:end])
                    del self._rx[:end]
                    return data
                self._raise_if_stopped(events_since)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tail = bytes(self._rx[-200:])
                    label = what or repr(terminator if isinstance(terminator, bytes) else terminator.pattern)
                    raise ConsoleTimeout(redact(f"no {label} from {self.url} within {timeout:g} s; last output: {tail!r}"))
                self._cond.wait(min(remaining, 0.1))

    def read_exact(self, size: int, timeout: float, *, events_since: int | None = None) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._rx) < size:
                self._raise_if_stopped(events_since)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ConsoleTimeout(f"expected {size} bytes from {self.url} within {timeout:g} s, got {bytes(self._rx)!r}")
                self._cond.wait(min(remaining, 0.1))
            data = bytes(self._rx[:size])
            del self._rx[:size]
            return data

    def pending(self) -> int:
        with self._cond:
            return len(self._rx)

    def read_available(self, settle: float = 0.0) -> bytes:
        """Everything received so far (after waiting `settle` seconds of quiet)."""
        if settle:
            last = -1
            deadline = time.monotonic() + max(settle * 10, 1.0)
            while time.monotonic() < deadline:
                with self._cond:
                    size = len(self._rx)
                if size == last:
                    break
                last = size
                time.sleep(settle)
        with self._cond:
            data = bytes(self._rx)
            self._rx.clear()
            return data

    # -- writing ---------------------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise ConsoleClosed(f"write to {self.url} failed: {exc}") from None

    def pulse_reset(self) -> None:
        """The esptool classic reset: EN low via RTS while IO0 stays high (DTR off), then release."""
        self.port.dtr = False
        self.port.rts = True
        time.sleep(0.1)
        self.port.rts = False

    def _disconnect(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._reader.join(timeout=2)
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass

    def close(self) -> None:
        self._disconnect()
        self.log.close()
