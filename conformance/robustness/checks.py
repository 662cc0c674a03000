"""The robustness checks: each one a named property of the target, judged from what a hostile client sees.

Every check is an async function of a Context returning a CheckResult whose message says what the target did.
Every loop is bounded in count and time; the runner bounds each whole check again (CHECK_TIMEOUT_S).
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Awaitable, Callable

import h11
from websockets.frames import Frame, Opcode

from conformance.contract.helpers import http_get
from conformance.robustness.wire import (Answer, Connection, Endpoint, HttpClient, WebSocketClient, opening_handshake,
                                         request_data)
from hil.targets import Target
from hil.process import ManagedProcess

# one answer, one handshake step, one probe; raise it for slow boards
STEP_TIMEOUT_S = float(os.environ.get("VHIL_ROBUSTNESS_STEP_TIMEOUT_S", "5"))
CHECK_TIMEOUT_S = 120.0  # a whole check, whatever the target does

SMALL_PIECES = (1, 2, 3, 5, 8, 13, 21, 34)
PIECE_GAP_S = 0.02  # long enough for each piece to be its own read on the target
BYTE_GAP_S = 0.005
BOUNDARY_GAP_S = 0.01
SPLIT_PATH = "/health?probe=split"
SPLIT_BODY = b"hello"  # a body on a GET: left unread, it would be read as the start of the next request
SPLIT_SECOND_PATH = "/health?probe=second"  # pipelined after it, so a misread first request changes the second answer
UNASKED_WAIT_S = 0.05  # after the second answer: long enough for a third (smuggled) one to show
ECHO_TEXT = "robustness"

KEEPALIVE_REQUESTS = 8
DRIPPERS = 3
DRIP_INTERVAL_S = 0.5
DRIP_WINDOW_UNDOCUMENTED_S = 12.0  # how long drippers run when the target documents no head deadline
DRIP_GRACE_S = 2.0  # beyond the documented deadline, for timer granularity
DRIP_WINDOW_MAX_S = 45.0
PROBE_INTERVAL_S = 0.5
IDLE_UNDOCUMENTED = 48  # idle connections opened when the target documents no cap
IDLE_MAX = 300
IDLE_SETTLE_S = 0.5  # after opening: time for a target to answer a connection over its cap
IDLE_PROBE_EVERY = 8  # a /health probe after every this many idle connections
RESETS = 8
RESET_PARTIAL_FRAME = 1000  # a masked text frame of this length, of which half is sent before the reset
RESET_SETTLE_S = 10.0
FLOOD_PINGS = 100_000
FLOOD_TIME_S = 8.0
FLOOD_BATCH = 500
FLOOD_SAMPLE_EVERY = 5_000  # pings between /stats samples
FLOOD_SETTLE_S = 2.0  # after the last ping: the target works through what the kernel buffered, memory sampled
FLOOD_RECEIVE_BUFFER = 4096  # the flooding client's receive window: its unread pongs back up on the target
PING_PAYLOAD = b"p" * 125  # the largest control frame payload
FLOOD_BOUND_SLACK = 1024 * 1024  # allowance for the runtime's own buffers and collector timing
# Without a documented send-buffer limit, bounded means the growth stopped with the flood: over the second half of
# the pings it may add at most this fraction of what the first half took (a target that keeps every unread pong
# roughly doubles it).
FLOOD_GROWTH_RATIO = 1.25
SCHEMA_EXAMPLES = 10
SCHEMA_TIME_S = 60  # the whole schemathesis run; the examples bound it long before on a healthy target
SCHEMA_REQUEST_TIMEOUT_S = 3.0

# What a target may document about itself in /health; where it does not, the checks that depend on it say so.
HEAD_DEADLINE_KEY = "request_head_timeout_s"
CONNECTION_CAP_KEY = "max_connections"
SEND_BUFFER_KEY = "send_buffer_limit"


@dataclass(frozen=True)
class Limits:
    head_deadline_s: float | None = None
    max_connections: int | None = None
    send_buffer_limit: int | None = None

    @classmethod
    def from_health(cls, health: dict[str, Any] | None) -> Limits:
        health = health or {}

        def number(key: str) -> float | None:
            value = health.get(key)
            return value if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None

        cap, buffer = number(CONNECTION_CAP_KEY), number(SEND_BUFFER_KEY)
        return cls(number(HEAD_DEADLINE_KEY), int(cap) if cap else None, int(buffer) if buffer else None)


@dataclass
class Context:
    target: Target
    endpoint: Endpoint
    limits: Limits
    out_dir: Path
    step_s: float = STEP_TIMEOUT_S


@dataclass
class CheckResult:
    name: str  # section.name, e.g. split.http-bytewise
    prop: str  # the property, in words
    passed: bool
    message: str  # what the target did
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


Outcome = tuple[bool, str, dict[str, Any]]


@dataclass(frozen=True)
class Check:
    name: str
    prop: str
    run: Callable[[Context], Awaitable[Outcome]]
    figures: tuple[str, ...] = ()  # reported for every run, None where the target did not give one


# ---- probes through the project's HTTP helper ------------------------------------------------------------------
async def probe(ctx: Context, path: str = "/health") -> Answer:
    """A GET on its own connection, in a thread so the checks' own connections keep moving meanwhile."""
    started = time.monotonic()
    try:
        status, headers, body = await asyncio.to_thread(http_get, ctx.target, path, ctx.step_s)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                      seconds=time.monotonic() - started)
    return Answer(status, headers, body, seconds=time.monotonic() - started)


