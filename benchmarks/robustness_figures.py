"""Robustness figures for the reference framework (issue 13): one figure per row of the issue's list, measured
against `vhil serve` (the DUT app on the reference framework) in a child process, on loopback only.

    python benchmarks/robustness_figures.py [--quick] [--out benchmarks/robustness.json]

Every phase is bounded in count and in time (PHASE_TIMEOUT_S); a phase that fails is reported as such and the
others still run. Prints each phase's figures as it goes, writes all of them to --out as JSON at the end.
With PYTHONPATH pointing at an older checkout's framework/, the same script measures that framework (the
"before" column).
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Awaitable, Callable

import psutil
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the sans-I/O driver and frame builder the tests use

from sansio import parse_http_stream  # noqa: E402
from wsframes import HANDSHAKE, client_frame  # noqa: E402

from hil.artifacts import atomic_write_json  # noqa: E402
from hil.probe import READY_LINE_PATTERN  # noqa: E402
from hil.process import ManagedProcess  # noqa: E402
from loop_turns import WRITE_EVERY_S as LOOP_TURNS_WRITE_EVERY_S  # noqa: E402
from viperhttp.protocol import WebSocketProtocol  # noqa: E402
from viperhttp.server import DEFAULT_SEND_BUFFER_LIMIT  # noqa: E402

PHASE_TIMEOUT_S = 180.0
HEAD_TIMEOUT_S = 10  # viperhttp.http.Limits' default, what the drip phase waits for
SLOWHTTPTEST_RATE_PER_S = 50  # connections a second that slowhttptest opens by default (its -r)
DRIP_IDLE_BASELINE_S = 3  # /health probed before the drip clients start: this machine's noise, same run
# A browser-like opening handshake (Chromium's header set), about as long as the 1,157 bytes.
BROWSER_HANDSHAKE = (
    "GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1:8765\r\nConnection: Upgrade\r\nPragma: no-cache\r\n"
    "Cache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36\r\nUpgrade: websocket\r\nOrigin: http://127.0.0.1:8765\r\n"
    "Sec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7,fr;q=0.6\r\n"
    "Cookie: session=" + "s" * 420 + "; theme=dark; consent=yes; tracking=" + "t" * 200 + "\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
).encode()


# -- the server under test -------------------------------------------------------------------------------
class Server:
    """`python -m vhil_serve --port 0` as a managed child process: its port, pid and output lines."""

    def __init__(self, loop_turns: Path | None = None) -> None:
        """With `loop_turns`, the server's loop turns are timed into that file (see loop_turns.py)."""
        self.loop_turns = loop_turns
        serve = [str(HERE / "loop_turns.py"), str(loop_turns)] if loop_turns else ["-m", "vhil_serve"]
        self.process = ManagedProcess([sys.executable, "-u", *serve, "--port", "0"], die_with_parent=True)
        match = self.process.wait_for_line(READY_LINE_PATTERN, 20)
        self.port = int(match.group(2))
        self.ps = psutil.Process(self.process.pid)

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def log_lines(self) -> list[str]:
        return [line for line in self.process.output().splitlines() if not line.startswith("listening on")]

    def stop(self) -> None:
        self.process.stop()


async def open_raw(port: int, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: a small window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length) if length else b""


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    status, body = await read_response(reader)
    return status, body, (time.perf_counter() - started) * 1000


async def get_once(port: int, path: str) -> tuple[int, float]:
    """GET on a new connection (so a framework without working keep-alive can be measured too): (status, ms)."""
    started = time.perf_counter()
    reader, writer = await open_raw(port)
    writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    status, _ = await read_response(reader)
    writer.close()
    return status, (time.perf_counter() - started) * 1000


