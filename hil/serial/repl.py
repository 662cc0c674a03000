"""The raw REPL client: recovery, raw REPL enter/exit, exec, raw-paste, file deployment, soft reboot.

Protocol (MicroPython's own): Ctrl-A enters raw REPL (`raw REPL; CTRL-B to exit\\r\\n>`), code then Ctrl-D runs it
(`OK`, stdout, `\\x04`, stderr, `\\x04`, `>`). Raw-paste (`\\x05A\\x01` -> `R\\x01` + 16-bit window) adds flow control;
firmware without it (MicroPython < 1.14, e.g. the micro:bit's 1.9.2) loses bytes on long plain raw REPL writes, so
there long code is staged in short statements, each checked on the device.
"""
from __future__ import annotations

import hashlib
import re
import struct
import time
from dataclasses import dataclass
from typing import Callable

from hil.errors import BoardFailure
from hil.probe import READY_LINE_PATTERN
from hil.serial.console import ConsoleEventError, ConsoleTimeout, SerialConsole
from hil.serial.events import REBOOT, TRACEBACK

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
FRIENDLY_PROMPT = b">>> "
READY_RE = re.compile(READY_LINE_PATTERN.encode() + rb"\r?\n")
# the banner ends `Type "help()" for more information.` then the prompt: main.py ended without serving
_BANNER_PROMPT_RE = re.compile(rb'for more information\.\r\n>>> ')
# Bytes per plain raw REPL write: longer ones lose bytes without raw-paste, paced or not (docs/hil.md has the
# measurements), so longer code is staged.
PLAIN_WRITE_LIMIT = 60
STAGE_CHUNK_REPR = 48  # repr bytes per staged statement, so `_a(b'...',NN)` stays within PLAIN_WRITE_LIMIT
# Device helpers for staging: keep a piece only if it arrived whole; print whether it did. Each <= 60 bytes.
_STAGE_EXEC_SETUP = (b"_s=[]", b"def _a(b,n):\n if len(b)==n:_s.append(b)\n print(len(b)==n)")
_STAGE_FILE_SETUP = (b"def _w(b,n):\n if len(b)==n:_f.write(b)\n print(len(b)==n)",)
PASTE_CHUNK = 2048  # raw bytes per file-write statement when raw-paste carries it
STAGE_RETRIES = 3
PROMPT_TIMEOUT_S = 5.0
RECOVER_ATTEMPT_S = 1.0
EXEC_TIMEOUT_S = 30.0


class ReplError(BoardFailure):
    """The board did not speak the raw REPL protocol as expected."""


@dataclass
class ExecResult:
    output: str  # what the code printed
    error: str  # the traceback text, empty when the code ran through

    @property
    def ok(self) -> bool:
        return not self.error


class ExecTimeout(BoardFailure):
    """The code was still running at the timeout; it was interrupted and the board answered."""

    label = "timeout"


class ExecFailed(BoardFailure):
    """Code run on the device ended with a traceback (exec_ok)."""

    def __init__(self, result: ExecResult) -> None:
        super().__init__(f"device code failed: {result.error.strip().splitlines()[-1] if result.error.strip() else '?'}")
        self.result = result


@dataclass
class DeployedFile:
    path: str  # on the device
    size: int
    digest: str  # sha256 hex when the device has hashlib, else "sum:N" (byte sum mod 2**32)
    seconds: float


def _chunks_by_repr(data: bytes, limit: int) -> list[bytes]:
    """Split `data` so that each piece's bytes literal (repr) is at most `limit` characters."""
    pieces: list[bytes] = []
    start = 0
    while start < len(data):
        end, size = start, 3  # b'' quotes
        while end < len(data):
            cost = len(repr(data[end:end + 1])) - 3
            if size + cost > limit:
                break
            size += cost
            end += 1
        pieces.append(data[start:end])
        start = end
    return pieces


def _decode_reply(raw: bytes) -> str:
    """One section of a raw-REPL reply (output or error) without its \\x04 terminator, as text."""
    return raw[:-1].decode("utf-8", errors="replace").replace("\r\n", "\n")


