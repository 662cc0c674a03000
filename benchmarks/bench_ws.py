"""Reference framework (`host`) against the `websockets` peer (`host:websockets`), side by side, in one run.

    python benchmarks/bench_ws.py [--quick] [--rounds 3] [--out benchmarks/latest.json] [--no-readme]

Measures, for each implementation, with the same client code on the same machine (micro-benchmarks in alternating
rounds, median reported, because the 2-core machine is shared and its background load drifts):
  echo round trips/s   1 client, then 50 clients, each sending a 32-byte message and waiting for its echo (ECHO_S each)
  16 MiB echo          seconds to send a 16 MiB binary message and receive it back (median of BIG_ECHO_REPEATS)
  broadcast            deliveries/s to 500 room members (`pub` over /ws/rooms, 20 in flight, members count bytes)
and, through `vhil load` (the locust generator, loadtest/):
  generator capacity   the highest fan-out rate one generator process sustains against the websockets peer
                       (verdict holds with --p95-ms GENERATOR_P95_MS), in received frames/s; each step is shown
  fanout 500           `vhil load --scenario fanout --users 500` on both: delivered/s and exact p95
Ratios are reference / websockets (> 1 means the reference is faster, except for times and latencies, where < 1 is).
Results go to --out as JSON and into README.md between the bench markers. Every phase is bounded in time.
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # 550 concurrent sockets as greenlets, the same way the locust generator runs them

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import gevent

from hil.artifacts import atomic_write_json, atomic_write_text
from hil.targets import resolve_target
from loadtest.wsclient import OP_BINARY, FastWebSocket

HERE = Path(__file__).resolve().parent
IMPLS = {"reference": "host", "websockets": "host:websockets"}
ECHO_S = 3.0
ECHO_MESSAGE = "x" * 32
BIG_ECHO_BYTES = 16 * 1024 * 1024
BIG_ECHO_REPEATS = 3
BROADCAST_MEMBERS = 500
BROADCAST_MESSAGES = 200
BROADCAST_IN_FLIGHT = 20
BROADCAST_PAYLOAD = "b" * 24
PHASE_TIMEOUT_S = 120.0
GENERATOR_RATES = (40, 60, 80, 100, 120)  # broadcasts/s to 500 members: 20k..60k frames/s
GENERATOR_P95_MS = 100.0
LOAD_SECONDS = 8
FANOUT_RATE = 40  # 500 members x 40/s = 20k deliveries/s, inside one generator's capacity
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def bounded(seconds: float, what: str) -> gevent.Timeout:
    return gevent.Timeout(seconds, TimeoutError(f"{what} took over {seconds:g} s"))


def echo_round_trips(ws_url: str, clients: int, seconds: float) -> float:
    """Round trips per second over all clients, each strictly one message in flight."""
    counts = [0] * clients
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        ws = FastWebSocket(ws_url, timeout=10)
        try:
            while time.monotonic() < deadline:
                ws.send_text(ECHO_MESSAGE)
                while not ws.receive():
                    pass
                counts[index] += 1
        finally:
            ws.close()

    started = time.monotonic()
    with bounded(seconds + 30, f"echo with {clients} clients"):
        gevent.joinall([gevent.spawn(client, i) for i in range(clients)], raise_error=True)
    return sum(counts) / (time.monotonic() - started)


def big_echo_seconds(ws_url: str) -> float:
    payload = os.urandom(BIG_ECHO_BYTES)
    times = []
    ws = FastWebSocket(ws_url, timeout=30)
    try:
        for _ in range(BIG_ECHO_REPEATS):
            with bounded(60, "16 MiB echo"):
                started = time.perf_counter()
                ws.send_bytes(payload)
                received: list[tuple[int, bytes]] = []
                while not received:
                    received = ws.receive()
                times.append(time.perf_counter() - started)
            if received[0] != (OP_BINARY, payload):
                raise RuntimeError("16 MiB echo came back different")
    finally:
        ws.close()
    return statistics.median(times)


def broadcast_deliveries(ws_url: str) -> float:
    """Deliveries/s from the first `pub` to the last byte at the last member. Members count bytes, not frames: every
    broadcast frame has the same size, so the client's own parsing cost stays out of the number."""
    room = f"bench{os.getpid()}"
    frame_bytes = 2 + len(BROADCAST_PAYLOAD)
    expected_bytes = frame_bytes * BROADCAST_MESSAGES
    members = []
    with bounded(PHASE_TIMEOUT_S, "joining 500 members"):
        for _ in range(BROADCAST_MEMBERS):
            ws = FastWebSocket(ws_url, timeout=30)
            ws.send_text(f"join {room}")
            while not ws.receive():
                pass
            members.append(ws)
    finished: list[float] = []

    def member(ws: FastWebSocket) -> None:
        got = len(ws._buf)  # bytes already read past the join reply
        while got < expected_bytes:
            chunk = ws.sock.recv(1 << 18)
            if not chunk:
                raise RuntimeError("member closed before receiving every broadcast")
            got += len(chunk)
        finished.append(time.perf_counter())

    publisher = FastWebSocket(ws_url, timeout=30)
    try:
        readers = [gevent.spawn(member, ws) for ws in members]
        gevent.sleep(0.2)
        started = time.perf_counter()
        acked = sent = 0
        with bounded(PHASE_TIMEOUT_S, "broadcast to 500 members"):
            while acked < BROADCAST_MESSAGES:
                while sent < BROADCAST_MESSAGES and sent - acked < BROADCAST_IN_FLIGHT:
                    publisher.send_text(f"pub {room} {BROADCAST_PAYLOAD}")
                    sent += 1
                for _, payload in publisher.receive():
                    if payload.startswith(b"ok pub ") and payload.endswith(f" {BROADCAST_MEMBERS}".encode()):
                        acked += 1
                    else:
                        raise RuntimeError(f"unexpected reply {payload[:60]!r} (a member shed?)")
            gevent.joinall(readers, raise_error=True)
        return BROADCAST_MEMBERS * BROADCAST_MESSAGES / (max(finished) - started)
    finally:
        publisher.close()
        for ws in members:
            ws.close()


