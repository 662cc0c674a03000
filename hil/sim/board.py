"""The simulated ESP32: owns the master side of a pty and speaks exactly what MicroPython on an ESP32 prints.

Run as `python -m hil.sim --fs DIR`; the first line on stdout is `pty /dev/pts/N` (the console to open). Resets
(panic, brownout, EN pin, soft reboot) re-execute this program keeping the pty, so nothing of the previous "boot"
survives, as on a board: the app's sockets and threads are gone, the filesystem stays.
"""
from __future__ import annotations

import argparse
import builtins
import codeop
import errno
import os
import queue
import random
import select
import signal
import sys
import threading
import time
import traceback
import tty
import types
from pathlib import Path
from typing import Any

from hil.errors import SetupError
from hil.sim.faults import FAULTS_ENV, Faults
from hil.sim.vfs import UNAME, BoardFs

BANNER = (b"MicroPython v1.23.0 on 2024-06-02; Generic ESP32 module with ESP32\r\n"
          b'Type "help()" for more information.\r\n')
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
# Boot reason -> the ROM's reset line (ESP32 ROM wording and codes)
ROM_RESET = {
    "poweron": b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    "panic": b"rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    "brownout": b"rst:0xf (RTCWDT_BROWN_OUT_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
}
ROM_LINES = (b"configsip: 0, SPIWP:0xee\r\n"
             b"clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00\r\n"
             b"mode:DIO, clock div:2\r\n"
             b"load:0x3fff0030,len:4540\r\n"
             b"load:0x40078000,len:12448\r\n"
             b"load:0x40080400,len:4124\r\n"
             b"entry 0x40080680\r\n")
PANIC_DUMP = (
    b"Guru Meditation Error: Core  1 panic'ed (LoadProhibited). Exception was unhandled.\r\n\r\n"
    b"Core  1 register dump:\r\n"
    b"PC      : 0x400d71a2  PS      : 0x00060c30  A0      : 0x800d7bd4  A1      : 0x3ffbf0f0  \r\n"
    b"A2      : 0x00000000  A3      : 0x3ffbf12c  A4      : 0x00000001  A5      : 0x00000000  \r\n"
    b"EXCVADDR: 0x00000000  LBEG    : 0x4000c2e0  LEND    : 0x4000c2f6  LCOUNT  : 0xffffffff  \r\n\r\n\r\n"
    b"Backtrace: 0x400d719f:0x3ffbf0f0 0x400d7bd1:0x3ffbf110 0x400e2f55:0x3ffbf140 0x40093a1e:0x3ffbf170\r\n\r\n\r\n\r\n\r\n"
    b"ELF file SHA256: 8a2c3f1e9b0d4a56\r\n\r\n"
    b"Rebooting...\r\n")
RAW_PASTE_WINDOW = 256  # MicroPython's MICROPY_REPL_STDIN_BUFFER_MAX
NOMINAL_HEAP_BYTES = 64 * 1024 * 1024  # the sim's gc.mem_free() = this minus the process's RSS growth since boot
WRITE_STALL_S = 1.0  # a UART does not block: output nobody reads for this long is dropped
CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
_TRIGGERS = {signal.SIGUSR1, signal.SIGUSR2}  # panic now, EN-pin reset


class _SoftReset(Exception):
    """Leave the REPL loop and soft-reboot."""


class SimBoard:
    def __init__(self, fs_dir: Path, faults: Faults, master: int, slave: int, mode: str, born: float,
                 fired: set[str], firmware: str = "micropython") -> None:
        self.fs = BoardFs(fs_dir)
        self.faults = faults
        self.master = master
        self.slave = slave
        self.mode = mode  # "friendly" or "raw": survives a soft reboot, as pyexec_mode_kind does
        self.born = born  # time of the first power-on: timed faults count from it
        self.fired = fired  # one-shot faults already injected
        self.fs_dir = fs_dir
        self.firmware = firmware  # "micropython", or "viperhttp": ViperHTTP firmware's modules are built in
        self.inbox: "queue.Queue[int]" = queue.Queue()
        self.executing = False
        self._out_lock = threading.RLock()
        self._rss_at_boot = _rss_bytes()
        self.globals: dict[str, Any] = {}

    @property
    def banner(self) -> bytes:
        """The REPL banner names the firmware's version, as os.uname().version does."""
        if self.firmware != "viperhttp":
            return BANNER
        from hil.sim.viperhttp_firmware import FIRMWARE_VERSION

        return BANNER.replace(b"v1.23.0 on 2024-06-02", FIRMWARE_VERSION.encode())

    # -- console I/O -----------------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        with self._out_lock:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self.master, view)
                    view = view[written:]
                except BlockingIOError:
                    if not select.select([], [self.master], [], WRITE_STALL_S)[1]:
                        return  # nobody reads the console: the bytes are gone, as on a UART
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        return
                    raise

    def _read_loop(self) -> None:
        while True:
            try:
                ready = select.select([self.master], [], [], 0.5)[0]
                data = os.read(self.master, 4096) if ready else b""
            except BlockingIOError:
                continue
            except OSError:
                return
            for byte in data:
                if byte == CTRL_C and self.executing:
                    os.kill(os.getpid(), signal.SIGINT)  # MicroPython's keyboard interrupt
                else:
                    self.inbox.put(byte)

    def keyboard_interrupt(self, *_: object) -> None:
        if self.executing:  # outside running code Ctrl-C is a REPL key, handled by the REPLs
            raise KeyboardInterrupt

    def getc(self) -> int:
        while True:
            try:
                return self.inbox.get(timeout=1.0)
            except queue.Empty:
                continue

    # -- resets ----------------------------------------------------------------------------------------------
    def reboot(self, reason: str) -> None:
        """Re-execute the sim keeping the pty: a fresh 'chip' whose filesystem survives."""
        signal.pthread_sigmask(signal.SIG_BLOCK, _TRIGGERS)  # no trigger may kill the half-started next image
        os.set_inheritable(self.master, True)
        os.set_inheritable(self.slave, True)
        os.execv(sys.executable, [sys.executable, "-m", "hil.sim", "--fs", str(self.fs_dir),
                                  "--master-fd", str(self.master), "--slave-fd", str(self.slave),
                                  "--boot", reason,
                                  "--mode", self.mode if reason == "soft" else "friendly",  # RAM state is lost
                                  "--born", repr(self.born),
                                  "--fired", ",".join(sorted(self.fired)), "--firmware", self.firmware])

    def panic(self) -> None:
        with self._out_lock:
            self.write(b"\r\n" + PANIC_DUMP)
            self.reboot("panic")

    def hang(self) -> None:
        # the CPU is stuck: nothing runs, nothing answers, until the EN pin (SIGCONT + SIGUSR2 from the target)
        os.kill(os.getpid(), signal.SIGSTOP)

    # -- boot ------------------------------------------------------------------------------------------------
    def boot(self, reason: str) -> None:
        if reason == "soft":
            self.write(b"MPY: soft reboot\r\n")
        else:
            if self.faults.noise:
                self.write(bytes(random.randrange(0x80, 0x100) for _ in range(random.randrange(16, 64))) + b"\r\n")
            self.write(b"ets Jun  8 2016 00:22:57\r\n\r\n" + ROM_RESET.get(reason, ROM_RESET["poweron"]) + b"\r\n"
                       + ROM_LINES)
            if self.faults.brownout_loop:
                time.sleep(0.2)
                self.write(b"\r\nBrownout detector was triggered\r\n\r\n")
                time.sleep(0.1)
                self.reboot("brownout")
            if self.faults.slow_boot:
                time.sleep(self.faults.slow_boot)
        self._arm_timed_faults()
        self._install_runtime()
        for script in ("boot.py", "main.py") if self.mode == "friendly" else ("boot.py",):
            if (self.fs_dir / script).is_file():
                self.run_and_report((self.fs_dir / script).read_bytes(), script)

    def _arm_timed_faults(self) -> None:
        """One-shot faults count from the first power-on; every boot re-arms what has not fired yet."""
        for name, delay, action in (("panic", self.faults.panic_after, self.panic),
                                    ("hang", self.faults.hang_after, self.hang)):
            if delay is None or name in self.fired:
                continue
            timer = threading.Timer(max(0.0, self.born + delay - time.time()), self._fire, (name, action))
            timer.daemon = True
            timer.start()

    def _fire(self, name: str, action: Any) -> None:
        self.fired.add(name)  # before acting: a panic reboots, and the next image must not fire it again
        action()

    def _install_runtime(self) -> None:
        """The modules a MicroPython board has and CPython lacks or spells differently."""
        board = self
        gc_module = types.ModuleType("gc")
        import gc as host_gc
        gc_module.__dict__.update({k: getattr(host_gc, k) for k in dir(host_gc) if not k.startswith("__")})

        def mem_alloc() -> int:
            return max(0, _rss_bytes() - board._rss_at_boot)

        gc_module.__dict__.update(mem_alloc=mem_alloc, mem_free=lambda: NOMINAL_HEAP_BYTES - mem_alloc())
        sys.modules["gc"] = gc_module
        def soft_reset() -> None:
            raise _SoftReset()

        machine = types.ModuleType("machine")
        machine.__dict__.update(
            reset=lambda: board.reboot("panic"),  # machine.reset() is a software CPU reset: rst:0xc
            soft_reset=soft_reset,
            reset_cause=lambda: 1, freq=lambda *a: 240000000, unique_id=lambda: b"\x24\x0a\xc4\x00\x00\x01",
            PWRON_RESET=1, HARD_RESET=2, WDT_RESET=3, DEEPSLEEP_RESET=4, SOFT_RESET=5,
        )
        sys.modules["machine"] = machine
        board_modules = {"os": self.fs.os_module(), "time": _micropython_time()}
        if self.firmware == "viperhttp":
            from hil.sim import viperhttp_firmware

            uname = UNAME._replace(version=viperhttp_firmware.FIRMWARE_VERSION)
            board_modules["os"].uname = lambda: uname  # type: ignore[attr-defined]
            viperhttp_firmware.install(self.fs_dir)
        board_modules.update(uos=board_modules["os"], utime=board_modules["time"])
        sys.modules["uos"] = board_modules["os"]  # so modules imported from the board's files see its os too
        real_import = builtins.__import__

        def board_import(name: str, *args: Any, **kwargs: Any) -> Any:
            return board_modules.get(name) or real_import(name, *args, **kwargs)

        board_builtins = dict(vars(builtins), open=self.fs.open, __import__=board_import)
        self.globals = {"__name__": "__main__", "__builtins__": board_builtins}

    # -- running code ----------------------------------------------------------------------------------------
    def run_source(self, source: bytes, filename: str, mode: str = "exec") -> BaseException | None:
        """Compile and run like pyexec; the exception it raised (KeyboardInterrupt too), or None."""
        self.executing = True
        try:
            exec(compile(source, filename, mode), self.globals)
            return None
        except _SoftReset:
            raise
        except SystemExit:
            raise _SoftReset() from None
        except BaseException as exc:  # noqa: BLE001 - the board reports every exception, KeyboardInterrupt too
            return exc
        finally:
            self.executing = False

    def run_and_report(self, source: bytes, filename: str, mode: str = "exec") -> None:
        exc = self.run_source(source, filename, mode)
        if exc is not None:
            self.write(format_exception(exc, self.fs_dir))

    # -- the REPLs -------------------------------------------------------------------------------------------
    def repl(self) -> None:
        while True:
            if self.mode == "raw":
                self.raw_repl()
            else:
                self.friendly_repl()

    def friendly_repl(self) -> None:
        self.write(self.banner)
        while True:
            if self.faults.noise and random.random() < 0.3:
                self.write(bytes(random.randrange(0x80, 0x100) for _ in range(8)) + b"\r\n")
            self.write(b">>> ")
            source = ""
            line, control = self.read_line()
            while control is None:
                source += line
                try:
                    complete = codeop.compile_command(source, "<stdin>", "single") is not None
                except SyntaxError:
                    complete = True  # let run_source print the error
                if complete or not source.strip():
                    break
                source += "\n"
                self.write(b"... ")
                line, control = self.read_line()
            if control == CTRL_A:
                self.mode = "raw"
                return
            if control == CTRL_B:
                self.write(self.banner)
                continue
            if control == CTRL_D:
                raise _SoftReset()
            if control == CTRL_C or not source.strip():
                continue
            self.run_and_report(source.encode(), "<stdin>", "single")

    def read_line(self) -> tuple[str, int | None]:
        """Read an echoed line; (text, None) on Enter, ("", CTRL_x) for a control key."""
        chars: list[str] = []
        while True:
            c = self.getc()
            if c == 0x0D:
                self.write(b"\r\n")
                return "".join(chars), None
            if c == CTRL_C:
                self.write(b"\r\n")
                return "", CTRL_C
            if c in (CTRL_A, CTRL_B) or (c == CTRL_D and not chars):
                self.write(b"\r\n")
                return "", c
            if c in (0x08, 0x7F):
                if chars:
                    chars.pop()
                    self.write(b"\x08 \x08")
            elif c >= 0x20:
                chars.append(chr(c))
                self.write(bytes([c]))

    def raw_repl(self) -> None:
        self.write(RAW_BANNER)
        while True:
            self.write(b">")
            line = bytearray()
            while True:
                c = self.getc()
                if c == CTRL_A:
                    if len(line) == 2 and line[0] == CTRL_E:
                        if line[1] == ord("A") and not self.faults.no_raw_paste:
                            self.raw_paste()
                            break
                        if not self.faults.no_raw_paste:
                            self.write(b"R\x00")  # a raw-paste command this firmware does not know
                            line = bytearray()
                            continue
                    self.write(RAW_BANNER)  # Ctrl-A resets the raw REPL
                    line = bytearray()
                    self.write(b">")
                elif c == CTRL_B:
                    self.write(b"\r\n")
                    self.mode = "friendly"
                    return
                elif c == CTRL_C:
                    line = bytearray()
                elif c == CTRL_D:
                    self.write(b"OK")
                    if not line:
                        self.write(b"\r\n")
                        raise _SoftReset()
                    self.exec_raw(bytes(line))
                    break
                else:
                    line.append(c)

    def raw_paste(self) -> None:
        self.write(b"R\x01" + RAW_PASTE_WINDOW.to_bytes(2, "little"))
        source = bytearray()
        consumed = 0
        while True:
            c = self.getc()
            if c == CTRL_D:
                break
            source.append(c)
            consumed += 1
            if consumed == RAW_PASTE_WINDOW:
                consumed = 0
                self.write(b"\x01")
        self.write(b"\x04")
        self.exec_raw(bytes(source))

    def exec_raw(self, source: bytes) -> None:
        if self.faults.panic_on_exec:
            self.panic()
        exc = self.run_source(source, "<stdin>")
        # pyexec's framing: stdout, \x04, the exception text, \x04
        self.write(b"\x04" + (format_exception(exc, self.fs_dir) if exc is not None else b"") + b"\x04")


# CPython messages MicroPython words differently (the ones the runner and the suite meet)
_MICROPYTHON_WORDING = {"division by zero": "divide by zero", "integer division or modulo by zero": "divide by zero",
                        "float division by zero": "divide by zero"}


def format_exception(exc: BaseException, fs_dir: Path) -> bytes:
    """A traceback as MicroPython prints it: only the board's own frames, `Name: message` last."""
    lines = ["Traceback (most recent call last):"]
    root = str(fs_dir.resolve())
    for frame in traceback.extract_tb(exc.__traceback__):
        filename = frame.filename
        if filename.startswith(root):
            filename = filename[len(root):].lstrip("/")
        elif not (filename == "<stdin>" or filename.endswith(".py") and "/" not in filename):
            continue  # CPython's own frames do not exist on a board
        lines.append(f'  File "{filename}", line {frame.lineno}, in {frame.name}')
    if len(lines) == 1:
        lines.append('  File "<stdin>", line 1, in <module>')
    name = type(exc).__name__
    message = ", ".join(str(arg) for arg in exc.args) if len(exc.args) != 1 else str(exc.args[0])
    if isinstance(exc, OSError) and exc.errno is not None:
        name, message = "OSError", f"[Errno {exc.errno}] {errno.errorcode.get(exc.errno, exc.errno)}"
    message = _MICROPYTHON_WORDING.get(message, message)
    lines.append(f"{name}: {message}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", errors="replace")


class _ConsoleStdout:
    """sys.stdout/sys.stderr of the board: the console, with MicroPython's \\r\\n line ends."""

    def __init__(self, board: SimBoard) -> None:
        self.board = board

    def write(self, text: str) -> int:
        self.board.write(text.replace("\n", "\r\n").encode("utf-8", errors="replace"))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _micropython_time() -> types.ModuleType:
    """CPython's time plus MicroPython's ticks and sleeps (ticks wrap at 2**30, as on the ESP32 port)."""
    module = types.ModuleType("time")
    module.__dict__.update({k: getattr(time, k) for k in dir(time) if not k.startswith("__")})
    period = 1 << 30
    module.__dict__.update(
        sleep_ms=lambda ms: time.sleep(ms / 1000), sleep_us=lambda us: time.sleep(us / 1_000_000),
        ticks_ms=lambda: int(time.monotonic() * 1000) % period,
        ticks_us=lambda: int(time.monotonic() * 1_000_000) % period,
        ticks_add=lambda ticks, delta: (ticks + delta) % period,
        ticks_diff=lambda end, start: ((end - start + period // 2) % period) - period // 2,
    )
    return module


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.sim", description="simulated ESP32 running MicroPython on a pty")
    parser.add_argument("--fs", required=True, type=Path, help="directory holding the board's filesystem")
    parser.add_argument("--firmware", default="micropython", choices=("micropython", "viperhttp"),
                        help="what the board runs: plain MicroPython, or ViperHTTP firmware (its modules built in)")
    parser.add_argument("--faults", default=None, help=f"fault spec (default: ${FAULTS_ENV}); see hil/sim/faults.py")
    parser.add_argument("--sessions", type=Path, default=None, metavar="FILE",
                        help="append every open and close of the port here (hil/sim/sessions.py)")
    # internal: set when the sim re-executes itself for a reset
    parser.add_argument("--master-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--slave-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--boot", default="poweron", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="friendly", choices=("friendly", "raw"), help=argparse.SUPPRESS)
    parser.add_argument("--born", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fired", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # the target's triggers wait (pending) until the handlers below exist; the mask survives re-execution
    signal.pthread_sigmask(signal.SIG_BLOCK, _TRIGGERS)
    try:
        faults = Faults.parse(args.faults if args.faults is not None else os.environ.get(FAULTS_ENV, ""))
    except SetupError as exc:
        print(f"sim: {exc}", file=sys.stderr)
        return 2
    args.fs.mkdir(parents=True, exist_ok=True)
    if args.master_fd is None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as on a UART
        if args.sessions is not None:
            from hil.sim.sessions import start_recorder

            start_recorder(os.ttyname(slave), args.sessions, close_fds=(master, slave))
        print(f"pty {os.ttyname(slave)}", flush=True)
        faults_spec = args.faults if args.faults is not None else os.environ.get(FAULTS_ENV, "")
        os.environ[FAULTS_ENV] = faults_spec  # carried across re-executions
    else:
        master, slave = args.master_fd, args.slave_fd
    os.set_blocking(master, False)
    os.chdir(args.fs)
    sys.path.insert(0, str(args.fs.resolve()))
    board = SimBoard(args.fs, faults, master, slave, args.mode, args.born or time.time(),
                     {name for name in args.fired.split(",") if name}, args.firmware)
    sys.stdout = sys.stderr = _ConsoleStdout(board)
    signal.signal(signal.SIGUSR1, lambda *_: board.panic())
    signal.signal(signal.SIGUSR2, lambda *_: board.reboot("poweron"))  # the EN pin: ESP32 reports POWERON_RESET
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, board.keyboard_interrupt)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _TRIGGERS)
    threading.Thread(target=board._read_loop, name="uart-rx", daemon=True).start()
    try:
        board.boot(args.boot)
        while True:
            try:
                board.repl()
            except KeyboardInterrupt:
                continue  # a Ctrl-C that landed just after code finished: the prompt ignores it
    except _SoftReset:
        board.reboot("soft")
    return 0
