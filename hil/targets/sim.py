"""`sim`: the simulated ESP32 (hil/sim) behind a real pty, driven by the same runner as real boards.
`sim:viperhttp`: the same board running simulated ViperHTTP firmware (hil/sim/viperhttp_firmware.py): its
viperhttp is built in, so only the DUT app and its adapters are deployed.

Faults are set per run with VHIL_SIM_FAULTS (see hil/sim/faults.py and docs/hil.md).
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hil import dut_app
from hil.errors import SetupError
from hil.sim.faults import FAULTS_ENV, Faults
from hil.targets.base import NETWORK, SERIAL
from hil.probe import free_tcp_port
from hil.process import ManagedProcess
from hil.targets.serial import SerialTarget

START_TIMEOUT_S = 15.0


@dataclass
class SimTarget(SerialTarget):
    kind: str = "sim"
    capabilities: frozenset[str] = frozenset({SERIAL, NETWORK})
    faults: str = ""
    process: ManagedProcess | None = None
    fs_dir: Path | None = None
    pty_path: str = ""

    def launch(self) -> None:
        Faults.parse(self.faults)  # a bad spec is a one-line SetupError before anything starts
        self.fs_dir = Path(tempfile.mkdtemp(prefix="vhil-sim-fs-"))
        log = self.log_dir / "sim-process.log" if self.log_dir else None
        env = dict(os.environ, **{FAULTS_ENV: self.faults})
        self.process = ManagedProcess([sys.executable, "-m", "hil.sim", "--fs", str(self.fs_dir), "--firmware", self.firmware_kind],
                                      log_path=log, env=env,
                                      stop_signal=signal.SIGTERM, die_with_parent=True)
        try:
            match = self.process.wait_for_line(r"^pty (\S+)", START_TIMEOUT_S)
        except (TimeoutError, ProcessLookupError) as exc:
            raise SetupError(f"target sim: the simulator did not start ({exc}): {self.process.output()[-300:]}") from None
        self.pty_path = match.group(1)
        self.details.update(pid=self.process.pid, pty=self.pty_path, fs=str(self.fs_dir), faults=self.faults or "none")

    def dut_config(self) -> dict[str, object]:
        if self.firmware_kind != dut_app.VIPERHTTP:
            return super().dut_config()
        from hil.sim.viperhttp_firmware import MAX_MESSAGE_SIZE

        # the firmware's bridge takes a fixed port, and its message limit is built in: the config states both
        return {"host": "127.0.0.1", "port": free_tcp_port(), "max_message_size": MAX_MESSAGE_SIZE}

    def console_url(self) -> str:
        return self.pty_path

    def _signal(self, sig: int) -> None:
        if self.process is None or not self.process.alive():
            raise SetupError("target sim is not running")
        os.kill(self.process.pid, signal.SIGCONT)  # a hung board is a stopped process: wake it to take the signal
        os.kill(self.process.pid, sig)

    def hard_reset(self) -> None:
        self._signal(signal.SIGUSR2)

    def inject_panic(self) -> None:
        """Fault injection on a trigger: the board panics now (ESP-IDF dump with backtrace) and reboots."""
        self._signal(signal.SIGUSR1)

    def stop(self) -> None:
        super().stop()
        if self.process is not None:
            try:
                os.kill(self.process.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.process.stop(grace=2.0)
            self.process = None
        if self.fs_dir is not None:
            shutil.rmtree(self.fs_dir, ignore_errors=True)
            self.fs_dir = None


def make_sim_target(name: str, boards_path: object = None) -> SimTarget:
    faults = os.environ.get(FAULTS_ENV, "")
    Faults.parse(faults)
    firmware = name.split(":", 1)[1] if ":" in name else dut_app.MICROPYTHON
    if firmware not in dut_app.FIRMWARES:
        raise SetupError(f"target {name!r}: the simulated board runs {' or '.join(dut_app.FIRMWARES)} firmware; "
                         "use sim or sim:viperhttp")
    return SimTarget(name=name, faults=faults, firmware_kind=firmware)