def micro_benchmarks(impl: str, quick: bool) -> dict[str, float]:
    with resolve_target(IMPLS[impl]) as target:
        echo_url = target.ws_url("/ws/autobahn")
        seconds = 1.0 if quick else ECHO_S
        results = {
            "echo_rt_per_s_1_client": round(echo_round_trips(echo_url, 1, seconds), 1),
            "echo_rt_per_s_50_clients": round(echo_round_trips(echo_url, 50, seconds), 1),
            "echo_16mib_s": round(big_echo_seconds(echo_url), 4),
            "broadcast_deliveries_per_s_500": round(broadcast_deliveries(target.ws_url("/ws/rooms")), 1),
        }
    print(f"  {impl}: {results}", file=sys.stderr, flush=True)
    return results


def vhil_load(target: str, rate: float, seconds: float, p95_ms: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-load-") as out:
        argv = [sys.executable, "-m", "hil", "load", "--target", target, "--scenario", "fanout", "--users",
                str(BROADCAST_MEMBERS), "--publishers", "2", "--rate", str(rate), "--duration", str(seconds),
                "--p95-ms", str(p95_ms), "--out", out]
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=PHASE_TIMEOUT_S + seconds)
        if completed.returncode not in (0, 1):
            raise RuntimeError(f"vhil load failed: {completed.stderr.strip().splitlines()[-1:]}")
        summary = json.loads((Path(out) / "summary.json").read_text())
    failed = [c["name"] for c in summary["verdict"]["checks"] if not c["ok"]]
    print(f"  vhil load {target} rate {rate}: delivered/s {summary['delivered_per_s']} p95 "
          f"{summary['latency_ms']['p95']} ms, generator CPU {summary['generator_cpu_percent']}%, "
          f"{'verdict holds' if not failed else 'failed: ' + ', '.join(failed)}", file=sys.stderr, flush=True)
    return {"rate": rate, "ok": summary["verdict"]["ok"], "failed_checks": failed,
            "delivered_per_s": summary["delivered_per_s"], "delivery_ratio": summary["delivery_ratio"],
            "latency_ms": summary["latency_ms"], "generator_cpu_percent": summary["generator_cpu_percent"],
            "target_cpu_percent": summary["target_cpu_percent"],
            "published_over_scheduled": summary["published_over_scheduled"]}


def generator_capacity(quick: bool) -> dict[str, Any]:
    """Every rate against the websockets peer; the highest one whose verdict holds is the capacity. The steps past
    it are kept in the table too: they show how the generator degrades (latency and slip, or loss)."""
    steps = [vhil_load("host:websockets", rate, 4 if quick else LOAD_SECONDS, GENERATOR_P95_MS)
             for rate in (GENERATOR_RATES[:2] if quick else GENERATOR_RATES)]
    holding = [s for s in steps if s["ok"]]
    return {"steps": steps, "sustained_frames_per_s": max((s["delivered_per_s"] for s in holding), default=None),
            "p95_limit_ms": GENERATOR_P95_MS, "highest_rate_held": bool(steps) and steps[-1]["ok"]}


def record_round(results: dict[str, Any], rounds: dict[str, list[dict[str, float]]], impl: str,
                 measured: dict[str, float]) -> None:
    """Keep every round; the table uses the median of each measure and shows the range."""
    rounds[impl].append(measured)
    results["micro_rounds"] = rounds
    results["micro"][impl] = {key: round(statistics.median(r[key] for r in rounds[impl]), 4) for key in measured}
    results["micro_range"] = {name: {key: [min(r[key] for r in runs), max(r[key] for r in runs)] for key in measured}
                              for name, runs in rounds.items() if runs}


def ratio(reference: float | None, websockets: float | None) -> float | None:
    return round(reference / websockets, 3) if reference and websockets else None


