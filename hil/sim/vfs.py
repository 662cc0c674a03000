"""The simulated board's filesystem root: MicroPython paths (`/main.py`) mapped into a host directory.

Code typed at the REPL and `boot.py`/`main.py` see an `os` (and `uos`) and an `open` that resolve absolute paths
inside the board's directory, as on a board whose flash filesystem is mounted at `/`.
"""
from __future__ import annotations

import builtins
import os as host_os
import types
from collections import namedtuple
from pathlib import Path
from typing import Any

# os.uname() of MicroPython on an ESP32: indexable and with named fields, as MicroPython's uname_result is
UnameResult = namedtuple("UnameResult", "sysname nodename release version machine")
UNAME = UnameResult("esp32", "esp32", "1.23.0", "v1.23.0 on 2024-06-02", "Generic ESP32 module with ESP32")


class BoardFs:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def host_path(self, path: str) -> str:
        if path.startswith("/"):
            full = (self.root / path.lstrip("/")).resolve()
        else:
            full = (Path(host_os.getcwd()) / path).resolve()
        if full != self.root and self.root not in full.parents:
            raise OSError(2, "ENOENT")  # outside the board's flash: does not exist there
        return str(full)

    def board_path(self, host_path: str) -> str:
        relative = Path(host_path).resolve().relative_to(self.root).as_posix()
        return "/" if relative == "." else "/" + relative

    def open(self, path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, int):
            return builtins.open(path, mode, *args, **kwargs)
        return builtins.open(self.host_path(path), mode, *args, **kwargs)

    def os_module(self) -> types.ModuleType:
        fs = self
        module = types.ModuleType("os")

        def stat(path: str) -> tuple[int, ...]:
            result = host_os.stat(fs.host_path(path))
            return (result.st_mode, 0, 0, 0, 0, 0, result.st_size, int(result.st_atime), int(result.st_mtime),
                    int(result.st_ctime))

        def ilistdir(path: str = ".") -> Any:
            for entry in host_os.scandir(fs.host_path(path)):
                yield (entry.name, 0x4000 if entry.is_dir() else 0x8000, 0, entry.stat().st_size)

        module.__dict__.update(
            listdir=lambda path=".": sorted(host_os.listdir(fs.host_path(path))),
            ilistdir=ilistdir,
            mkdir=lambda path: host_os.mkdir(fs.host_path(path)),
            rmdir=lambda path: host_os.rmdir(fs.host_path(path)),
            remove=lambda path: host_os.remove(fs.host_path(path)),
            rename=lambda old, new: host_os.rename(fs.host_path(old), fs.host_path(new)),
            stat=stat,
            statvfs=lambda path="/": (4096, 4096, 512, 500, 500, 0, 0, 0, 0, 255),
            getcwd=lambda: fs.board_path(host_os.getcwd()),
            chdir=lambda path: host_os.chdir(fs.host_path(path)),
            uname=lambda: UNAME,
            sync=lambda: None,
            sep="/",
        )
        return module
