"""The DUT app as it goes onto a device: the one place that says which files it is made of.

Serial deploy (hil/serial/target.py), the qemu-esp32 filesystem image and the mpy target's staging all take
their file list from here. What a device gets depends on the firmware it runs:

micropython  plain MicroPython: the reference framework (/viperhttp/...), the DUT app and its adapters
viperhttp    ViperHTTP firmware: its built-in viperhttp is the device under test, so only the DUT app and
             its adapters (a /viperhttp package on the filesystem would shadow it)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
FRAMEWORK_DIR = REPO_ROOT / "framework" / "viperhttp"
DUT_DIR = REPO_ROOT / "framework" / "dut"
DUT_MAIN = DUT_DIR / "main.py"
CONFIG_PATH = "/dut_config.json"
MICROPYTHON, VIPERHTTP = "micropython", "viperhttp"
FIRMWARES = (MICROPYTHON, VIPERHTTP)


def app_sources(firmware: str = MICROPYTHON) -> dict[str, Path]:
    """Device path -> source file of everything the DUT app needs on `firmware` (main.py is /main.py)."""
    if firmware not in FIRMWARES:
        raise ValueError(f"firmware {firmware!r}: use one of {', '.join(FIRMWARES)}")
    sources: dict[str, Path] = {}
    if firmware == MICROPYTHON:
        for source in sorted(FRAMEWORK_DIR.rglob("*.py")):
            sources["/viperhttp/" + source.relative_to(FRAMEWORK_DIR).as_posix()] = source
    for source in sorted(DUT_DIR.glob("*.py")):
        sources["/" + source.name] = source
    return sources


def app_files(firmware: str = MICROPYTHON, config: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Device path -> contents: the app's sources, plus /dut_config.json when a config is given."""
    files = {path: source.read_bytes() for path, source in app_sources(firmware).items() if source.is_file()}
    if config is not None:
        files[CONFIG_PATH] = json.dumps(config).encode()
    return files
