"""What every serial-attached target shares: the console, the raw REPL, deploying and starting the DUT app,
resets and recovery. Subclasses say how the port is reached (`console_url`) and how the board is hard-reset.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from hil import dut_app
from hil.artifacts import atomic_write_json
from hil.errors import BoardFailure, SetupError
from hil.serial.console import ConsoleTimeout, SerialConsole
from hil.serial.events import REBOOT, RESET, TRACEBACK, Addr2Line, ConsoleEvent
from hil.serial.repl import DeployedFile, ExecFailed, RawRepl, ReplError
from hil.targets.base import NETWORK, Target

BOOT_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 30.0
RESPONSIVE_TIMEOUT_S = 3.0


SHADOW_PACKAGE = "/viperhttp"  # the reference framework as deployed for plain MicroPython
_EXISTS_CODE = """import os
try:
    os.stat({path!r})
    print(1)
except OSError:
    print(0)"""
_VERSION_CODE = "import os\nprint(os.uname().version)"
_REMOVE_TREE_CODE = """import os
def _vhil_rm(p):
    try:
        mode = os.stat(p)[0]
    except OSError:
        return
    if mode & 0x4000:
        for entry in list(os.ilistdir(p)):
            _vhil_rm(p + '/' + entry[0])
        os.rmdir(p)
    else:
        os.remove(p)
