"""`board:<id>`: a real board from the inventory (boards.toml), on any pyserial URL or on a labgrid farm.

Starting the target acquires the board for the whole run, the way labgrid acquires a place: a board with a
`port` is locked by id (hil/lock.py: an OS lock other runs wait for, up to --lock-timeout); a board with `place`
or `tags` is reserved and acquired through the labgrid coordinator (hil/farm/places.py) and driven over the
place's exported serial port. Stopping releases it, on every exit path.

Hard reset is labgrid's power driver when the place has a power resource; otherwise it follows the inventory's `reset`: `dtr-rts` pulses EN through RTS as esptool does, `soft` can only
soft-reboot, `none` cannot reset. Wi-Fi credentials are read from the environment variables the inventory names
and go to the board in dut_config.json; they are registered with the redactor first.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from hil.errors import SetupError
from hil.farm.places import COORDINATOR_ENV, PlaceLease, coordinator_address
from hil.inventory import Board, load_inventory
from hil.lock import ExclusiveLock, append_lease_record, lock_timeout_s
from hil.probe import wait_reachable
from hil.serial.events import Addr2Line
from hil.targets.serial import SerialTarget
from hil.targets.base import FLASH, NETWORK, SERIAL, Availability


COORDINATOR_PROBE_S = 2.0


@dataclass
class BoardTarget(SerialTarget):
    kind: str = "board"
    board: Board | None = None
    fixed_base_url: str | None = field(default=None)
    lock: ExclusiveLock | None = None  # held while a local board is ours
    lease: PlaceLease | None = None  # held while a farm board's labgrid place is ours
    acquired_at: float | None = None  # epoch seconds

    def acquire(self) -> None:
        """Make the board ours for this run: its lock, or a labgrid place; waits up to the lock timeout."""
        assert self.board is not None
        if self.lock is not None or self.lease is not None:
            return
        timeout = lock_timeout_s()
        if self.board.on_farm:
            filters = {"name": self.board.place} if self.board.place else dict(self.board.tags)
            lease = PlaceLease(filters, f"board {self.board.id}")
            lease.acquire(timeout)
            self.lease = lease
            self.details.update(place=lease.place, port=lease.serial_url,
                                reservation_wait_s=round(lease.reservation_wait_s, 3))
        else:
            lock = ExclusiveLock(f"board-{self.board.id}", f"board {self.board.id}")
            lock.acquire(timeout)
            self.lock = lock
            self.details["lock_wait_s"] = round(lock.waited_s, 3)
        self.acquired_at = time.time()

    def release(self) -> None:
        lease, lock, self.lease, self.lock = self.lease, self.lock, None, None
        if self.acquired_at is not None:
            assert self.board is not None
            append_lease_record({
                "board": self.board.id, "place": lease.place if lease else None, "acquired_at": self.acquired_at,
                "released_at": time.time(), "lock_wait_s": lock.waited_s if lock else 0.0,
                "reservation_wait_s": lease.reservation_wait_s if lease else 0.0,
                "place_acquire_s": lease.acquire_s if lease else 0.0})
            self.acquired_at = None
        try:
            if lease is not None:
                lease.release()
        finally:
            if lock is not None:
                lock.release()

    def launch(self) -> None:
        self.acquire()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.release()

    def availability(self) -> Availability:
        assert self.board is not None
        port = self.board.port
        if port and not self.board.port_is_url and not Path(port).exists():
            return Availability(False, f"serial port {port} not present: plug board {self.board.id} in or fix `port` in the inventory")
        if self.board.on_farm:
            address = coordinator_address()
            try:
                wait_reachable(f"http://{address}", timeout=COORDINATOR_PROBE_S)
            except SetupError:
                return Availability(False, f"labgrid coordinator {address} not reachable: start it or set "
                                           f"{COORDINATOR_ENV}=HOST:PORT")
        return Availability(True)

    def console_url(self) -> str:
        assert self.board is not None
        if self.lease is not None and self.lease.serial_url:
            return self.lease.serial_url
        assert self.board.port, "console_url before the board was acquired"
        return self.board.port

    def dut_config(self) -> dict[str, object]:
        assert self.board is not None
        if self.board.app_host:  # a board whose network the host shares (a simulator, a USB network gadget)
            return {"host": self.board.app_host, "port": 0}
        config: dict[str, object] = {"host": "0.0.0.0", "port": 80}
        if self.board.wifi is not None:
            ssid, password = self.board.wifi.credentials(self.board.id)
            config.update(wifi_ssid=ssid, wifi_password=password)
        return config

    def attach(self) -> None:
        assert self.board is not None
        if self.board.port or self.board.on_farm:
            super().attach()
        else:
            self.acquire()  # a board reached only by its base_url is still used by one run at a time
        if self.fixed_base_url:
            self.base_url = self.fixed_base_url

    def ensure_app(self) -> str:
        if self.fixed_base_url:
            return self.fixed_base_url
        return super().ensure_app()

    def board_id(self) -> str:
        assert self.board is not None
        return self.board.id

    def hard_reset(self) -> None:
        assert self.board is not None
        if self.lease is not None and self.lease.power:
            self.lease.power_cycle()
            return
        if self.console is None:
            raise SetupError(f"board {self.board.id} has no serial port to reset through")
        if self.board.reset == "dtr-rts":
            self.console.pulse_reset()
        elif self.board.reset == "soft":
            self.session().soft_reboot()
        else:
            raise SetupError(f"board {self.board.id} has reset = none in the inventory: it cannot be reset; "
                             "set reset = \"dtr-rts\" or \"soft\"")


def make_board_target(name: str, boards_path: Path | None = None) -> BoardTarget:
    board_id = name.split(":", 1)[1]
    if not board_id:
        raise SetupError(f"target {name!r}: name a board, e.g. board:esp1")
    board = load_inventory(boards_path).board(board_id)
    capabilities = set()
    serial = bool(board.port) or board.on_farm
    if serial:
        capabilities.add(SERIAL)
    if board.base_url or ((board.wifi or board.app_host) and serial):  # reachable: fixed URL, Wi-Fi, or app_host
        capabilities.add(NETWORK)
    if board.images and serial:
        capabilities.add(FLASH)
    decoder = Addr2Line.configured(board.addr2line, board.elf)
    target = BoardTarget(name=name, board=board, baud=board.baud, capabilities=frozenset(capabilities),
                         fixed_base_url=board.base_url, decoder=decoder, firmware_kind=board.firmware)
    target.details.update(chip=board.chip, port=board.port, reset=board.reset, labels=list(board.labels))
    if board.on_farm:
        target.details.update(place=board.place, tags=dict(board.tags))
    return target