async def served_again(ctx: Context) -> None:
    """Wait (bounded) until /health is answered 200, so connections a check just closed are not still counted
    against the target's cap when the next check starts."""
    deadline = time.monotonic() + ctx.step_s
    served = 0
    while served < 2 and time.monotonic() < deadline:  # twice in a row: one free slot is not all of them
        served = served + 1 if (await probe(ctx)).status == 200 else 0
        await asyncio.sleep(0.1)


async def stats(ctx: Context) -> dict[str, Any] | str:
    """/stats as a dict, or why it could not be read. A 503 (the target at its connection cap, as connections
    a check just closed may still hold it) is retried, as its Retry-After asks, for up to one step."""
    deadline = time.monotonic() + ctx.step_s
    answer = await probe(ctx, "/stats")
    while answer.status == 503 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        answer = await probe(ctx, "/stats")
    if answer.status != 200:
        return f"/stats answered {answer.describe()}"
    try:
        document = json.loads(answer.body)
    except ValueError:
        return f"/stats is not JSON: {answer.body[:80]!r}"
    return document if isinstance(document, dict) else f"/stats is not a JSON object: {answer.body[:80]!r}"


# ---- split reads ------------------------------------------------------------------------------------------------
def _first_request(state: h11.Connection, host: str) -> bytes:
    return request_data(state, "GET", SPLIT_PATH, [("Host", host), ("X-A", "ab"), ("X-Pad", "p")], SPLIT_BODY)


def _second_request(state: h11.Connection, host: str) -> bytes:
    return request_data(state, "GET", SPLIT_SECOND_PATH, [("Host", host), ("Connection", "close")])


def _split_requests_length(ctx: Context) -> int:
    return len(_first_request(h11.Connection(our_role=h11.CLIENT), ctx.endpoint.host)
               + _second_request(h11.Connection(our_role=h11.CLIENT), ctx.endpoint.host))