def _sum_digest(data: bytes) -> str:
    return f"sum:{sum(data) & 0xFFFFFFFF}"


# Device side of verification: size and sha256 (hashlib or uhashlib), or a byte sum where neither exists.
_VERIFY_CODE = """\
try:
 import hashlib as _h
except ImportError:
 try:
  import uhashlib as _h
 except ImportError:
  _h=None
_d=_h.sha256() if _h else None
_n=_t=0
_f=open({path!r},'rb')
while 1:
 _b=_f.read(256)
 if not _b:break
 _n+=len(_b)
 if _d:_d.update(_b)
 else:_t=(_t+sum(_b))&0xffffffff
_f.close()
print(_n,''.join('%02x'%x for x in _d.digest()) if _d else 'sum:%d'%_t)
"""
_MKDIRS_CODE = """\
import os
_p=''
for _c in {parts!r}:
 _p+='/'+_c
 try:
  os.mkdir(_p)
 except OSError:
  pass
"""


class RawRepl:
    """Drives one board's REPL over a SerialConsole."""

    def __init__(self, console: SerialConsole) -> None:
        self.console = console
        self.in_raw = False
        self.raw_paste: bool | None = None  # None until the firmware has been asked

    # -- modes -----------------------------------------------------------------------------------------------
    def recover(self, timeout: float = PROMPT_TIMEOUT_S) -> None:
        """Whatever state the board was left in (running code, raw REPL, half a line): get a friendly prompt.

        Retried within `timeout`: a Ctrl-C that lands while the board is still booting is only a character in
        its input buffer, and main.py starting afterwards would keep running.
        """
        deadline = time.monotonic() + timeout
        with self.console.expecting(TRACEBACK):
            while True:
                self.console.write(b"\r\x03\x03")
                time.sleep(0.05)
                self.console.read_available()
                self.console.write(b"\x02")  # leave raw REPL; in the friendly REPL it reprints the banner
                attempt = min(RECOVER_ATTEMPT_S, max(0.05, deadline - time.monotonic()))
                try:
                    self.console.read_until(FRIENDLY_PROMPT, attempt, what="friendly REPL prompt `>>> `")
                    break
                except ConsoleTimeout:
                    if time.monotonic() >= deadline:
                        raise
            self.console.read_available(settle=0.05)
        self.in_raw = False

    def enter_raw(self, timeout: float = PROMPT_TIMEOUT_S) -> None:
        self.console.write(b"\r\x01")
        self.console.read_until(RAW_BANNER, timeout, what="raw REPL banner")
        self.in_raw = True

    def exit_raw(self, timeout: float = PROMPT_TIMEOUT_S) -> None:
        self.console.write(b"\x02")
        self.console.read_until(FRIENDLY_PROMPT, timeout, what="friendly REPL prompt after Ctrl-B")
        self.in_raw = False

    def ensure_raw(self) -> None:
        if not self.in_raw:
            self.recover()
            self.enter_raw()

    # -- exec ------------------------------------------------------------------------------------------------
    def exec(self, code: str | bytes, timeout: float = EXEC_TIMEOUT_S) -> ExecResult:
        """Run code in the raw REPL; ConsoleEventError if the board panics or resets meanwhile."""
        data = code.encode("utf-8") if isinstance(code, str) else code
        self.ensure_raw()
        since = self.console.event_count()
        self.console.read_available()  # stray bytes (line noise) would be taken for the reply
        with self.console.expecting(TRACEBACK):
            try:
                if self.raw_paste is not False and self._try_raw_paste(data, since):
                    return self._read_result(timeout, since)
                if len(data) <= PLAIN_WRITE_LIMIT:
                    return self._exec_plain(data, timeout, since)
                return self._exec_staged(data, timeout, since)
            except ConsoleTimeout as exc:
                self.in_raw = False  # unknown state: the next exec starts with recovery
                self._interrupt_after_timeout(exc, timeout)
                raise
            except ConsoleEventError:
                self.in_raw = False
                raise

    def _interrupt_after_timeout(self, exc: ConsoleTimeout, timeout: float) -> None:
        """Still running, or no longer answering? Ctrl-C tells: ExecTimeout if the board answers it."""
        self.console.write(b"\x03")
        try:
            self.console.read_until(b"\x04>", PROMPT_TIMEOUT_S / 2, what="answer to Ctrl-C")
        except ConsoleTimeout:
            raise ConsoleTimeout(f"the board stopped answering ({exc})") from None
        self.in_raw = True
        raise ExecTimeout(f"the code was still running after {timeout:g} s and was interrupted") from None

    def exec_ok(self, code: str | bytes, timeout: float = EXEC_TIMEOUT_S) -> str:
        result = self.exec(code, timeout)
        if not result.ok:
            raise ExecFailed(result)
        return result.output

    def _read_result(self, timeout: float, since: int) -> ExecResult:
        output = self.console.read_until(b"\x04", timeout, events_since=since, what="end of output (\\x04)")
        error = self.console.read_until(b"\x04", PROMPT_TIMEOUT_S, events_since=since, what="end of error output")
        self.console.read_until(b">", PROMPT_TIMEOUT_S, events_since=since, what="raw REPL prompt `>`")
        return ExecResult(output=_decode_reply(output), error=_decode_reply(error))

    def _exec_plain(self, data: bytes, timeout: float, since: int) -> ExecResult:
        self.console.write(data + b"\x04")
        reply = self.console.read_until(re.compile(rb"OK|O[^K]|[^\sO]"), PROMPT_TIMEOUT_S, events_since=since,
                                        what="raw REPL `OK`")
        if not reply.endswith(b"OK"):
            raise ReplError(f"raw REPL answered {reply!r} instead of OK")
        return self._read_result(timeout, since)

    def _try_raw_paste(self, data: bytes, since: int) -> bool:
        """Send `data` with raw-paste flow control; False (nothing sent) when the firmware lacks raw-paste."""
        self.console.write(b"\x05A\x01")
        answer = self.console.read_until(re.compile(rb"R[\x00\x01]|raw REPL; CTRL-B to exit\r\n>"), PROMPT_TIMEOUT_S,
                                         events_since=since, what="raw-paste answer")
        if not answer.endswith(b"R\x01"):
            # R\x00: understood but refused; the banner: firmware predating raw-paste (its Ctrl-A restarted the line)
            self.raw_paste = False
            return False
        self.raw_paste = True
        window = struct.unpack("<H", self.console.read_exact(2, PROMPT_TIMEOUT_S, events_since=since))[0]
        remaining = window
        sent = 0
        while sent < len(data):
            while remaining == 0 or self.console.pending():
                flag = self.console.read_exact(1, PROMPT_TIMEOUT_S, events_since=since)
                if flag == b"\x01":
                    remaining += window
                elif flag == b"\x04":  # the device ended the paste early (e.g. interrupted)
                    self.console.write(b"\x04")
                    return True
                else:
                    raise ReplError(f"unexpected byte {flag!r} during raw-paste")
            piece = data[sent:sent + remaining]
            self.console.write(piece)
            sent += len(piece)
            remaining -= len(piece)
        self.console.write(b"\x04")
        ack = self.console.read_until(b"\x04", PROMPT_TIMEOUT_S, events_since=since, what="raw-paste end acknowledgement")
        if ack.strip(b"\x01") != b"\x04":
            raise ReplError(f"raw-paste not acknowledged: {ack!r}")
        return True

    def _exec_staged(self, data: bytes, timeout: float, since: int) -> ExecResult:
        """Plain raw REPL without flow control: send the code in short checked pieces, then exec them joined."""
        self._stage_checked(_STAGE_EXEC_SETUP, b"_a", data, timeout, since)
        return self._exec_plain(b"exec(b''.join(_s));del _s,_a", timeout, since)

    def _exec_checked(self, statement: bytes, expected_output: str, timeout: float, since: int) -> None:
        """Run a short statement, retrying when it did not arrive whole (a syntax error or the wrong answer)."""
        for _ in range(STAGE_RETRIES):
            result = self._exec_plain(statement, timeout, since)
            if result.ok and result.output.strip() == expected_output:
                return
        raise ReplError(f"a {len(statement)}-byte statement did not arrive intact after {STAGE_RETRIES} tries "
                        f"(last answer {result.output.strip()!r} {result.error.strip()!r})")

    def _stage_checked(self, setup: tuple[bytes, ...], helper: bytes, data: bytes, timeout: float, since: int) -> None:
        """Define `helper(b, n)` with `setup`, then call it for each piece; it prints True when len(b)==n."""
        for statement in setup:
            self._exec_checked(statement, "", timeout, since)
        for piece in _chunks_by_repr(data, STAGE_CHUNK_REPR):
            statement = helper + b"(" + repr(piece).encode() + b"," + str(len(piece)).encode() + b")"
            self._exec_checked(statement, "True", timeout, since)

    # -- files -----------------------------------------------------------------------------------------------
    def deploy_file(self, data: bytes, device_path: str, timeout: float = EXEC_TIMEOUT_S) -> DeployedFile:
        """Write `data` to `device_path` in chunks, then verify size and hash on the device."""
        started = time.monotonic()
        parent_parts = [p for p in device_path.split("/")[:-1] if p]
        if parent_parts:
            self.exec_ok(_MKDIRS_CODE.format(parts=parent_parts), timeout)
        self.exec_ok(f"_f=open({device_path!r},'wb')", timeout)
        self.ensure_raw()
        if self.raw_paste is None:
            self.exec_ok("pass")  # learns whether raw-paste is there
        if self.raw_paste:
            for start in range(0, len(data), PASTE_CHUNK):
                piece = data[start:start + PASTE_CHUNK]
                out = self.exec_ok(b"print(_f.write(" + repr(piece).encode() + b"))", timeout).strip()
                if out != str(len(piece)):
                    raise ReplError(f"{device_path}: wrote {out} of a {len(piece)}-byte chunk")
        else:
            since = self.console.event_count()
            with self.console.expecting(TRACEBACK):
                self._stage_checked(_STAGE_FILE_SETUP, b"_w", data, timeout, since)
        self.exec_ok("_f.close()", timeout)
        size, digest = self.file_digest(device_path, timeout)
        expected = hashlib.sha256(data).hexdigest() if not digest.startswith("sum:") else _sum_digest(data)
        if size != len(data) or digest != expected:
            raise ReplError(f"{device_path}: verification failed: device has {size} bytes {digest}, "
                            f"expected {len(data)} bytes {expected}")
        return DeployedFile(device_path, size, digest, time.monotonic() - started)

    def file_digest(self, device_path: str, timeout: float = EXEC_TIMEOUT_S) -> tuple[int, str]:
        out = self.exec_ok(_VERIFY_CODE.format(path=device_path), timeout).split()
        if len(out) != 2 or not out[0].isdigit():
            raise ReplError(f"{device_path}: unexpected verification answer {out!r}")
        return int(out[0]), out[1]

    def deploy_tree(self, files: dict[str, bytes], progress: Callable[[str], None] | None = None) -> list[DeployedFile]:
        deployed = []
        for device_path, data in files.items():
            if progress:
                progress(device_path)
            deployed.append(self.deploy_file(data, device_path))
        return deployed

    # -- reboot ----------------------------------------------------------------------------------------------
    def soft_reboot(self, timeout: float = PROMPT_TIMEOUT_S * 2) -> None:
        """Soft reboot from the friendly REPL, so boot.py and main.py run (from raw REPL main.py would not)."""
        if self.in_raw:
            self.exit_raw()
        with self.console.expecting(REBOOT):
            self.console.write(b"\x04")
            self.console.read_until(b"soft reboot\r\n", timeout, what="`soft reboot` line")

    def wait_ready(self, timeout: float, since: int | None = None) -> str:
        """Wait for the DUT app's `listening on http://...` line; its URL. Fails fast on events or a bare prompt."""
        since = self.console.event_count() if since is None else since
        match = self.console.read_until(re.compile(READY_RE.pattern + b"|" + _BANNER_PROMPT_RE.pattern), timeout,
                                        events_since=since, what="DUT ready line `listening on http://...`")
        found = READY_RE.search(match)
        if not found:
            raise ReplError("main.py ended without printing `listening on http://...` (is the DUT app deployed?)")
        return found.group(1).decode()

