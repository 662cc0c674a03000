"""Target names -> Target objects. The names are part of the interface:

host[:IMPL]        the DUT app in a local process (`vhil serve`), IMPL reference (default) or websockets
sim[:FIRMWARE]     a simulated ESP32 behind a real pty running MicroPython (default) or ViperHTTP firmware
mpy                the framework on a real MicroPython VM
qemu-microbit      Debian's qemu-system-arm running MicroPython (serial only)
qemu-esp32         Espressif's QEMU, when installed
board:<id>         a board from the inventory (boards.toml)
url:<ws-url>       any running server
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from hil.errors import SetupError
from hil.targets.base import Availability, Target

# name (or prefix ending in ':') -> "module:factory"; a factory takes (name, boards_path) and returns a Target.
# Modules are imported only when their target is asked for, so a target's heavy dependencies stay optional.
_FACTORIES: dict[str, str] = {
    "host": "hil.targets.host:make_host_target",
    "host:": "hil.targets.host:make_host_target",
    "url:": "hil.targets.url:make_url_target",
    "sim": "hil.targets.sim:make_sim_target",
    "sim:": "hil.targets.sim:make_sim_target",
    "mpy": "hil.targets.mpy:make_mpy_target",
    "qemu-microbit": "hil.targets.qemu_microbit:make_qemu_microbit_target",
    "qemu-esp32": "hil.targets.qemu_esp32:make_qemu_esp32_target",
    "board:": "hil.targets.board:make_board_target",
}
BUILTIN_TARGETS = ("host", "host:websockets", "sim", "sim:viperhttp", "mpy", "qemu-microbit", "qemu-esp32")
TARGET_HELP = "host[:IMPL], sim[:viperhttp], mpy, qemu-microbit, qemu-esp32, board:<id>, url:ws://HOST:PORT[/path]"


def _factory_for(name: str) -> Callable[[str, Path | None], Target]:
    key = name if name in _FACTORIES else name.split(":", 1)[0] + ":" if ":" in name else name
    spec = _FACTORIES.get(key)
    if spec is None:
        raise SetupError(f"unknown target {name!r}: use one of {TARGET_HELP}")
    module_name, attr = spec.split(":")
    return getattr(importlib.import_module(module_name), attr)


def resolve_target(name: str, boards_path: Path | None = None) -> Target:
    """The Target for a name; SetupError (one line) for a bad name or inventory entry."""
    return _factory_for(name.strip())(name.strip(), boards_path)


def list_targets(boards_path: Path | None = None) -> list[Target]:
    """Every built-in target plus one per inventory board, for `vhil targets`."""
    from hil.inventory import load_inventory_if_present

    names = list(BUILTIN_TARGETS)
    inventory = load_inventory_if_present(boards_path)
    if inventory is not None:
        names += [f"board:{board.id}" for board in inventory.boards]
    return [resolve_target(n, boards_path) for n in names]


__all__ = ["Availability", "Target", "TARGET_HELP", "list_targets", "resolve_target"]