def markdown(results: dict[str, Any]) -> str:
    micro, fanout = results["micro"], results["fanout_500"]
    rows = [
        ("echo round trips/s, 1 client", "echo_rt_per_s_1_client", "higher is better"),
        ("echo round trips/s, 50 clients", "echo_rt_per_s_50_clients", "higher is better"),
        ("16 MiB echo, s", "echo_16mib_s", "lower is better"),
        ("broadcast deliveries/s, 500 members", "broadcast_deliveries_per_s_500", "higher is better"),
    ]
    spread = results["micro_range"]
    lines = [f"Run {results['when']} on {results['machine']} ({results['note']}). Micro-benchmarks: median of "
             f"{len(results['micro_rounds']['reference'])} alternating rounds, range in brackets.", "",
             "| measure | reference | websockets | reference/websockets | |", "|---|---:|---:|---:|---|"]
    for label, key, better in rows:
        ref, peer = micro["reference"][key], micro["websockets"][key]
        lines.append(f"| {label} | {ref} [{spread['reference'][key][0]}-{spread['reference'][key][1]}] | "
                     f"{peer} [{spread['websockets'][key][0]}-{spread['websockets'][key][1]}] | {ratio(ref, peer)} | {better} |")
    for label, key, better in (("fanout 500 subscribers: delivered/s", "delivered_per_s", "higher is better"),):
        ref, peer = fanout["reference"][key], fanout["websockets"][key]
        lines.append(f"| {label} (vhil load, {FANOUT_RATE} broadcasts/s) | {ref} | {peer} | {ratio(ref, peer)} | {better} |")
    ref, peer = fanout["reference"]["latency_ms"]["p95"], fanout["websockets"]["latency_ms"]["p95"]
    lines.append(f"| fanout 500 subscribers: p95 latency, ms | {ref} | {peer} | {ratio(ref, peer)} | lower is better |")
    capacity = results["generator"]
    bound = "at least " if capacity["highest_rate_held"] else ""  # the top rate tried still held: a lower bound
    lines += ["", f"One generator process (locust + loadtest's fast WebSocket user) sustained {bound}"
              f"**{capacity['sustained_frames_per_s']} received frames/s** against the websockets peer "
              f"(fanout to 500 subscribers, exact delivery, p95 <= {capacity['p95_limit_ms']:g} ms):", "",
              "| broadcasts/s | frames/s delivered | delivery | p95 ms | generator CPU % | target CPU % | verdict |",
              "|---:|---:|---:|---:|---:|---:|---|"]
    for step in capacity["steps"]:
        lines.append(f"| {step['rate']} | {step['delivered_per_s']} | {step['delivery_ratio']} | {step['latency_ms']['p95']} | "
                     f"{step['generator_cpu_percent']} | {step['target_cpu_percent']} | "
                     f"{'holds' if step['ok'] else 'fails: ' + ', '.join(step['failed_checks'])} |")
    fan = [f"fanout verdicts: reference {'holds' if fanout['reference']['ok'] else 'fails ' + str(fanout['reference']['failed_checks'])}, "
           f"websockets {'holds' if fanout['websockets']['ok'] else 'fails ' + str(fanout['websockets']['failed_checks'])}."]
    return "\n".join(lines + [""] + fan) + "\n"


def update_readme(table: str) -> None:
    readme = HERE / "README.md"
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: bench markers {README_START} / {README_END} missing")
    atomic_write_text(readme, text[:start + len(README_START)] + "\n" + table + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter phases and fewer generator steps (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3, help="micro-benchmark rounds per implementation, alternating (default 3)")
    parser.add_argument("--out", type=Path, default=HERE / "latest.json")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the numbers in benchmarks/README.md")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
                                          f"load average {os.getloadavg()[0]:.2f} at the start",
                               "note": "quick run" if args.quick else "full run", "micro": {}, "fanout_500": {}}
    phases: list[tuple[str, Callable[[], None]]] = []
    rounds: dict[str, list[dict[str, float]]] = {impl: [] for impl in IMPLS}
    for number in range(args.rounds):
        # alternate the order each round, so a change in the machine's background load does not favour one side
        for impl in list(IMPLS)[:: 1 if number % 2 == 0 else -1]:
            phases.append((f"micro {impl} round {number + 1}/{args.rounds}",
                           lambda impl=impl: record_round(results, rounds, impl, micro_benchmarks(impl, args.quick))))
    phases.append(("generator capacity", lambda: results.__setitem__("generator", generator_capacity(args.quick))))
    for impl, target in IMPLS.items():
        phases.append((f"fanout {impl}", lambda impl=impl, target=target: results["fanout_500"].__setitem__(
            impl, vhil_load(target, FANOUT_RATE, 4 if args.quick else LOAD_SECONDS, 1000.0))))
    for name, phase in phases:
        print(f"bench: {name}", file=sys.stderr, flush=True)
        phase()
        atomic_write_json(args.out, results)  # partial results survive an interrupted run
    table = markdown(results)
    print(table)
    if not args.no_readme:
        update_readme(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
