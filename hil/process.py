"""Child processes (servers, QEMU, simulators, load workers, esptool): started in their own process group, always reaped.

Every process started here is registered until it is stopped; an atexit hook and the CLI's signal handlers
stop whatever is still registered, so no server, QEMU or simulator outlives the run.
"""
from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Callable, Sequence

_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
_live: "set[ManagedProcess]" = set()
_live_lock = threading.Lock()


class ManagedProcess:
    """A subprocess whose output is copied, line by line, to a log file as it arrives."""

    def __init__(self, argv: Sequence[str], log_path: Path | None = None, env: dict[str, str] | None = None,
                 cwd: str | None = None, stop_signal: int = signal.SIGINT, die_with_parent: bool = False) -> None:
        self.argv = list(argv)
        self.stop_signal = stop_signal  # what asks the process to end (e.g. SIGTERM for one that uses SIGINT itself)
        self.log_path = log_path
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._log: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_path, "a", encoding="utf-8", errors="replace")
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True, text=True, errors="replace", bufsize=1,
            preexec_fn=_die_with_parent(os.getpid()) if die_with_parent else None,
        )
        with _live_lock:
            _live.add(self)
        self._reader = threading.Thread(target=self._pump, name=f"pump-{self.proc.pid}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self._log is not None:
                self._log.write(time.strftime("%H:%M:%S ") + line)
                self._log.flush()
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait for an output line matching `pattern`; raise TimeoutError or ProcessLookupError (exited)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self._lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise ProcessLookupError(f"exited with status {self.proc.returncode}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no line matching {pattern!r} within {timeout:g} s")
                self._cond.wait(min(remaining, 0.2))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """`stop_signal` (SIGINT) to the process group, then SIGKILL after `grace` seconds. Idempotent."""
        if self.proc.poll() is None:
            for sig, wait in ((self.stop_signal, grace), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            # the leader is gone; its group may still hold children
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._reader.join(timeout=2)
        if self._log is not None and not self._log.closed:
            self._log.close()
        with _live_lock:
            _live.discard(self)


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """For a child that must not outlive a parent killed by SIGKILL (no atexit then): Linux's parent-death signal.

    The signal fires when the thread that started the child ends, so only children started from a thread that
    lives as long as the run (the main thread) should ask for it.
    """
    prctl = _prctl()

    def arm() -> None:  # runs in the child between fork and exec: no look-ups, no subprocesses there
        if prctl is None:
            return  # not Linux: atexit and the signal handlers still stop it on every other exit
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)
    return arm


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, found once in the parent (find_library runs ldconfig: too slow and unsafe after fork)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def stop_all() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        proc.stop(grace=2.0)


atexit.register(stop_all)