async def upgrade(port: int, path: str = "/ws/echo", rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await open_raw(port, rcvbuf)
    writer.write(HANDSHAKE.replace(b"/ws/echo", path.encode()))
    status, _ = await read_response(reader)
    if status != 101:
        raise RuntimeError(f"handshake answered {status}")
    return reader, writer


def reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class RssSampler:
    """The server's peak RSS, sampled every 50 ms while a phase runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.baseline = server.rss()
        self.peak = self.baseline
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.server.rss())
            await asyncio.sleep(0.05)

    def stop(self) -> dict[str, float]:
        self._task.cancel()
        self.peak = max(self.peak, self.server.rss())
        return {"rss_baseline_mb": round(self.baseline / 2**20, 1), "rss_peak_mb": round(self.peak / 2**20, 1),
                "rss_growth_mb": round((self.peak - self.baseline) / 2**20, 1)}


# -- the phases ----------------------------------------------------------------------------------------------
def random_request(rng: random.Random) -> bytes:
    """A request from a small grammar, mutated one time in four (a byte replaced, inserted or deleted)."""
    method = rng.choice(["GET", "POST", "PUT", "HEAD"])
    path = "/" + "".join(rng.choice("abcxyz019-._~/%?=&") for _ in range(rng.randint(0, 20)))
    fields = [("Host", "x")] if rng.random() < 0.9 else []
    for _ in range(rng.randint(0, 6)):
        name = "".join(rng.choice("abcdefghXYZ-_0") for _ in range(rng.randint(1, 12)))
        fields.append((name, "".join(chr(rng.randint(0x20, 0x7E)) for _ in range(rng.randint(0, 30)))))
    body = bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 40)))
    if body or rng.random() < 0.3:
        fields.insert(rng.randint(0, len(fields)), ("Content-Length", str(len(body))))
    data = bytearray(("%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % f for f in fields)
                      + "\r\n").encode() + body)
    if rng.random() < 0.25:
        where = rng.randrange(len(data))
        action = rng.choice("rid")
        byte = rng.choice(b"\r\n\x00: \t0123456789")
        if action == "r":
            data[where] = byte
        elif action == "i":
            data.insert(where, byte)
        else:
            del data[where]
    return bytes(data)


async def split_parsing(quick: bool) -> dict[str, Any]:
    """Requests parsed whole and split at a random point (sans-I/O, as the server feeds its parser); every
    split point of a browser-like handshake."""
    rng = random.Random(13)
    count = 20_000 if quick else 234_793
    differ = 0
    for _ in range(count):
        stream = random_request(rng) + random_request(rng)  # two on one connection: the keep-alive case
        cut = rng.randint(1, len(stream) - 1)
        if parse_http_stream([stream[:cut], stream[cut:]]) != parse_http_stream([stream]):
            differ += 1
        if count > 50_000 and _ % 20_000 == 0:
            await asyncio.sleep(0)
    whole = parse_http_stream([BROWSER_HANDSHAKE])
    points = len(BROWSER_HANDSHAKE) - 1
    handshake_differ = sum(parse_http_stream([BROWSER_HANDSHAKE[:c], BROWSER_HANDSHAKE[c:]]) != whole
                           for c in range(1, len(BROWSER_HANDSHAKE)))
    one_byte = parse_http_stream([BROWSER_HANDSHAKE[i:i + 1] for i in range(len(BROWSER_HANDSHAKE))]) == whole
    return {"requests": count, "requests_parsed_differently": differ, "handshake_split_points": points,
            "handshake_points_parsed_differently": handshake_differ, "handshake_one_byte_per_read_same": one_byte}


async def keep_alive(server: Server, quick: bool) -> dict[str, Any]:
    """Three sequential GETs on one connection (each sent after the previous answer), then a longer one; and
    requests.Session doing three GETs."""
    reader, writer = await open_raw(server.port)
    statuses: list[Any] = []
    times = []
    for path in ("/health", "/health", "/health", "/stats?" + "x" * 300):
        try:
            status, _, ms = await asyncio.wait_for(get(reader, writer, path), 5)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            statuses.append("no answer in 5 s" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__)
            break
        statuses.append(status)
        times.append(round(ms, 2))
    writer.close()
    session = requests.Session()
    session_statuses = []
    for _ in range(3):
        try:
            session_statuses.append(session.get(f"http://127.0.0.1:{server.port}/health", timeout=5).status_code)
        except requests.RequestException as exc:
            session_statuses.append(type(exc).__name__)
    session.close()
    return {"statuses": statuses, "ms": times, "max_ms_of_first_three": max(times[:3]) if len(times) >= 3 else None,
            "requests_session_three_gets": session_statuses}


async def until_idle(server: Server, limit_s: float) -> float:
    """Wait until the server process has used under 20 ms of CPU in 0.5 s (done with what it read), at most
    `limit_s`; returns the seconds waited."""
    started = time.monotonic()
    before = sum(server.ps.cpu_times()[:2])
    while time.monotonic() - started < limit_s:
        await asyncio.sleep(0.5)
        now = sum(server.ps.cpu_times()[:2])
        if now - before < 0.02:
            break
        before = now
    return time.monotonic() - started


async def ping_flood(server: Server, quick: bool) -> dict[str, Any]:
    """500,000 pings of 125 bytes whose pongs the client does not read (a 16 KiB receive window) until the
    server is done with what it read; then the client reads, to count the pongs. (Empty pings do not show
    anything: their 1 MB of pongs fits in the kernel's socket buffers.)"""
    count = 100_000 if quick else 500_000
    sampler = RssSampler(server)
    reader, writer = await upgrade(server.port, rcvbuf=16 * 1024)
    ping = client_frame(9, b"p" * 125, mask=b"\x01\x02\x03\x04")
    pong_size = 2 + 125
    sent = 0
    blocked = False
    started = time.monotonic()
    try:
        while sent < count:
            writer.write(ping * 100)
            sent += 100
            try:
                await asyncio.wait_for(writer.drain(), 5)
            except asyncio.TimeoutError:
                blocked = True  # the server stopped reading: our pings wait in the kernel
                break
        idle_after = await until_idle(server, 120)
        figures = sampler.stop()
        received = 0
        while received < sent * pong_size:
            try:
                data = await asyncio.wait_for(reader.read(1 << 20), 10)
            except asyncio.TimeoutError:
                break
            if not data:
                break
            received += len(data)
        pongs = received // pong_size
    finally:
        reset(writer)
    limit = DEFAULT_SEND_BUFFER_LIMIT
    figures.update({"pings_written": sent, "writer_blocked": blocked, "server_busy_s": round(idle_after, 1),
                    "pongs_read_afterwards": pongs, "seconds": round(time.monotonic() - started, 1),
                    "documented_bound_mb": round(4 * limit / 2**20, 1),
                    "within_bound": figures["rss_growth_mb"] < 4 * limit / 2**20})
    return figures


async def fragment_flood(server: Server, quick: bool) -> dict[str, Any]:
    """Two million one-byte binary fragments of one message; and, in-process, the bytes a fragment costs."""
    count = 300_000 if quick else 2_000_000
    sampler = RssSampler(server)
    reader, writer = await upgrade(server.port)
    first = client_frame(2, b"x", fin=False, mask=b"abcd")
    more = client_frame(0, b"x", fin=False, mask=b"abcd")
    sent = 0
    closed_by_server = None
    try:
        writer.write(first)
        while sent < count:
            writer.write(more * 10_000)
            sent += 10_000
            try:
                await asyncio.wait_for(writer.drain(), 10)
            except (ConnectionError, asyncio.TimeoutError):
                break
        data = await asyncio.wait_for(reader.read(64), 10)
        if data[:1] == b"\x88":
            closed_by_server = int.from_bytes(data[2:4], "big")
    except (ConnectionError, asyncio.TimeoutError):
        pass
    finally:
        figures = sampler.stop()
        reset(writer)
    import viperhttp.protocol

    max_fragments = getattr(viperhttp.protocol, "DEFAULT_MAX_FRAGMENTS", None)  # None: an older framework
    protocol = WebSocketProtocol(1 << 24, max_fragments=1 << 20) if max_fragments else WebSocketProtocol(1 << 24)

    stream = first + more * 99_999
    tracemalloc.start()
    protocol.receive_data(stream)
    held = tracemalloc.get_traced_memory()[0] - len(stream)
    tracemalloc.stop()
    figures.update({"fragments_written": sent, "close_code": closed_by_server, "max_fragments": max_fragments,
                    "bytes_per_fragment_in_process": round(held / 100_000, 1)})
    return figures


def probe_health(port: int, stop: Any, results: Any) -> None:
    """GET /health every 50 ms, each on a new connection, until `stop`; puts [(time.monotonic() at its start, ms)]
    on `results`. Runs in its own process, so the drip clients' work in this one does not add to its times."""
    probes: list[tuple[float, float]] = []
    while not stop.is_set():
        at = time.monotonic()
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while not data.endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        probes.append((at, (time.perf_counter() - started) * 1000))
        time.sleep(0.05)
    results.put(probes)


def window_figures(windows: dict[str, tuple[float, float]], probes: list[tuple[float, float]],
                   turns: list[list[float]]) -> dict[str, dict[str, Any]]:
    """Per window (name: (from, to) in time.monotonic()): the /health probes that started in it (median, p99,
    max, how many over 10 ms) and the server's loop turns in it (how many over 3 ms of CPU, the longest)."""
    figures: dict[str, dict[str, Any]] = {}
    for name, (start, end) in windows.items():
        times = sorted(ms for at, ms in probes if start <= at < end)
        cpu = [ms for at, ms in turns if start <= at < end]
        figures[name] = {"seconds": round(end - start, 2), "health_probes": len(times),
                         "server_turns_over_3ms_cpu": sum(1 for ms in cpu if ms > 3),
                         "server_longest_turn_cpu_ms": max(cpu, default=0)}
        if times:
            figures[name].update({"health_ms_median": round(statistics.median(times), 2),
                                  "health_ms_p99": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
                                  "health_ms_max": round(times[-1], 2),
                                  "health_probes_over_10ms": sum(1 for ms in times if ms > 10)})
    return figures


async def head_drip(server: Server, quick: bool, ramp_per_s: float = 0) -> dict[str, Any]:
    """500 clients each sending one header byte every 5 s, while another process times /health and the server
    times its loop turns (Server(loop_turns=...)). They all start at once (so their connections, their bytes
    and their deadlines arrive together), or `ramp_per_s` a second apart. Figures per window: idle (before the
    first client, the machine's own noise), connecting (all at once only), dripping, and expiring (from the
    first close to a second after the last: the 408s, the lingers, the closes)."""
    clients = 100 if quick else 500
    results: list[tuple[float, float, bytes]] = []  # (connected at, closed at, answer)

    async def drip(index: int) -> None:
        if ramp_per_s:
            await asyncio.sleep(index / ramp_per_s)
        reader, writer = await open_raw(server.port)
        started = time.monotonic()
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        answer = b""
        try:
            while time.monotonic() - started < HEAD_TIMEOUT_S + 20:
                try:
                    answer = await asyncio.wait_for(reader.read(4096), 5)
                    break
                except asyncio.TimeoutError:
                    writer.write(b"d")
        except ConnectionError:
            answer = b"<reset>"
        results.append((started, time.monotonic(), answer))
        writer.close()

    probe_results: Any = multiprocessing.get_context("spawn").Queue()
    stop = multiprocessing.get_context("spawn").Event()
    prober = multiprocessing.get_context("spawn").Process(target=probe_health, args=(server.port, stop, probe_results))
    prober.start()
    try:
        idle_from = time.monotonic() + 1  # the prober's interpreter starts meanwhile
        await asyncio.sleep(DRIP_IDLE_BASELINE_S + 1)
        first_connect = time.monotonic()
        await asyncio.gather(*(drip(index) for index in range(clients)))
        await asyncio.sleep(1)
    finally:
        stop.set()
        probes = await asyncio.to_thread(probe_results.get, True, 30)
        prober.join(10)
    await asyncio.sleep(2 * LOOP_TURNS_WRITE_EVERY_S)
    turns = json.loads(server.loop_turns.read_text()) if server.loop_turns else []
    all_connected = max(connected for connected, _, _ in results)
    first_close = min(closed for _, closed, _ in results)
    last_close = max(closed for _, closed, _ in results)
    windows = {"idle": (idle_from, first_connect)}
    if not ramp_per_s:
        windows["connecting"] = (first_connect, all_connected + 0.1)
    windows["dripping"] = (first_connect if ramp_per_s else all_connected + 0.1, first_close)
    windows["expiring"] = (first_close, last_close + 1)
    close_after = sorted(closed - connected for connected, closed, _ in results)
    return {"clients": clients, "started_per_s": ramp_per_s or "all at once",
            "closed": sum(1 for _, _, answer in results if answer),
            "answered_408": sum(1 for _, _, answer in results if answer.startswith(b"HTTP/1.1 408")),
            "close_s_min": round(close_after[0], 2), "close_s_max": round(close_after[-1], 2),
            "deadline_s": HEAD_TIMEOUT_S, "windows": window_figures(windows, probes, turns)}


async def sse_departed(server: Server, quick: bool) -> dict[str, Any]:
    """200 clients of /events?interval_ms=60000 (the DUT app's longest interval) read the first event and leave."""
    clients = 200

    async def leave_after_first_event() -> None:
        reader, writer = await open_raw(server.port)
        writer.write(b"GET /events?count=2&interval_ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"data: ")
        writer.close()

    await asyncio.gather(*(leave_after_first_event() for _ in range(clients)))
    await asyncio.sleep(1)
    connections = server.ps.net_connections(kind="tcp")
    return {"clients_left": clients, "close_wait_after_1s": sum(1 for c in connections if c.status == "CLOSE_WAIT"),
            "server_connections_after_1s": sum(1 for c in connections if c.status == "ESTABLISHED")}


async def dead_peer_log(server: Server, quick: bool) -> dict[str, Any]:
    """A /ws/rooms client sends 10,000 `stats` commands in one burst and resets its connection at once: the
    server answers the commands it has read into a connection that is gone. Its log lines are counted."""
    before = len(server.log_lines())
    messages = 10_000
    _, client = await upgrade(server.port, "/ws/rooms")
    client.write(client_frame(1, b"stats") * messages)
    await client.drain()
    reset(client)
    await until_idle(server, 30)
    lines = server.log_lines()[before:]
    return {"messages": messages, "log_lines": len(lines), "first_lines": lines[:2]}


async def stats_cost(server: Server, quick: bool) -> dict[str, Any]:
    """/stats with 2,000 open WebSocket connections; /health while four clients poll /stats."""
    count = 500 if quick else 2000
    held = []
    for _ in range(count):
        held.append(await upgrade(server.port))
    stats_ms = [(await get_once(server.port, "/stats"))[1] for _ in range(20)]
    stop = asyncio.Event()

    async def poll_stats() -> None:
        while not stop.is_set():
            await get_once(server.port, "/stats")

    pollers = [asyncio.create_task(poll_stats()) for _ in range(4)]
    health_ms = []
    until = time.monotonic() + 5
    while time.monotonic() < until:
        health_ms.append((await get_once(server.port, "/health"))[1])
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(*pollers)
    for _, w in held:
        w.close()
    return {"connections": count, "stats_ms_median": round(statistics.median(stats_ms), 2),
            "stats_ms_max": round(max(stats_ms), 2),
            "health_ms_median_with_4_stats_pollers": round(statistics.median(health_ms), 2)}


STRICTNESS = {
    "Content-Length: +5": b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    "Content-Length: 5_0": b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5_0\r\n\r\n" + b"h" * 50,
    "Content-Length: Arabic-Indic 5": "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: \u0665\r\n\r\nhello".encode(),
    "Content-Length 5 and 6": b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "header name with a tab": b"GET /health HTTP/1.1\r\nHost: x\r\nX\tA: 1\r\n\r\n",
    "header name with NUL": b"GET /health HTTP/1.1\r\nHost: x\r\nX\x00A: 1\r\n\r\n",
    "header name non-ASCII": "GET /health HTTP/1.1\r\nHost: x\r\nX-\u00e9: 1\r\n\r\n".encode(),
    "header value with NUL": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "header value with bare CR": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "header value with bare LF": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n",
    "HTTP/1.1 without Host": b"GET /health HTTP/1.1\r\n\r\n",
    "two Host headers": b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}


async def strictness(server: Server, quick: bool) -> dict[str, Any]:
    statuses = {}
    for name, request in STRICTNESS.items():
        reader, writer = await open_raw(server.port)
        writer.write(request)
        statuses[name] = (await read_response(reader))[0]
        writer.close()
    port = subprocess.run([sys.executable, "-m", "vhil_serve", "--port", "70000"], capture_output=True, text=True,
                          timeout=30)
    statuses["vhil serve --port 70000"] = "exit %d, %d stderr line(s): %s" % (
        port.returncode, len(port.stderr.strip().splitlines()), port.stderr.strip()[:80])
    return statuses


async def connection_cap(server: Server, quick: bool) -> dict[str, Any]:
    """Connections up to the default cap plus 20, each sending GET /health: how many are served, how many get 503."""
    from viperhttp.compat import default_max_connections  # here, so a run against an older framework gets the rest

    cap = default_max_connections()
    opened = []
    for _ in range(cap + 20):
        opened.append(await open_raw(server.port))
    for _, writer in opened:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    counts: dict[str, int] = {}
    for reader, _ in opened:
        try:
            status = str((await asyncio.wait_for(read_response(reader), 20))[0])
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            status = type(exc).__name__
        counts[status] = counts.get(status, 0) + 1
    for _, writer in opened:
        writer.close()
    return {"default_cap": cap, "opened": cap + 20, "answers": counts}


# A query made too long by schema-violating values is refused 414 (the request-line limit), as rightly as 400 or
# 422: schemathesis' default list of rejection statuses leaves 414 out.
SCHEMATHESIS_CONFIG = """[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429"]
"""


async def schemathesis_keep_alive(server: Server, quick: bool) -> dict[str, Any]:
    """schemathesis against /openapi.json with its default requests session (keep-alive). Not /events: a valid
    request there streams for count x interval_ms (16 hours at the declared bounds), which schemathesis can only
    report as a timeout; its bounds (422) are the contract suite's (conformance/contract/test_sse.py)."""
    with tempfile.TemporaryDirectory() as scratch:  # schemathesis keeps a cache in its working directory
        config = Path(scratch) / "schemathesis.toml"
        config.write_text(SCHEMATHESIS_CONFIG)
        argv = ["schemathesis", "--config-file", str(config), "run", f"http://127.0.0.1:{server.port}/openapi.json",
                "--checks", "all", "--max-examples", "20" if quick else "200", "--exclude-path", "/events"]
        result = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, cwd=scratch,
                                         timeout=PHASE_TIMEOUT_S)
    tail = [line for line in result.stdout.splitlines() if "generated" in line or "issues" in line.lower()]
    return {"exit_code": result.returncode, "summary": [line.strip(" =") for line in tail][-2:]}


NO_SERVER, SERVER, TIMED_SERVER = "none", "server", "timed server"  # TIMED: its loop turns timed (loop_turns.py)
PHASES: list[tuple[str, Callable[..., Awaitable[dict[str, Any]]], str]] = [
    # (name, phase, the fresh server it needs)
    ("split parsing", split_parsing, NO_SERVER),
    ("keep-alive", keep_alive, SERVER),
    ("ping flood, pongs unread", ping_flood, SERVER),
    ("fragment flood", fragment_flood, SERVER),
    ("header drip", head_drip, TIMED_SERVER),
    ("header drip, ramped", functools.partial(head_drip, ramp_per_s=SLOWHTTPTEST_RATE_PER_S), TIMED_SERVER),
    ("SSE clients that left", sse_departed, SERVER),
    ("dead peer log lines", dead_peer_log, SERVER),
    ("/stats cost", stats_cost, SERVER),
    ("parser strictness", strictness, SERVER),
    ("connection cap", connection_cap, SERVER),
    ("schemathesis with keep-alive", schemathesis_keep_alive, SERVER),
]


async def run(quick: bool, only: set[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vhil-robustness-") as scratch:
        for name, phase, server_kind in PHASES:
            if only and not any(word in name for word in only):
                continue
            print(f"-- {name} ...", flush=True)
            started = time.monotonic()
            loop_turns = Path(scratch) / f"loop-turns-{len(figures)}.json" if server_kind == TIMED_SERVER else None
            server = Server(loop_turns) if server_kind != NO_SERVER else None
            try:
                args = (server, quick) if server else (quick,)
                figures[name] = await asyncio.wait_for(phase(*args), PHASE_TIMEOUT_S)
            except Exception as exc:  # one phase failing must not cost the others' figures
                figures[name] = {"error": f"{type(exc).__name__}: {exc}"}
            finally:
                if server is not None:
                    server.stop()
            print(f"   {json.dumps(figures[name])}  ({time.monotonic() - started:.1f} s)", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    parser.add_argument("--only", nargs="*", default=[], help="run the phases whose names contain these words")
    parser.add_argument("--out", type=Path, default=HERE / "robustness.json")
    args = parser.parse_args()
    figures = asyncio.run(run(args.quick, set(args.only)))
    record = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "quick": args.quick,
              "cpus": psutil.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
              "python": sys.version.split()[0], "figures": figures}
    atomic_write_json(args.out, record)
    print(f"wrote {args.out}")
    return 1 if any("error" in f for f in figures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