async def _http_split_outcome(ctx: Context, sizes: tuple[int, ...] | None, gap_s: float) -> str:
    """Two pipelined requests (the first with a body) sent as `sizes` pieces: both answers, and anything more."""
    connection = await Connection.open(ctx.endpoint, ctx.step_s)
    try:
        client = HttpClient(connection)
        data = _first_request(client.h11, ctx.endpoint.host) + _second_request(h11.Connection(our_role=h11.CLIENT),
                                                                               ctx.endpoint.host)
        if sizes:
            await connection.send_in_pieces(data, sizes, gap_s, ctx.step_s)
        else:
            await connection.send(data, ctx.step_s)
        first = await client.read_answer(ctx.step_s)
        if first.status is None or not client.reusable:
            return f"first {first.describe()}, no second answer"
        client.h11.start_next_cycle()
        _second_request(client.h11, ctx.endpoint.host)  # already on the wire: this moves h11 on to read its answer
        second = await client.read_answer(ctx.step_s)
        outcome = f"first {first.status}, second {second.describe()}"
        extra = await client.unasked(UNASKED_WAIT_S)
        return outcome + (f", then unasked {extra[:60]!r}" if extra else "")
    finally:
        connection.close()


Splitter = Callable[[Context, "tuple[int, ...] | None", float], Awaitable[str]]


async def _every_boundary(ctx: Context, outcome: Splitter, length: int, whole: str) -> tuple[int, str] | None:
    """The first split point at which two reads give another outcome than one: (point, outcome), else None."""
    for point in range(1, length):
        split = await outcome(ctx, (point, length), BOUNDARY_GAP_S)
        if split != whole:
            return point, split
    return None


def _split_check(outcome: Splitter, length: Callable[[Context], int], what: str, sizes: tuple[int, ...] | None,
                 gap_s: float, how: str) -> Callable[[Context], Awaitable[Outcome]]:
    """Compare the outcome of `what` sent in one write with it sent as `sizes` pieces (None: two pieces, at every
    split point in turn)."""
    async def check(ctx: Context) -> Outcome:
        whole = await outcome(ctx, None, 0.0)
        if not whole.startswith(("first 200, second 200 ", "101, then TEXT")):
            return False, f"{what} in one piece: {whole}", {}
        if sizes is None:
            total = length(ctx)
            found = await _every_boundary(ctx, outcome, total, whole)
            if found:
                return False, f"{what} split after byte {found[0]} of {total}: {found[1]}; in one piece: {whole}", {}
            return True, f"same outcome at all {total - 1} split points as in one piece: {whole}", {}
        split = await outcome(ctx, sizes, gap_s)
        if split != whole:
            return False, f"{what} sent {how}: {split}; in one piece: {whole}", {}
        return True, f"same outcome {how} as in one piece: {whole}", {}
    return check


async def _handshake_outcome(ctx: Context, sizes: tuple[int, ...] | None, gap_s: float) -> str:
    connection = await Connection.open(ctx.endpoint, ctx.step_s)
    try:
        client = WebSocketClient(connection, ctx.endpoint.ws_url("/ws/echo"))
        if sizes:
            await connection.send_in_pieces(client.handshake_bytes, sizes, gap_s, ctx.step_s)
        else:
            await connection.send(client.handshake_bytes, ctx.step_s)
        problem = await client.read_handshake(ctx.step_s)
        if problem:
            return problem
        await client.send_frames([Frame(Opcode.TEXT, ECHO_TEXT.encode())], ctx.step_s)
        frame = await client.receive_frame(ctx.step_s)
        if isinstance(frame, str):
            return f"101, then {frame} after sending {ECHO_TEXT!r}"
        return f"101, then {frame.opcode.name} {bytes(frame.data[:60])!r}"
    finally:
        connection.close()


def _handshake_length(ctx: Context) -> int:
    return len(opening_handshake(ctx.endpoint.ws_url("/ws/echo"))[1])


