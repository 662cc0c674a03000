"""`vhil serve` with its event loop's turns timed: `python benchmarks/loop_turns.py OUT.json [vhil serve args]`.

Every turn of the asyncio loop (one pass over the ready callbacks and the I/O they wait for) that takes more
than TURN_RECORD_MS of the server thread's CPU is recorded as [time.monotonic(), CPU ms], and the list is
written to OUT.json every WRITE_EVERY_S. CPU time, not wall time, because on a shared 2-core machine the wall
time of a turn includes whatever else ran meanwhile; the CPU time is the server's own cost, the time every
other connection waited behind that turn on a core of its own. time.monotonic() is the machine's clock, so the
benchmark can place the turns among its own events. It wraps asyncio's private `BaseEventLoop._run_once`: a
measuring instrument for CPython only, never loaded by the server itself.
"""
from __future__ import annotations

import asyncio.base_events
import sys
import threading
import time
from pathlib import Path

TURN_RECORD_MS = 2.0
WRITE_EVERY_S = 0.25


def record_turns(out: Path) -> None:
    from hil.artifacts import atomic_write_json

    turns: list[list[float]] = []
    run_once = asyncio.base_events.BaseEventLoop._run_once  # type: ignore[attr-defined]

    def timed_run_once(loop: asyncio.base_events.BaseEventLoop) -> None:
        started = time.thread_time()
        run_once(loop)
        cpu_ms = (time.thread_time() - started) * 1000
        if cpu_ms > TURN_RECORD_MS:
            turns.append([round(time.monotonic(), 4), round(cpu_ms, 2)])

    asyncio.base_events.BaseEventLoop._run_once = timed_run_once  # type: ignore[attr-defined]

    def write_periodically() -> None:
        while True:
            atomic_write_json(out, list(turns))
            time.sleep(WRITE_EVERY_S)

    threading.Thread(target=write_periodically, name="loop-turns", daemon=True).start()


def main() -> int:
    from vhil_serve.cli import main as serve

    record_turns(Path(sys.argv[1]))
    return serve(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
