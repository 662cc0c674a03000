"""`board:<id>`: a real board from the inventory (boards.toml), on any pyserial URL.

Hard reset follows the inventory's `reset`: `dtr-rts` pulses EN through RTS as esptool does, `soft` can only
soft-reboot, `none` cannot reset. Wi-Fi credentials are read from the environment variables the inventory names
and go to the board in dut_config.json; they are registered with the redactor first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hil.errors import SetupError
from hil.inventory import Board, load_inventory
from hil.serial.events import Addr2Line
from hil.targets.serial import SerialTarget
from hil.targets.base import FLASH, NETWORK, SERIAL, Availability


@dataclass
class BoardTarget(SerialTarget):
    kind: str = "board"
    board: Board | None = None
    fixed_base_url: str | None = field(default=None)

    def availability(self) -> Availability:
        assert self.board is not None
        port = self.board.port
        if port and not self.board.port_is_url and not Path(port).exists():
            return Availability(False, f"serial port {port} not present: plug board {self.board.id} in or fix `port` in the inventory")
        return Availability(True)

    def console_url(self) -> str:
        assert self.board is not None and self.board.port
        return self.board.port

    def dut_config(self) -> dict[str, object]:
        assert self.board is not None
        config: dict[str, object] = {"host": "0.0.0.0", "port": 80}
        if self.board.wifi is not None:
            ssid, password = self.board.wifi.credentials(self.board.id)
            config.update(wifi_ssid=ssid, wifi_password=password)
        return config

    def attach(self) -> None:
        assert self.board is not None
        if self.board.port:
            super().attach()
        if self.fixed_base_url:
            self.base_url = self.fixed_base_url

    def ensure_app(self) -> str:
        if self.fixed_base_url:
            return self.fixed_base_url
        return super().ensure_app()

    def hard_reset(self) -> None:
        assert self.board is not None
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
    if board.port:
        capabilities.add(SERIAL)
    if board.base_url or (board.wifi and board.port):  # the app is reachable: fixed URL, or Wi-Fi it joins
        capabilities.add(NETWORK)
    if board.images and board.port:
        capabilities.add(FLASH)
    decoder = Addr2Line.configured(board.addr2line, board.elf)
    target = BoardTarget(name=name, board=board, baud=board.baud, capabilities=frozenset(capabilities),
                         fixed_base_url=board.base_url, decoder=decoder)
    target.details.update(chip=board.chip, port=board.port, reset=board.reset, labels=list(board.labels))
    return target