_vhil_rm({path!r})
del _vhil_rm"""


class BoardUnrecoverable(BoardFailure):
    """The board could not be brought back to a prompt (e.g. a brownout loop); the message starts with the kind."""

    def report(self) -> str:
        return str(self)


@dataclass
class SerialTarget(Target):
    baud: int = 115200
    start_app: bool = True  # bring the DUT app up in start() when the target has the network capability
    console: SerialConsole | None = None
    repl: RawRepl | None = None
    decoder: Addr2Line | None = None
    firmware_kind: str = dut_app.MICROPYTHON  # what the board runs: hil/dut_app.py FIRMWARES
    app_running: bool = False
    deployed: list[DeployedFile] = field(default_factory=list)
    broken: str | None = None  # set when recovery failed: later users fail fast with this reason

    # -- what subclasses provide -----------------------------------------------------------------------------
    def console_url(self) -> str:
        raise NotImplementedError

    def hard_reset(self) -> None:
        """Reset the chip (EN pin, power cycle); the caller waits for it to boot."""
        raise SetupError(f"target {self.name} cannot be hard-reset")

    def dut_config(self) -> dict[str, object]:
        """dut_config.json for the DUT app: where to listen (and Wi-Fi for boards)."""
        return {"host": "127.0.0.1", "port": 0}

    def app_files(self) -> dict[str, bytes]:
        """The DUT app for this board's firmware with its dut_config.json (hil/dut_app.py)."""
        return dut_app.app_files(self.firmware_kind, self.dut_config())

    def app_url(self, printed_url: str) -> str:
        """The URL the host reaches the app on, from the one it printed (differs behind a port forward)."""
        return printed_url

    # -- console ---------------------------------------------------------------------------------------------
    def open_console(self) -> None:
        log = self.log_dir / "serial.log" if self.log_dir else None
        self.console = SerialConsole(self.console_url(), self.baud, log_path=log, decoder=self.decoder)
        self.repl = RawRepl(self.console)
        self.serial_url = self.console.url
        if log is not None:
            self.details["serial_log"] = str(log)

    def close_console(self) -> None:
        if self.console is not None:
            self.console.close()
        self.console = None
        self.repl = None

    def session(self) -> RawRepl:
        """A ready raw REPL (the running app, if any, is interrupted)."""
        if self.broken:
            raise SetupError(f"target {self.name} is unusable: {self.broken}")
        if self.repl is None:
            raise SetupError(f"target {self.name} has no serial console (is it started?)")
        if not self.repl.in_raw:
            self.repl.recover()
            self.app_running = False
            self.base_url = None
            self.repl.enter_raw()
        return self.repl

    # -- the DUT app -----------------------------------------------------------------------------------------
    def deploy(self, files: dict[str, bytes] | None = None, progress: Callable[[str], None] | None = None,
               clean: bool = False) -> list[DeployedFile]:
        """Write files (default: the DUT app for the board's firmware, see hil/dut_app.py) and verify each on
        the device. `clean` first removes a /viperhttp package from the board's filesystem."""
        if files is None:
            files = self.app_files()
            if "/main.py" not in files:
                raise SetupError("framework/dut/main.py is missing: the DUT app is needed to deploy (pass explicit paths)")
        repl = self.session()
        if clean:
            repl.exec_ok(_REMOVE_TREE_CODE.format(path=SHADOW_PACKAGE))
        if self.firmware_kind == dut_app.VIPERHTTP and repl.exec_ok(_EXISTS_CODE.format(path=SHADOW_PACKAGE)).strip() == "1":
            raise SetupError(f"target {self.name} runs ViperHTTP firmware but {SHADOW_PACKAGE} is on its filesystem and "
                             f"would shadow the built-in module: remove it with `vhil hil deploy --clean --target {self.name}`")
        self.deployed = repl.deploy_tree(files, progress)
        self.details["deployed_files"] = len(self.deployed)
        self.details["deployed_bytes"] = sum(d.size for d in self.deployed)
        return self.deployed

    def run_app(self, timeout: float = READY_TIMEOUT_S) -> str:
        """Soft-reboot so main.py starts the app; wait for its ready line; the base URL."""
        repl = self.session()
        since = repl.console.event_count()
        started = time.monotonic()
        repl.soft_reboot()
        try:
            printed = repl.wait_ready(timeout, since=since)
        except ReplError as exc:
            raise SetupError(f"target {self.name}: {exc}") from None
        self.details["boot_to_ready_s"] = round(time.monotonic() - started, 3)
        self.base_url = self.app_url(printed)
        self.app_running = True
        return self.base_url

    def ensure_app(self) -> str:
        """The base URL of a running DUT app, deploying and starting it when needed."""
        if self.app_running and self.base_url:
            return self.base_url
        if not self.deployed:
            self.deploy()
        return self.run_app()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self.attach()
            if self.start_app and self.has(NETWORK) and dut_app.DUT_MAIN.is_file():
                self.ensure_app()
        except BaseException:
            self.stop()
            raise

    def attach(self) -> None:
        """Start whatever runs the board, open its console, get a prompt."""
        self.launch()
        self.open_console()
        self.wait_booted()
        self.details["firmware"] = self.firmware_under_test()

    def firmware_under_test(self) -> dict[str, str]:
        """What reports name: the firmware kind, its version string as the board reports it, the board."""
        try:
            version = self.session().exec_ok(_VERSION_CODE).strip()
        except ExecFailed as exc:  # a port without os.uname(): say so rather than fail the attach
            version = f"unknown ({exc})"
        return {"kind": self.firmware_kind, "version": version, "board": self.board_id()}

    def board_id(self) -> str:
        return self.name

    def launch(self) -> None:
        """Start the process behind the board (simulator, QEMU); nothing for a real board."""

    def wait_booted(self, timeout: float = BOOT_TIMEOUT_S) -> None:
        """Wait until the board answers at a prompt; BoardUnrecoverable on a reset loop or silence."""
        assert self.repl is not None and self.console is not None
        since = self.console.event_count()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        with self.console.expecting(RESET, REBOOT, TRACEBACK):
            while time.monotonic() < deadline:
                try:
                    self.repl.recover(timeout=min(3.0, max(0.5, deadline - time.monotonic())))
                    break
                except ConsoleTimeout as exc:
                    last = exc
                fatal = [e for e in self.console.events[since:] if e.kind not in (RESET, REBOOT, TRACEBACK)]
                if fatal:
                    loop = ": a reset loop" if len(fatal) > 1 else ""
                    self.broken = f"{fatal[-1].headline()} (while booting; {len(fatal)} such events{loop})"
                    raise BoardUnrecoverable(self.broken)
                resets = [e for e in self.console.events[since:] if e.kind == RESET]
                if len(resets) >= 3:
                    self.broken = f"reset: the board resets in a loop ({len(resets)} resets, last {resets[-1].summary})"
                    raise BoardUnrecoverable(self.broken)
            else:
                self.broken = f"hang: no REPL prompt within {timeout:g} s ({last})"
                raise BoardUnrecoverable(self.broken)
        self.app_running = False
        self.base_url = None

    def recover(self) -> None:
        """After a panic or reset: let the board reboot (or reset it), get a prompt; the app must be restarted."""
        assert self.console is not None
        self.app_running = False
        self.base_url = None
        try:
            self.wait_booted(timeout=BOOT_TIMEOUT_S / 2)
        except BoardUnrecoverable:
            # one hard reset; a reset loop persists through it and wait_booted reports it again, quickly
            self.broken = None
            self._hard_reset_and_boot()

    def ensure_responsive(self, timeout: float = RESPONSIVE_TIMEOUT_S) -> None:
        """After a failed test: a board that no longer answers at the REPL (hung) is hard-reset."""
        assert self.repl is not None and self.console is not None
        self.app_running = False
        self.base_url = None
        try:
            self.repl.recover(timeout=timeout)
        except ConsoleTimeout:
            self.console.log.note(f"no prompt within {timeout:g} s after a failed test: hard reset")
            self._hard_reset_and_boot()

    def _hard_reset_and_boot(self) -> None:
        assert self.console is not None
        with self.console.expecting(RESET, REBOOT, TRACEBACK):  # the reset line may come before wait_booted looks
            self.hard_reset()
        self.wait_booted()

    def stop(self) -> None:
        if self.console is not None and self.log_dir is not None:
            # the structured record of what the console showed: panics with backtraces, resets, tracebacks
            atomic_write_json(self.log_dir / "console-events.json",
                              {"target": self.name, "events": [e.as_dict() for e in self.console.events]})
        self.close_console()

    # -- events ----------------------------------------------------------------------------------------------
    def events_since(self, index: int) -> list[ConsoleEvent]:
        return self.console.unexpected_events(index) if self.console else []

    def describe(self) -> dict[str, object]:
        info = super().describe()
        if self.console is not None:
            info["console_events"] = [e.as_dict() for e in self.console.events]
        return info
