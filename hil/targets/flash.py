"""Flashing through esptool: chip, baud and offsets from the inventory; optional erase; hash-verified writes.

esptool (v4.7+/v5) checks each written region's hash itself and prints `Hash of data verified.`; the run counts
those lines so a write that was not verified is reported as a failure, not a success.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hil.errors import SetupError
from hil.inventory import Board
from hil.process import ManagedProcess

FLASH_TIMEOUT_S = 600.0


@dataclass
class FlashResult:
    skipped: str | None  # the reason, when nothing was flashed
    ok: bool = False
    seconds: float = 0.0
    verified_regions: int = 0
    output_tail: str = ""


def esptool_argv(board: Board) -> list[str]:
    if not board.port:
        raise SetupError(f"board {board.id}: flashing needs a serial port; set `port` in the inventory")
    # with no reset lines wired, esptool must not try to enter the bootloader by itself
    before = "default-reset" if board.reset == "dtr-rts" else "no-reset"
    argv = [sys.executable, "-m", "esptool", "--chip", board.chip, "--port", board.port, "--baud", str(board.flash_baud),
            "--before", before, "--after", "hard-reset", "write-flash"]
    if board.erase:
        argv.append("--erase-all")
    for image in board.images:
        argv += [hex(image.offset), str(image.path)]
    return argv


def flash_board(board: Board, log_path: Path | None = None) -> FlashResult:
    if not board.images:
        return FlashResult(skipped=f"board {board.id} has no flash.images in the inventory; nothing to flash")
    missing = [str(image.path) for image in board.images if not image.path.is_file()]
    if missing:
        raise SetupError(f"board {board.id}: flash image {missing[0]} not found; fix flash.images in the inventory")
    started = time.monotonic()
    process = ManagedProcess(esptool_argv(board), log_path=log_path)
    try:
        status = process.proc.wait(FLASH_TIMEOUT_S)
    finally:
        process.stop()
    output = process.output()
    verified = output.count("Hash of data verified")
    return FlashResult(skipped=None, ok=status == 0 and verified >= len(board.images),
                       seconds=round(time.monotonic() - started, 1), verified_regions=verified,
                       output_tail="\n".join(output.strip().splitlines()[-8:]))
