"""Exclusive use of a board: an OS lock (flock) per name in VHIL_LOCK_DIR, held for a whole run.

The kernel owns the lock, so a holder that dies (SIGKILL included) frees it at once; there is no marker file to
clean up. The lock file's content says who holds it (pid, host, user, command, since when) so a waiter can show
it and a run that gives up after `--lock-timeout` can name it. Targets take the lock when they acquire their
board (hil/targets/board.py), the way labgrid acquires a place, so every command and suite that drives a board is
covered without knowing about locks.
"""
from __future__ import annotations

import argparse
import errno
import fcntl
import getpass
import json
import os
import re
import shlex
import socket
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from hil.errors import SetupError
from hil.redact import redact

LOCK_DIR_ENV = "VHIL_LOCK_DIR"
LOCK_TIMEOUT_ENV = "VHIL_LOCK_TIMEOUT"
LEASE_LOG_ENV = "VHIL_LEASE_LOG"  # when set: one JSON line per board lease appended here (who, which, waits, times)
DEFAULT_LOCK_TIMEOUT_S = 300.0  # a CI job queued behind another for five minutes is stuck, not busy
POLL_S = 0.2
_COMMAND_CHARS = 160


def lock_dir() -> Path:
    """$VHIL_LOCK_DIR, else a directory of this user's (XDG_RUNTIME_DIR, else the temp dir), created 0700.

    Locks only exclude runs that use the same directory: several users sharing boards on one machine point
    VHIL_LOCK_DIR at one shared directory (e.g. /var/lock/vhil, group-writable).
    """
    configured = os.environ.get(LOCK_DIR_ENV)
    if configured:
        path = Path(configured)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SetupError(f"{LOCK_DIR_ENV}={configured}: cannot create the lock directory ({exc.strerror})") from None
        return path
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and Path(runtime).is_dir() else Path(tempfile.gettempdir())
    path = base / f"vhil-locks-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise SetupError(f"lock directory {path} is not a directory of yours; set {LOCK_DIR_ENV} to one that is")
    return path


def lock_timeout_s() -> float:
    """Seconds a run waits for a busy board: --lock-timeout (which sets $VHIL_LOCK_TIMEOUT), default 300."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise SetupError(f"{LOCK_TIMEOUT_ENV}={raw!r}: give the seconds to wait for a busy board, e.g. 300")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def add_lock_timeout_option(parser: argparse.ArgumentParser) -> None:
    """`--lock-timeout SECONDS` on a board-driving command; hil.cli exports it as $VHIL_LOCK_TIMEOUT."""
    parser.add_argument("--lock-timeout", type=_seconds, default=None, metavar="SECONDS",
                        help=f"wait this long for a board another run holds, then exit 2 naming the holder "
                             f"(default ${LOCK_TIMEOUT_ENV} or {DEFAULT_LOCK_TIMEOUT_S:g})")


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    user: str
    command: str
    since: float  # epoch seconds

    @classmethod
    def of_this_process(cls) -> "Holder":
        command = redact(shlex.join([os.path.basename(sys.argv[0]), *sys.argv[1:]])).replace("\n", "\\n")  # one line
        return cls(os.getpid(), socket.gethostname(), getpass.getuser(), command[:_COMMAND_CHARS], time.time())

    def describe(self, now: float | None = None) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.since))
        held = max(0.0, (now or time.time()) - self.since)
        return f"pid {self.pid} on {self.host} (user {self.user}, `{self.command}`, since {since}, {held:.0f} s)"


def read_holder(path: Path) -> Holder | None:
    """Who the lock file says holds it; None while a new holder is still writing it, or for a foreign file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["user"]), str(data["command"]), float(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class WaitStatus:
    """One steady status line while waiting: rewritten in place on a terminal, printed when it changes otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last_subject = ""
        self._width = 0

    def show(self, subject: str, text: str) -> None:
        if self.tty:
            line = text[:200]
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
        elif subject != self._last_subject:  # a log file gets one line per holder, not one per poll
            print(text, file=self.stream, flush=True)
        self._last_subject = subject

    def done(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._width = 0


_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")


class ExclusiveLock:
    """An flock on `<lock dir>/<name>.lock`. `acquire` waits up to a timeout; `release` is idempotent."""

    def __init__(self, name: str, what: str, directory: Path | None = None) -> None:
        self.name = name
        self.what = what  # how messages call the locked thing: "board esp1"
        self.path = (directory or lock_dir()) / f"{_NAME_RE.sub('-', name)}.lock"
        self._fd: int | None = None
        self.waited_s = 0.0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; write this process in as the holder."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        holder = Holder.of_this_process()
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder.__dict__).encode(), 0)
        self._fd = fd
        return True

    def acquire(self, timeout: float, status: WaitStatus | None = None,
                on_wait: Callable[[Holder | None], None] | None = None) -> None:
        """Wait up to `timeout` s, showing the holder; SetupError naming the holder when it does not let go."""
        started = time.monotonic()
        deadline = started + timeout
        status = status or WaitStatus()
        try:
            while not self.try_acquire():
                holder = read_holder(self.path)
                if on_wait is not None:
                    on_wait(holder)
                now = time.monotonic()
                who = holder.describe() if holder else "a run that is just starting"
                if now >= deadline:
                    raise SetupError(f"{self.what} is busy: held by {who}; gave up after {timeout:g} s "
                                     f"(raise --lock-timeout, or stop that run)")
                subject = f"{holder.pid}@{holder.host}" if holder else ""
                status.show(subject, f"waiting for {self.what} ({now - started:.0f}/{timeout:g} s): held by {who}")
                time.sleep(min(POLL_S, max(0.0, deadline - now)))
        finally:
            status.done()
            self.waited_s = time.monotonic() - started

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # the next waiter must not show us as the holder
        finally:
            os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> "ExclusiveLock":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def append_lease_record(record: dict[str, object]) -> None:
    """One line in $VHIL_LEASE_LOG (when set) for a lease that ended: a farm's account of who held which board."""
    path = os.environ.get(LEASE_LOG_ENV)
    if not path:
        return
    line = (json.dumps(dict(record, pid=os.getpid()), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)  # one write on O_APPEND: concurrent writers never interleave within a line
    finally:
        os.close(fd)
