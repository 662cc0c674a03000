"""The simulated board's record of its sessions: every open and close of its serial port, as the kernel saw them.

A session is the time someone has the board's port open (a runner, mpremote, ser2net for a farm client). The
recorder watches the pty with inotify, so it sees every client whatever it is and whether or not it took a lock.
inotify merges an event with an identical one still unread (two opens in quick succession arrive as one), so at
each event the recorder counts the descriptors open on the pty in /proc (the simulator's own excluded) and appends
one JSON line: {"t": epoch seconds, "event": "open" | "close", "open": descriptors now, "pids": [their processes]}.
Two sessions overlap when an open finds the port open twice: `open` >= 2 on an open line.

It runs in a process forked from the simulator's first boot (before any thread exists): resets re-execute the
simulator, and the watch (with events queued during the re-execution) must outlive them. It ends with the simulator.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import select
import signal
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

IN_OPEN, IN_CLOSE_WRITE, IN_CLOSE_NOWRITE = 0x20, 0x08, 0x10
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)
_PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def start_recorder(pty_path: str, record: Path, close_fds: Iterable[int]) -> int:
    """Fork the recorder for `pty_path` (call before starting threads); its pid. The watch is in place on return."""
    libc = _libc()
    watch_fd = libc.inotify_init1(os.O_CLOEXEC)
    if watch_fd < 0 or libc.inotify_add_watch(watch_fd, pty_path.encode(), IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE) < 0:
        raise OSError(ctypes.get_errno(), f"inotify on {pty_path}: {os.strerror(ctypes.get_errno())}")
    parent = os.getpid()
    pid = os.fork()
    if pid:
        os.close(watch_fd)
        return pid
    try:
        for fd in close_fds:  # holding the pty here would keep a dead board's port alive
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # nor may it hold the pipe its parent's reader waits on
            os.dup2(devnull, fd)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if os.getppid() != parent:
            os._exit(0)
        _record(watch_fd, pty_path, record)
    finally:
        os._exit(0)


def open_descriptors(path: str, exclude: set[int]) -> list[int]:
    """The pid of every descriptor open on `path` (one entry per descriptor), processes in `exclude` left out."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry.name}/fd/{fd}") == path:
                    found.append(int(entry.name))
            except OSError:
                continue
    return sorted(found)


def _record(watch_fd: int, pty_path: str, record: Path) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    board_processes = {os.getppid(), os.getpid()}  # the simulator holds its own pty open for its whole life
    with open(record, "a", encoding="utf-8") as out:
        while True:
            if not select.select([watch_fd], [], [], 1.0)[0]:
                continue
            data = os.read(watch_fd, 65536)
            now = time.time()
            offset = 0
            while offset < len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & IN_OPEN:
                    event = "open"
                elif mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE):
                    event = "close"
                else:
                    continue
                pids = open_descriptors(pty_path, board_processes)
                out.write(json.dumps({"t": round(now, 6), "event": event, "open": len(pids), "pids": pids}) + "\n")
            out.flush()


@dataclass(frozen=True)
class Session:
    start: float
    end: float | None  # None: still open when the record ends
    overlaps: int  # opens by someone else while this session had the port open (0 for an exclusive session)


def read_sessions(record: Path) -> list[Session]:
    """The sessions in a record: each from the port's first open until it is closed by everyone again."""
    sessions: list[Session] = []
    start: float | None = None
    overlaps = 0
    try:
        lines = record.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the last line of a record being written
        if entry["event"] == "open":
            if start is None:
                start, overlaps = entry["t"], 0
            if entry["open"] >= 2:
                overlaps += 1
        if entry["open"] == 0 and start is not None:  # an open already closed again when counted: a short session
            sessions.append(Session(start, entry["t"], overlaps))
            start = None
    if start is not None:
        sessions.append(Session(start, None, overlaps))
    return sessions