# ---- keep-alive -------------------------------------------------------------------------------------------------
def _keepalive_requests(host: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Different paths and sizes, so a leftover or misplaced byte from one request changes the next."""
    plain = [("Host", host)]
    return [
        ("/health", plain),
        ("/stats", plain + [("Accept", "application/json")]),
        ("/health?pad=" + "x" * 300, plain + [("X-Long", "y" * 500)]),
        ("/openapi.json", plain),
    ]


async def check_keepalive(ctx: Context) -> Outcome:
    requests = _keepalive_requests(ctx.endpoint.host)
    connection = await Connection.open(ctx.endpoint, ctx.step_s)
    served, slowest = 0, 0.0
    try:
        client = HttpClient(connection)
        for number in range(1, KEEPALIVE_REQUESTS + 1):
            path, headers = requests[(number - 1) % len(requests)]
            answer = await client.exchange("GET", path, headers, ctx.step_s)
            figures = {"keepalive_requests_served": served, "keepalive_slowest_ms": round(slowest * 1000, 1)}
            if answer.status != 200:
                return False, (f"request {number} of {KEEPALIVE_REQUESTS} on one connection (GET {path[:30]}) got "
                               f"{answer.describe()} after {served} answered"), figures
            served += 1
            slowest = max(slowest, answer.seconds)
            if number < KEEPALIVE_REQUESTS and not client.reusable:
                figures["keepalive_requests_served"] = served
                return False, f"the target ended the connection (Connection: close) after {served} requests", figures
    finally:
        connection.close()
    return True, f"{served} sequential requests answered 200 on one connection, slowest {slowest * 1000:.0f} ms", {
        "keepalive_requests_served": served, "keepalive_slowest_ms": round(slowest * 1000, 1)}


# ---- slow header drip -------------------------------------------------------------------------------------------
async def _drip(ctx: Context, window_s: float) -> tuple[float | None, bytes]:
    """One client sending its request head a byte every DRIP_INTERVAL_S; (seconds until the target closed, what it
    sent) or (None, b"") if it was still open when the window ended."""
    connection = await Connection.open(ctx.endpoint, ctx.step_s)
    started = time.monotonic()
    received = bytearray()
    try:
        await connection.send(f"GET /health HTTP/1.1\r\nHost: {ctx.endpoint.host}\r\nX-Drip: ".encode(), ctx.step_s)

        async def sender() -> None:
            while True:
                await asyncio.sleep(DRIP_INTERVAL_S)
                connection.writer.write(b"a")

        sending = asyncio.create_task(sender())
        try:
            while time.monotonic() - started < window_s:
                try:
                    data = await connection.read(window_s - (time.monotonic() - started))
                except asyncio.TimeoutError:
                    break
                if not data:
                    return time.monotonic() - started, bytes(received)
                received += data
        finally:
            sending.cancel()
        return None, bytes(received)
    finally:
        connection.close()


async def check_drip(ctx: Context) -> Outcome:
    deadline = ctx.limits.head_deadline_s
    window = min(DRIP_WINDOW_MAX_S, deadline + max(DRIP_GRACE_S, deadline / 2)) if deadline else DRIP_WINDOW_UNDOCUMENTED_S
    drips = asyncio.gather(*(_drip(ctx, window) for _ in range(DRIPPERS)))
    probes: list[Answer] = []
    drip_task = asyncio.ensure_future(drips)
    while not drip_task.done():
        probes.append(await probe(ctx))
        await asyncio.wait([drip_task], timeout=PROBE_INTERVAL_S)
    outcomes = drip_task.result()
    closed = [seconds for seconds, _ in outcomes if seconds is not None]
    answers = sorted({data.split(b"\r\n", 1)[0].decode("latin-1") or "nothing" for seconds, data in outcomes
                      if seconds is not None})
    close_s = max(closed) if len(closed) == len(outcomes) else None
    figures = {"drip_close_s": round(close_s, 2) if close_s is not None else None,
               "drip_probe_slowest_ms": round(max(p.seconds for p in probes) * 1000, 1) if probes else None}
    unserved = [p for p in probes if p.status != 200]
    drip_words = (f"{len(closed)} of {DRIPPERS} drip clients closed (slowest after {max(closed):.1f} s, sent "
                  f"{', '.join(answers)})" if closed else f"no drip client closed within {window:.1f} s")
    if unserved:
        return False, (f"/health while {DRIPPERS} clients dripped their headers: {len(unserved)} of {len(probes)} "
                       f"probes unanswered, first: {unserved[0].describe()}; {drip_words}"), figures
    if deadline is not None and close_s is None:
        return False, f"documented head deadline {deadline:g} s, but {drip_words}", figures
    documented = f"deadline {deadline:g} s" if deadline else f"no documented deadline ({HEAD_DEADLINE_KEY} in /health)"
    return True, f"{drip_words}; {documented}; {len(probes)} /health probes meanwhile all 200", figures


# ---- idle connections up to the cap -----------------------------------------------------------------------------
async def _watch(connection: Connection, seen: dict[str, Any]) -> None:
    """Record what an idle connection receives: an answer (a refusal), or a close without one."""
    try:
        data = await connection.read(CHECK_TIMEOUT_S)
    except asyncio.TimeoutError:
        return
    seen["data"] = data
    seen["closed"] = True


async def check_idle_cap(ctx: Context) -> Outcome:
    cap = ctx.limits.max_connections
    count = min(IDLE_MAX, cap + 2) if cap else IDLE_UNDOCUMENTED
    connections: list[Connection] = []
    seen: list[dict[str, Any]] = []  # per idle connection: closed, data (what it received), connect_error
    probes: list[tuple[int, Answer]] = []  # (idle connections opened before it, its answer)
    watchers = []
    try:
        for number in range(1, count + 1):
            if cap and number == cap:
                # the probe is then the cap-th connection: let the connection of the probe before it (closed by
                # its client a moment ago) be released first, or it is one too many for a reason not the target's
                await asyncio.sleep(IDLE_SETTLE_S)
            if number % IDLE_PROBE_EVERY == 0 or (cap and number == cap):
                probes.append((len(seen), await probe(ctx)))
            try:
                connection = await Connection.open(ctx.endpoint, ctx.step_s)
            except (OSError, asyncio.TimeoutError) as exc:
                seen.append({"closed": True, "data": b"", "connect_error": str(exc) or type(exc).__name__})
                continue
            connections.append(connection)
            seen.append({})
            watchers.append(asyncio.create_task(_watch(connection, seen[-1])))
        await asyncio.sleep(IDLE_SETTLE_S)
        probes.append((len(seen), await probe(ctx)))
        return judge_idle(cap, count, seen, probes)
    finally:
        for watcher in watchers:
            watcher.cancel()
        for connection in connections:
            connection.close()


def judge_idle(cap: int | None, count: int, seen: list[dict[str, Any]], probes: list[tuple[int, Answer]]) -> Outcome:
    """A refusal is an answer starting HTTP/1.1 503; a probe may be refused only once an idle connection opened
    before it was (the target was at its cap), else it must be served."""
    refused = [bool(s.get("closed")) and s.get("data", b"").startswith(b"HTTP/1.1 503") for s in seen]
    silent = [s for s, was_refused in zip(seen, refused) if s.get("closed") and not was_refused]
    held = sum(1 for s in seen if not s.get("closed"))
    first_refused = refused.index(True) if any(refused) else None
    figures = {"idle_connections_opened": count, "idle_connections_held": held,
               "idle_held_before_refusal": first_refused, "idle_refused_503": sum(refused)}
    summary = f"{held} of {count} idle connections held, {sum(refused)} refused with 503"
    if silent:
        example = silent[0].get("connect_error") or silent[0]["data"][:40] or "a close without an answer"
        return False, f"{len(silent)} of {count} idle connections dropped without a 503 (first: {example!r}); {summary}", figures
    for opened, answer in probes:
        at_cap = first_refused is not None and first_refused < opened
        if answer.status != 200 and not (at_cap and answer.status == 503):
            state = "at the cap" if at_cap else "none refused yet"
            return False, f"/health with {opened} idle connections open ({state}) got {answer.describe()}; {summary}", figures
    if cap is not None and (held > cap or (count > cap and first_refused is None)):
        return False, f"documented cap {cap}, but {summary}", figures
    documented = f"documented cap {cap}" if cap else f"no documented cap ({CONNECTION_CAP_KEY} in /health)"
    return True, f"{summary}; {len(probes)} /health probes served (or 503 at the cap); {documented}", figures


# ---- resets mid-frame -------------------------------------------------------------------------------------------
async def _connections(ctx: Context) -> int | str:
    document = await stats(ctx)
    if isinstance(document, str):
        return document
    value = document.get("connections")
    return value if isinstance(value, int) else f"/stats has no integer `connections`: {json.dumps(document)[:80]}"


async def _wait_connections(ctx: Context, wanted: int, timeout: float) -> tuple[int | str, float]:
    started = time.monotonic()
    while True:
        now = await _connections(ctx)
        if now == wanted or isinstance(now, str) or time.monotonic() - started > timeout:
            return now, time.monotonic() - started
        await asyncio.sleep(0.2)


async def check_reset_mid_frame(ctx: Context) -> Outcome:
    before = await _connections(ctx)
    if isinstance(before, str):
        return False, before, {}
    clients: list[WebSocketClient] = []
    try:
        for _ in range(RESETS):
            connection = await Connection.open(ctx.endpoint, ctx.step_s)
            client = WebSocketClient(connection, ctx.endpoint.ws_url("/ws/chat?room=robustness-reset"))
            clients.append(client)
            await connection.send(client.handshake_bytes, ctx.step_s)
            problem = await client.read_handshake(ctx.step_s)
            if problem:
                return False, f"/ws/chat handshake: {problem}", {}
        counted, _ = await _wait_connections(ctx, before + RESETS, ctx.step_s)
        if counted != before + RESETS:
            return False, f"/stats connections {counted} with {RESETS} /ws/chat clients open (expected {before + RESETS})", {}
        frame = Frame(Opcode.TEXT, b"r" * RESET_PARTIAL_FRAME).serialize(mask=True)
        for client in clients:
            await client.connection.send(frame[:len(frame) // 2], ctx.step_s)
        await asyncio.sleep(0.1)  # the halves reach the target's parser before the resets
        for client in clients:
            client.connection.reset()
    finally:
        for client in clients:
            client.connection.close()
    after, settle = await _wait_connections(ctx, before, RESET_SETTLE_S)
    figures = {"reset_settle_s": round(settle, 2) if after == before else None}
    if after != before:
        return False, f"{RESETS} clients reset mid-frame: /stats connections still {after} after {settle:.1f} s (was {before})", figures
    health = await probe(ctx)
    if health.status != 200:
        return False, f"after {RESETS} resets mid-frame /health got {health.describe()}", figures
    return True, f"{RESETS} clients reset mid-frame: /stats connections back to {before} in {settle:.1f} s, /health 200", figures


# ---- ping flood with unread pongs -------------------------------------------------------------------------------
def _mem_alloc(document: dict[str, Any] | str) -> int | None:
    value = document.get("mem_alloc") if isinstance(document, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Flood:
    """One client's unread pings, sent in halves, with the target's mem_alloc peak after each."""

    def __init__(self, ctx: Context, connection: Connection, before: int | None) -> None:
        self.ctx, self.connection, self.before = ctx, connection, before
        self.sent = 0
        self.stalled = False  # the target stopped reading or failed the connection: what a bounded target does
        self.peak = before
        self.batch = Frame(Opcode.PING, PING_PAYLOAD).serialize(mask=True) * FLOOD_BATCH

    async def sample(self) -> None:
        if self.before is not None:
            self.peak = max(self.peak or 0, _mem_alloc(await stats(self.ctx)) or 0)

    async def send(self, pings: int, seconds: float) -> None:
        started, goal = time.monotonic(), self.sent + pings
        while not self.stalled and self.sent < goal and time.monotonic() - started < seconds:
            self.connection.writer.write(self.batch)
            try:
                await asyncio.wait_for(self.connection.writer.drain(), max(0.05, seconds - (time.monotonic() - started)))
            except (asyncio.TimeoutError, ConnectionError, OSError):
                self.stalled = True
                break
            self.sent += FLOOD_BATCH
            if self.sent % FLOOD_SAMPLE_EVERY == 0:
                await self.sample()

    async def settle(self) -> int | None:
        """Sample while the target works through what the kernel buffered; the growth so far."""
        until = time.monotonic() + FLOOD_SETTLE_S
        while self.before is not None and time.monotonic() < until:
            await self.sample()
            await asyncio.sleep(0.25)
        return None if self.before is None or self.peak is None else self.peak - self.before


async def check_ping_flood(ctx: Context) -> Outcome:
    before = _mem_alloc(await stats(ctx))
    connection = await Connection.open(ctx.endpoint, ctx.step_s, receive_buffer=FLOOD_RECEIVE_BUFFER)
    flood = _Flood(ctx, connection, before)
    try:
        client = WebSocketClient(connection, ctx.endpoint.ws_url("/ws/echo"))
        await connection.send(client.handshake_bytes, ctx.step_s)
        problem = await client.read_handshake(ctx.step_s)
        if problem:
            return False, f"/ws/echo handshake: {problem}", {}
        await flood.send(FLOOD_PINGS // 2, FLOOD_TIME_S / 2)
        half_sent, half_growth = flood.sent, await flood.settle()
        await flood.send(FLOOD_PINGS // 2, FLOOD_TIME_S / 2)
        growth = await flood.settle()
    finally:
        connection.reset()
    health = await probe(ctx)
    how = (f"{flood.sent} pings ({flood.sent * (len(PING_PAYLOAD) + 2) // 1024} KiB of pongs) sent unread"
           f"{', then the target stopped reading' if flood.stalled else ''}")
    figures: dict[str, Any] = {"flood_pings_sent": flood.sent, "flood_peak_mem_alloc": flood.peak, "flood_mem_growth": growth}
    if health.status != 200:
        return False, f"{how}: /health then got {health.describe()}", figures
    if growth is None or half_growth is None:
        return True, f"{how}; /health 200; memory not reported by /stats (mem_alloc null): not judged", figures
    limit = ctx.limits.send_buffer_limit
    if limit:
        bound, basis = 4 * limit + FLOOD_BOUND_SLACK, f"4 x send_buffer_limit {limit} + 1 MiB"
    else:  # bounded means: it stopped growing with the flood
        bound = int(half_growth * FLOOD_GROWTH_RATIO) + FLOOD_BOUND_SLACK
        basis = (f"{FLOOD_GROWTH_RATIO:g} x the {half_growth // 1024} KiB after the first {half_sent} pings + 1 MiB; "
                 f"no {SEND_BUFFER_KEY} in /health")
    words = f"{how}: mem_alloc grew {growth // 1024} KiB (peak {flood.peak}), bound {bound // 1024} KiB ({basis})"
    if growth > bound:
        return False, words, figures
    return True, f"{words}; /health 200", figures


# ---- schemathesis -----------------------------------------------------------------------------------------------
SCHEMATHESIS_CHECKS = "not_a_server_error,response_schema_conformance"


def schemathesis_argv(openapi_url: str, junit: Path) -> list[str]:
    return [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis(prog_name='st')", "run",
            openapi_url, "--checks", SCHEMATHESIS_CHECKS, "--max-examples", str(SCHEMA_EXAMPLES), "--workers", "1",
            "--request-timeout", str(SCHEMA_REQUEST_TIMEOUT_S), "--no-shrink",
            "--max-failures", "3", "--seed", "1", "--report", "junit", "--report-junit-path", str(junit)]


def _junit_problems(junit: Path) -> tuple[int, list[str]]:
    """(operations, "GET /x: first line of each failure or error") from schemathesis' JUnit report."""
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    problems = []
    for case in cases:
        for element in [*case.findall("failure"), *case.findall("error")]:
            text = (element.get("message") or element.text or "").strip()
            problems.append(f"{case.get('name')}: {text.splitlines()[0] if text else element.tag}")
    return len(cases), problems


async def check_schemathesis(ctx: Context) -> Outcome:
    junit = (ctx.out_dir / "schemathesis-junit.xml").resolve()  # schemathesis runs in out_dir (its .hypothesis)
    junit.unlink(missing_ok=True)
    process = ManagedProcess(schemathesis_argv(ctx.target.http_url("/openapi.json"), junit),
                             log_path=ctx.out_dir / "schemathesis.log", cwd=str(ctx.out_dir))
    try:
        code = await asyncio.to_thread(process.proc.wait, SCHEMA_TIME_S)
    except subprocess.TimeoutExpired:
        return False, f"schemathesis did not finish within {SCHEMA_TIME_S} s (see schemathesis.log)", {}
    finally:
        process.stop()
    if not junit.is_file():
        tail = " | ".join(process.output().strip().splitlines()[-3:])
        return False, f"schemathesis wrote no report (exit {code}): {tail}", {}
    operations, problems = _junit_problems(junit)
    figures = {"schema_operations": operations, "schema_problems": len(problems)}
    if problems or code != 0:
        shown = "; ".join(problems[:3]) + (f"; ... {len(problems) - 3} more" if len(problems) > 3 else "")
        return False, f"schemathesis on /openapi.json ({operations} operations): {shown or f'exit {code}'}", figures
    return True, f"schemathesis: {operations} operations, no 5xx, every response matched the schema", figures


HTTP_SPLIT = f"GET {SPLIT_PATH} with a body, then GET {SPLIT_SECOND_PATH},"
HANDSHAKE_SPLIT = "the /ws/echo handshake and one echo"
CHECKS = (
    Check("split.http-pieces", "an HTTP request in small pieces gets the same answer as in one piece",
          _split_check(_http_split_outcome, _split_requests_length, HTTP_SPLIT, SMALL_PIECES, PIECE_GAP_S,
                       "in pieces of 1-34 bytes")),
    Check("split.http-bytewise", "an HTTP request byte by byte gets the same answer as in one piece",
          _split_check(_http_split_outcome, _split_requests_length, HTTP_SPLIT, (1,), BYTE_GAP_S, "byte by byte")),
    Check("split.http-every-boundary", "an HTTP request in two reads, split at any byte, gets the same answer",
          _split_check(_http_split_outcome, _split_requests_length, HTTP_SPLIT, None, BOUNDARY_GAP_S, "")),
    Check("split.handshake-pieces", "a WebSocket handshake in small pieces gets the same outcome as in one piece",
          _split_check(_handshake_outcome, _handshake_length, HANDSHAKE_SPLIT, SMALL_PIECES, PIECE_GAP_S,
                       "in pieces of 1-34 bytes")),
    Check("split.handshake-bytewise", "a WebSocket handshake byte by byte gets the same outcome as in one piece",
          _split_check(_handshake_outcome, _handshake_length, HANDSHAKE_SPLIT, (1,), BYTE_GAP_S, "byte by byte")),
    Check("split.handshake-every-boundary", "a WebSocket handshake in two reads, split at any byte, gets the same outcome",
          _split_check(_handshake_outcome, _handshake_length, HANDSHAKE_SPLIT, None, BOUNDARY_GAP_S, "")),
    Check("keepalive.sequential", f"{KEEPALIVE_REQUESTS} sequential requests on one keep-alive connection are all answered",
          check_keepalive, ("keepalive_requests_served", "keepalive_slowest_ms")),
    Check("drip.header", "a client dripping its request head is closed within the documented deadline, "
          "and others are served meanwhile", check_drip, ("drip_close_s", "drip_probe_slowest_ms")),
    Check("idle.cap", "idle connections up to the documented cap leave others served; refusal is 503, not silence",
          check_idle_cap, ("idle_connections_opened", "idle_connections_held", "idle_held_before_refusal",
                           "idle_refused_503")),
    Check("reset.mid-frame", "clients reset mid-frame leave the target serving and /stats connections back where they were",
          check_reset_mid_frame, ("reset_settle_s",)),
    Check("ping.flood", "a ping flood whose pongs are never read keeps the target's memory bounded", check_ping_flood,
          ("flood_pings_sent", "flood_peak_mem_alloc", "flood_mem_growth")),
    Check("schema.openapi", "schemathesis on /openapi.json: no 5xx, responses match the schema", check_schemathesis,
          ("schema_operations", "schema_problems")),
)
