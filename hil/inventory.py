"""The board inventory: `boards.toml`, validated up front with one-line errors naming the board and the field.

Path: `--boards FILE`, else `$VHIL_BOARDS`, else `./boards.toml`. Secrets are never written in the file: Wi-Fi
credentials are given as the NAMES of environment variables, read (and registered with the redactor) only when
a board is actually used. See boards.example.toml for every field.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.dut_app import FIRMWARES, MICROPYTHON
from hil.errors import SetupError
from hil.redact import secret_from_env

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pyproject pins tomli for 3.10
    import tomli as tomllib

DEFAULT_INVENTORY = Path("boards.toml")
CHIPS = ("esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6", "esp32h2", "esp8266")
RESET_METHODS = ("dtr-rts", "soft", "none")
_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FlashImage:
    offset: int
    path: Path


@dataclass(frozen=True)
class WifiSettings:
    ssid_env: str
    password_env: str | None

    def credentials(self, board_id: str) -> tuple[str, str]:
        """(ssid, password) from the environment; the password is registered as a secret."""
        ssid = os.environ.get(self.ssid_env)
        if not ssid:
            raise SetupError(f"board {board_id}: wifi.ssid_env names ${self.ssid_env}, which is not set; export it")
        password = ""
        if self.password_env:
            value = secret_from_env(self.password_env)
            if value is None:
                raise SetupError(f"board {board_id}: wifi.password_env names ${self.password_env}, which is not set; export it")
            password = value
        return ssid, password


@dataclass(frozen=True)
class Board:
    id: str
    chip: str
    port: str | None  # device path or any pyserial URL
    baud: int = 115200
    reset: str = "dtr-rts"
    images: tuple[FlashImage, ...] = ()
    flash_baud: int = 460800
    erase: bool = False
    wifi: WifiSettings | None = None
    base_url: str | None = None
    labels: tuple[str, ...] = ()
    elf: Path | None = None  # firmware ELF for backtrace decoding
    addr2line: str | None = None  # xtensa-esp32-elf-addr2line or riscv32-esp-elf-addr2line
    firmware: str = MICROPYTHON  # what the board runs: plain MicroPython, or ViperHTTP firmware (hil/dut_app.py)
    place: str | None = None  # a labgrid place to acquire instead of opening `port` (docs/farm.md)
    app_host: str | None = None  # the DUT app listens here and is reached at the URL it prints (no Wi-Fi needed)
    tags: tuple[tuple[str, str], ...] = ()  # reserve any labgrid place with these tags

    @property
    def on_farm(self) -> bool:
        """Reached through a labgrid coordinator (a place or a reservation by tags), not a local port."""
        return self.place is not None or bool(self.tags)

    @property
    def port_is_url(self) -> bool:
        return bool(self.port and "://" in self.port)


@dataclass(frozen=True)
class Inventory:
    path: Path
    boards: tuple[Board, ...] = field(default_factory=tuple)

    def board(self, board_id: str) -> Board:
        for board in self.boards:
            if board.id == board_id:
                return board
        known = ", ".join(b.id for b in self.boards) or "none"
        raise SetupError(f"board {board_id!r} is not in {self.path} (boards there: {known})")


def inventory_path(explicit: Path | None) -> Path:
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("VHIL_BOARDS")
    return Path(env) if env else DEFAULT_INVENTORY


def load_inventory(path: Path | None) -> Inventory:
    """Load and validate; SetupError (one line) when the file is missing or an entry is wrong."""
    path = inventory_path(path)
    if not path.is_file():
        raise SetupError(f"board inventory {path} not found: pass --boards FILE or set VHIL_BOARDS (see boards.example.toml)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"board inventory {path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise SetupError(f"board inventory {path}: cannot read it ({exc.strerror})") from None
    unknown_top = set(data) - {"board"}
    if unknown_top:
        raise SetupError(f"board inventory {path}: unknown top-level key {sorted(unknown_top)[0]!r}; boards go in [[board]] tables")
    entries = data.get("board", [])
    if not isinstance(entries, list):
        raise SetupError(f"board inventory {path}: `board` must be an array of tables ([[board]])")
    boards: list[Board] = []
    for index, entry in enumerate(entries):
        board = _parse_board(entry, index, path.parent)
        if any(b.id == board.id for b in boards):
            raise SetupError(f"board inventory {path}: board {board.id}: id is used twice; ids must be unique")
        boards.append(board)
        if board.wifi is not None and board.wifi.password_env:
            # registered now, not when first used: the board may echo it (a printed config) before we send it
            secret_from_env(board.wifi.password_env)
    return Inventory(path=path, boards=tuple(boards))


def load_inventory_if_present(path: Path | None) -> Inventory | None:
    """The inventory when a file was named or ./boards.toml exists; None otherwise (no boards configured)."""
    if path is None and not os.environ.get("VHIL_BOARDS") and not DEFAULT_INVENTORY.is_file():
        return None
    return load_inventory(path)


_BOARD_KEYS = {"id", "chip", "port", "baud", "reset", "flash", "wifi", "base_url", "labels", "elf", "addr2line", "place",
               "tags", "firmware", "app_host"}
# labgrid's own rules (labgrid.remote.common.TAG_KEY) for tag keys; values are kept to what reservations accept
TAG_KEY_RE = re.compile(r"^[a-z][a-z0-9_]+$")
TAG_VALUE_RE = re.compile(r"^[a-z0-9_.-]+$")
_FLASH_KEYS = {"images", "baud", "erase"}
_WIFI_KEYS = {"ssid_env", "password_env"}


def _parse_board(entry: Any, index: int, base_dir: Path) -> Board:
    if not isinstance(entry, dict):
        raise SetupError(f"board #{index + 1}: must be a table")
    board_id = entry.get("id")
    if not isinstance(board_id, str) or not _ID_RE.match(board_id):
        raise SetupError(f"board #{index + 1}: field id must be a name of letters, digits, '_', '.', '-' (got {board_id!r})")

    def fail(field_name: str, what: str) -> SetupError:
        return SetupError(f"board {board_id}: field {field_name} {what}")

    unknown = set(entry) - _BOARD_KEYS
    if unknown:
        raise fail(sorted(unknown)[0], f"is not known; use {', '.join(sorted(_BOARD_KEYS))}")
    chip = entry.get("chip")
    if chip not in CHIPS:
        raise fail("chip", f"must be one of {', '.join(CHIPS)} (got {chip!r})")
    port = entry.get("port")
    if port is not None and (not isinstance(port, str) or not port.strip()):
        raise fail("port", "must be a device path or a pyserial URL such as socket://HOST:PORT")
    baud = entry.get("baud", 115200)
    if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
        raise fail("baud", f"must be a positive integer (got {baud!r})")
    reset = entry.get("reset", "dtr-rts")
    if reset not in RESET_METHODS:
        raise fail("reset", f"must be one of {', '.join(RESET_METHODS)} (got {reset!r})")
    app_host = entry.get("app_host")
    if app_host is not None and (not isinstance(app_host, str) or not re.match(r"^[A-Za-z0-9.:-]+$", app_host)):
        raise fail("app_host", f"must be the address the DUT app listens on, e.g. 127.0.0.1 (got {app_host!r})")
    base_url = entry.get("base_url")
    if base_url is not None and (not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+/?$", base_url)):
        raise fail("base_url", f"must look like http://HOST:PORT (got {base_url!r})")
    place = entry.get("place")
    if place is not None and (not isinstance(place, str) or not _ID_RE.match(place)):
        raise fail("place", f"must be a labgrid place name of letters, digits, '_', '.', '-' (got {place!r})")
    raw_tags = entry.get("tags", {})
    if not isinstance(raw_tags, dict) or not raw_tags and "tags" in entry:
        raise fail("tags", "must be a non-empty table of labgrid tags, e.g. tags = {chip = \"esp32s3\"}")
    for key, value in raw_tags.items():
        if not TAG_KEY_RE.match(key) or not isinstance(value, str) or not TAG_VALUE_RE.match(value):
            raise fail(f"tags.{key}", "must be key = \"value\" with a key of a-z, 0-9, _ (letter first) and a value of "
                                      "a-z, 0-9, _, ., - (labgrid's tag rules)")
    if sum(x is not None for x in (port, place, raw_tags or None)) > 1:
        raise fail("place", "port, place and tags exclude each other: a farm board's port comes from labgrid")
    if port is None and base_url is None and place is None and not raw_tags:
        raise fail("port", "is missing; give a serial port, a labgrid place or tags (or at least base_url)")
    labels = entry.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise fail("labels", "must be a list of strings")
    firmware = entry.get("firmware", MICROPYTHON)
    if firmware not in FIRMWARES:
        raise fail("firmware", f"must be one of {', '.join(FIRMWARES)} (got {firmware!r})")
    elf = entry.get("elf")
    if elf is not None and not isinstance(elf, str):
        raise fail("elf", "must be a path to the firmware ELF")
    addr2line = entry.get("addr2line")
    if addr2line is not None and not isinstance(addr2line, str):
        raise fail("addr2line", "must be a program name or path")

    images: list[FlashImage] = []
    flash_baud, erase = 460800, False
    flash = entry.get("flash")
    if flash is not None:
        if not isinstance(flash, dict):
            raise fail("flash", "must be a table")
        unknown = set(flash) - _FLASH_KEYS
        if unknown:
            raise fail(f"flash.{sorted(unknown)[0]}", f"is not known; use {', '.join(sorted(_FLASH_KEYS))}")
        flash_baud = flash.get("baud", flash_baud)
        if not isinstance(flash_baud, int) or isinstance(flash_baud, bool) or flash_baud <= 0:
            raise fail("flash.baud", f"must be a positive integer (got {flash_baud!r})")
        erase = flash.get("erase", False)
        if not isinstance(erase, bool):
            raise fail("flash.erase", "must be true or false")
        raw_images = flash.get("images", [])
        if not isinstance(raw_images, list):
            raise fail("flash.images", "must be a list of {offset, file} tables")
        for number, image in enumerate(raw_images, 1):
            images.append(_parse_image(image, f"flash.images[{number}]", base_dir, fail))

    wifi = None
    raw_wifi = entry.get("wifi")
    if raw_wifi is not None:
        if not isinstance(raw_wifi, dict):
            raise fail("wifi", "must be a table with ssid_env and password_env")
        unknown = set(raw_wifi) - _WIFI_KEYS
        if unknown:
            what = "must not hold a literal secret; name an environment variable in password_env" if "password" in unknown \
                else f"is not known; use {', '.join(sorted(_WIFI_KEYS))}"
            raise fail(f"wifi.{sorted(unknown)[0]}", what)
        for key in ("ssid_env", "password_env"):
            value = raw_wifi.get(key)
            if (key == "ssid_env" or value is not None) and (not isinstance(value, str) or not _ENV_NAME_RE.match(value)):
                raise fail(f"wifi.{key}", f"must be an environment variable NAME such as VHIL_WIFI_PASSWORD (got {value!r})")
        wifi = WifiSettings(ssid_env=raw_wifi["ssid_env"], password_env=raw_wifi.get("password_env"))

    return Board(
        id=board_id, chip=chip, port=port.strip() if port else None, baud=baud, reset=reset, images=tuple(images),
        flash_baud=flash_baud, erase=erase, wifi=wifi, base_url=base_url.rstrip("/") if base_url else None,
        labels=tuple(labels), elf=(base_dir / elf) if elf else None, addr2line=addr2line, firmware=firmware,
        place=place, tags=tuple(sorted(raw_tags.items())), app_host=app_host,
    )


def _parse_image(image: Any, where: str, base_dir: Path, fail: Any) -> FlashImage:
    if not isinstance(image, dict) or set(image) != {"offset", "file"}:
        raise fail(where, "must be a table with exactly offset and file")
    offset = image["offset"]
    if isinstance(offset, str):
        try:
            offset = int(offset, 0)
        except ValueError:
            raise fail(f"{where}.offset", f"must be an integer such as 0x1000 (got {image['offset']!r})") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise fail(f"{where}.offset", f"must be a non-negative integer such as 0x1000 (got {image['offset']!r})")
    if not isinstance(image["file"], str):
        raise fail(f"{where}.file", "must be a path")
    return FlashImage(offset=offset, path=base_dir / image["file"])
