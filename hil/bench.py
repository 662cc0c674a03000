"""`vhil bench memory`: what the framework costs a MicroPython heap, measured on the `mpy` VM.

    vhil bench memory --target mpy [--peer microdot] [--out FILE]

Every figure is live heap (gc.collect(), then gc.mem_alloc()) read through the bridge's control port, between
the VM's tasks, so no Python frame of the measurement holds garbage:

  import_bytes            importing the app and its framework (as .mpy) and building the connection handler
  per_connection_bytes    extra heap per open idle WebSocket connection, averaged over IDLE_CONNECTIONS
  growth_after_10k_bytes  heap after ECHO_MESSAGES echoed messages (and a collection) less the heap before
  peak_64k_echo_bytes     highest live heap seen at the bridge's reads and writes while one 64 KiB binary message
                          is echoed, less the heap before (transients between two I/O points are not seen)

The reference runs the DUT app; `--peer microdot` runs Microdot 2.x (hil/mpy/peer_microdot.py: its core,
WebSocket and SSE modules and an echo route) on the same VM build in the same run. Both are reached over real
loopback sockets by the same client code. Budgets (issue 10) are reported, and the exit status is 1 when one
does not hold.
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from hil.artifacts import atomic_write_json
from hil.errors import SetupError
from hil.targets.mpy import MpyTarget, vm_package_version

EXIT_OK, EXIT_FAILED = 0, 1
ECHO_PATH = "/ws/autobahn"  # plain echo on both apps
IDLE_CONNECTIONS = 100
ECHO_MESSAGES = 10_000
ECHO_WARMUP = 200  # echoes before the growth baseline: first-use allocations are not growth
ECHO_WINDOW = 32  # messages in flight on the growth connection
ECHO_PAYLOAD = "m" * 32
BIG_ECHO_BYTES = 64 * 1024  # the DUT app's message limit on MicroPython
OPEN_CONCURRENCY = 10
SETTLE_POLL_S = 0.2
SETTLE_TIMEOUT_S = 10.0  # closing handshakes finish within CLOSING_TIMEOUT_S (5 s) on the reference
PHASE_TIMEOUT_S = 180.0
FIGURES = ("import_bytes", "per_connection_bytes", "growth_after_10k_bytes", "peak_64k_echo_bytes")
PEERS = ("microdot",)
# issue 10's budgets: name -> (limit, whether the peer's figure is a limit too)
IMPORT_BUDGET_BYTES = 40_000
PER_CONNECTION_BUDGET_BYTES = 1_536
GROWTH_BUDGET_BYTES = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks that are not timings: memory on the MicroPython VM")
    actions = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    memory = actions.add_parser("memory", help="heap taken by import, per idle WebSocket, growth, 64 KiB echo peak")
    memory.add_argument("--target", default="mpy", metavar="TARGET", help="mpy (the only target with a heap to read)")
    memory.add_argument("--peer", choices=PEERS, default=None, help="measure this framework too, on the same VM")
    memory.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the figures as JSON here")
    memory.set_defaults(func=cmd_memory)


def _print_progress(app: str, line: str) -> None:
    print(f"[{app}] {line}", file=sys.stderr, flush=True)


def cmd_memory(args: argparse.Namespace) -> int:
    if args.target != "mpy":
        raise SetupError(f"bench memory reads a MicroPython heap: use --target mpy (got {args.target})")
    apps = ["viperhttp"] + ([args.peer] if args.peer else [])
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "vm": vm_package_version(),
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start",
        "figures": {},
    }
    for app in apps:
        figures = measure_app(app, progress=functools.partial(_print_progress, app))
        results["figures"][app] = figures
        for name in FIGURES:
            print(f"{app} {name} {figures[name]}", flush=True)
        if args.out:
            atomic_write_json(args.out, results)  # as the run goes: a failed peer leaves the reference's figures
    results["budgets"] = budgets(results["figures"])
    for verdict in results["budgets"]:
        print(f"budget {verdict['budget']}: {verdict['value']} <= {verdict['limit']} "
              f"{'holds' if verdict['holds'] else 'EXCEEDED'}")
    if args.out:
        atomic_write_json(args.out, results)
    return EXIT_OK if all(v["holds"] for v in results["budgets"]) else EXIT_FAILED


def budgets(figures: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    ours = figures["viperhttp"]
    checks = [("import_bytes", ours["import_bytes"], IMPORT_BUDGET_BYTES),
              ("per_connection_bytes", ours["per_connection_bytes"], PER_CONNECTION_BUDGET_BYTES),
              ("growth_after_10k_bytes", ours["growth_after_10k_bytes"], GROWTH_BUDGET_BYTES)]
    if "microdot" in figures:
        checks.append(("per_connection_bytes vs microdot", ours["per_connection_bytes"],
                       figures["microdot"]["per_connection_bytes"]))
    return [{"budget": name, "value": value, "limit": limit, "holds": value <= limit} for name, value, limit in checks]


def measure_app(app: str, progress: Callable[[str], None]) -> dict[str, int]:
    target = MpyTarget(name="mpy" if app == "viperhttp" else f"mpy:{app}", app=app, control=True)
    with target:
        return asyncio.run(asyncio.wait_for(_measure(target, progress), PHASE_TIMEOUT_S))


async def _measure(target: MpyTarget, progress: Callable[[str], None]) -> dict[str, int]:
    url = target.ws_url(ECHO_PATH)
    figures: dict[str, int] = {"import_bytes": int(target.control_command("import"))}
    progress(f"import {figures['import_bytes']} bytes")

    async with _open(url) as ws:  # the first connection loads what a handshake loads lazily
        await _echo(ws, ECHO_PAYLOAD)
    base = await _steady_heap(target)
    # more than a board's cap (viperhttp serves 10 at once on MicroPython), for a steadier average
    target.control_command(f"max_connections {IDLE_CONNECTIONS + 1}")
    connections = await _open_idle(url, IDLE_CONNECTIONS)
    try:
        with_idle = await _steady_heap(target)
    finally:
        await asyncio.gather(*(ws.close() for ws in connections))
    figures["per_connection_bytes"] = round((with_idle - base) / IDLE_CONNECTIONS)
    progress(f"{IDLE_CONNECTIONS} idle connections: {with_idle - base} bytes")
    await _steady_heap(target)

    async with _open(url) as ws:
        await _echo_many(ws, ECHO_WARMUP)
        before = await _steady_heap(target)
        started = time.monotonic()
        await _echo_many(ws, ECHO_MESSAGES)
        after = await _steady_heap(target)
        figures["growth_after_10k_bytes"] = after - before
        progress(f"{ECHO_MESSAGES} echoes in {time.monotonic() - started:.1f} s: heap {before} -> {after}")

        big = os.urandom(BIG_ECHO_BYTES)
        start = int(target.control_command("peak start"))
        echoed = await _echo(ws, big)
        peak = int(target.control_command("peak stop"))
        if echoed != big:
            raise RuntimeError(f"{target.name}: the 64 KiB echo came back altered")
        figures["peak_64k_echo_bytes"] = peak - start
        progress(f"64 KiB echo: peak {peak - start} bytes over {start}")
    return figures


def _open(url: str) -> Any:
    # no keepalive pings: an idle connection must stay idle; no size limit on what comes back
    return connect(url, ping_interval=None, max_size=None, open_timeout=30, close_timeout=10)


async def _echo(ws: ClientConnection, message: str | bytes) -> str | bytes:
    await ws.send(message)
    return await ws.recv()


async def _open_idle(url: str, count: int) -> list[ClientConnection]:
    """`count` open connections, each past one echo (so its handler is waiting in receive)."""
    connections: list[ClientConnection] = []
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def open_one() -> None:
        async with gate:
            ws = await _open(url)
            connections.append(ws)
            await _echo(ws, ECHO_PAYLOAD)

    try:
        await asyncio.gather(*(open_one() for _ in range(count)))
    except BaseException:
        await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
        raise
    return connections


async def _echo_many(ws: ClientConnection, count: int) -> None:
    """`count` echoes with up to ECHO_WINDOW in flight; every reply checked."""
    window = asyncio.Semaphore(ECHO_WINDOW)

    async def sender() -> None:
        for _ in range(count):
            await window.acquire()
            await ws.send(ECHO_PAYLOAD)

    send_task = asyncio.ensure_future(sender())
    try:
        for index in range(count):
            reply = await ws.recv()
            if reply != ECHO_PAYLOAD:
                raise RuntimeError(f"echo {index}: got {reply!r:.60}")
            window.release()
        await send_task
    finally:
        send_task.cancel()


async def _heap(target: MpyTarget) -> int:
    await asyncio.sleep(SETTLE_POLL_S)  # let the VM's tasks finish what the last reply started
    return await asyncio.to_thread(target.heap_bytes_now)


async def _steady_heap(target: MpyTarget) -> int:
    """The heap once two readings in a row agree: closed connections finish their closing handshakes, and a
    reading taken while the VM still held a reply's transient objects is not the one kept."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    previous = await _heap(target)
    while time.monotonic() < deadline:
        current = await _heap(target)
        if current == previous:
            return current
        previous = current
    return previous
