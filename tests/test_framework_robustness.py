"""What hostile or departed clients get from the reference framework, over real sockets: the request-head
deadline (408), the connection cap (503), lingering close, unread pongs, fragment bounds, streaming to a
client that left, writes to a reset peer, and the cheap /stats memory figure."""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Any, Iterator

import pytest

import viperhttp
from conftest import serve_in_thread
from sansio import run_websocket_stream
from test_framework_split import read_response
from viperhttp.http import Limits
from viperhttp.protocol import WebSocketProtocol
from vhil_serve.cli import load_dut_module
from wsframes import HANDSHAKE, client_frame

HEAD_TIMEOUT_S = 0.6


@pytest.fixture
def hostile() -> Iterator[tuple[int, dict[str, Any]]]:
    """An app with short head and body deadlines, a cap of 3 connections and a 16 KiB send buffer."""
    app = viperhttp.ViperHTTP(limits=Limits(head_timeout_s=HEAD_TIMEOUT_S, body_timeout_s=HEAD_TIMEOUT_S),
                              max_connections=3,
                              send_buffer_limit=16 * 1024)
    seen: dict[str, Any] = {"log": [], "stream_cancelled": threading.Event()}
    app.log = seen["log"].append

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    class Hourly:
        """An event stream with an hour between events (the DUT's /events?interval_ms=3600000)."""

        def __init__(self):
            self.sent = False

        def __aiter__(self):
            return self

        async def __anext__(self):
            if self.sent:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    seen["stream_cancelled"].set()
                    raise
            self.sent = True
            return {"data": "tick"}

    @app.get("/events")
    async def events():
        return viperhttp.StreamingResponse(Hourly(), media_type="text/event-stream")

    @app.get("/short")
    async def short():
        return viperhttp.StreamingResponse(iter([b"ab", b"cd"]), media_type="text/plain")

    @app.websocket("/ws/echo")
    async def ws_echo(ws):
        await ws.accept()
        seen["transport"] = ws._transport
        while True:
            message = await ws.receive()
            if message["type"] == "close":
                break
            if message["text"] == "flood the reset peer":
                await asyncio.sleep(0.5)  # the client resets the connection meanwhile
                frame = [b"\x81\x05hello"]
                seen["queued"] = sum(ws.send_frame_nowait(frame) for _ in range(10000))
                await ws.send_text("and one awaited send")

    with serve_in_thread(app) as port:
        yield port, seen


def connect(port: int, timeout: float = 5) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, limit_s: float = 5) -> bytes:
    data = b""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("still open after %s s: %r" % (limit_s, data[:200]))


# -- the request-head deadline ------------------------------------------------------------------------------
def drip_until_answered(port: int, start: bytes) -> tuple[bytes, float]:
    """Send `start`, then one more byte every 100 ms (never idle, never done) until the server answers:
    the answer and the seconds it took."""
    with connect(port) as sock:
        sock.sendall(start)
        started = time.monotonic()
        sock.settimeout(0.1)
        answer = b""
        while not answer and time.monotonic() - started < 5:
            sock.sendall(b"x")
            try:
                answer = sock.recv(65536)
            except socket.timeout:
                pass
        return answer, time.monotonic() - started


@pytest.mark.parametrize("start", [b"GET /health HTTP/1.1\r\nHo", HANDSHAKE[:60]], ids=["request", "handshake"])
def test_a_client_dripping_its_head_gets_408_at_the_deadline(hostile: Any, start: bytes) -> None:
    answer, elapsed = drip_until_answered(hostile[0], start)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert HEAD_TIMEOUT_S - 0.1 < elapsed < HEAD_TIMEOUT_S + 1.5, elapsed


def test_a_client_dripping_its_body_gets_408_at_the_deadline(hostile: Any) -> None:
    answer, elapsed = drip_until_answered(hostile[0], b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert b"request body not complete" in answer
    assert HEAD_TIMEOUT_S - 0.1 < elapsed < HEAD_TIMEOUT_S + 1.5, elapsed


def test_connections_accepted_together_reach_their_deadlines_milliseconds_apart_and_never_late(monkeypatch: Any) -> None:
    """Clients that connect together would reach their deadlines together; each connection's deadlines are
    shortened by its own step of DEADLINE_SPREAD / DEADLINE_SLOTS, so with the 10 s head deadline they fall
    2 ms apart, and none later than configured."""
    from viperhttp import server

    scales: list[float] = []
    read_request = server.Server._read_request

    async def recording(self: Any, reader: Any, buf: Any, peer: Any, deadline_scale: float) -> Any:
        scales.append(deadline_scale)
        return await read_request(self, reader, buf, peer, deadline_scale)

    monkeypatch.setattr(server.Server, "_read_request", recording)
    app = viperhttp.ViperHTTP()
    connections = 100

    async def scenario() -> None:
        srv = server.Server(app)
        port = await srv.start("127.0.0.1", 0)
        streams = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(connections)))
        for _, writer in streams:
            writer.write(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await asyncio.gather(*(reader.read() for reader, _ in streams))
        for _, writer in streams:
            writer.close()
        await srv.close()

    asyncio.run(scenario())
    head_deadlines_ms = sorted(app.limits.head_timeout_s * 1000 * scale for scale in scales)
    assert len(head_deadlines_ms) >= connections
    assert max(head_deadlines_ms) == app.limits.head_timeout_s * 1000
    assert min(head_deadlines_ms) >= app.limits.head_timeout_s * 1000 * (1 - server.DEADLINE_SPREAD)
    gaps = [b - a for a, b in zip(head_deadlines_ms, head_deadlines_ms[1:])]
    assert min(gaps) >= 1.99, gaps


def test_a_complete_head_is_not_held_to_the_deadline(hostile: Any) -> None:
    port, _ = hostile
    with connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        time.sleep(HEAD_TIMEOUT_S + 0.3)  # idle between requests: the keep-alive timeout applies, not 408
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200


# -- the connection cap -------------------------------------------------------------------------------------
def test_connections_over_the_cap_get_503_and_the_others_are_served(hostile: Any) -> None:
    port, _ = hostile
    held = [connect(port) for _ in range(3)]
    try:
        for sock in held:  # a request on each makes sure the server has counted it
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock)[0] == 200
        with connect(port) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, body = read_response(extra)
            assert status == 503 and json.loads(body) == {"detail": "too many connections"}
        held.pop().close()
        time.sleep(0.2)
        with connect(port) as again:
            again.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(again)[0] == 200
    finally:
        for sock in held:
            sock.close()


def test_an_error_reaches_a_client_that_keeps_sending(hostile: Any) -> None:
    """The 413 is answered before the body; closing at once would reset the connection under the body still
    arriving and destroy the 413 on its way. The server ends its side and discards what follows instead."""
    port, _ = hostile
    with connect(port) as sock:
        sock.sendall(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        try:
            sock.sendall(b"b" * 2_000_000)
        except (BrokenPipeError, ConnectionResetError):
            pytest.fail("the server reset the connection instead of reading what the client still sent")
        response = read_until_closed(sock)
        assert response.startswith(b"HTTP/1.1 413 "), response[:100]


# -- unread pongs -------------------------------------------------------------------------------------------
def test_pings_whose_pongs_are_not_read_pause_reading_within_the_buffer_bound(hostile: Any) -> None:
    port, seen = hostile
    limit = 16 * 1024
    payload = b"p" * 125  # the largest control frame: the kernel buffers fill after fewer pings
    ping = client_frame(9, payload, mask=b"\x01\x02\x03\x04")
    pong = b"\x8a\x7d" + payload
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # before connecting: a small window
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    with sock:
        sock.sendall(HANDSHAKE)
        assert read_response(sock, upgrade=True)[0] == 101
        while "transport" not in seen:  # the handler runs on the server's thread
            time.sleep(0.01)
        sent = 0
        most_queued = 0
        sock.settimeout(1)
        try:
            while sent < 200_000:  # stop at the first second the server takes no more of our pings
                sock.sendall(ping * 100)
                sent += 100
                most_queued = max(most_queued, seen["transport"]._pending_bytes)
        except socket.timeout:
            pass
        assert sent < 200_000, "the server kept reading pings it could not answer"
        assert most_queued <= 2 * limit, most_queued
        # once the client reads, the server catches up and answers every ping it was sent
        sock.settimeout(10)
        data = bytearray()
        while len(data) < len(pong) * sent:
            chunk = sock.recv(1 << 20)
            assert chunk, "closed after %d of %d pongs" % (len(data) // len(pong), sent)
            data += chunk
        assert data == pong * sent


# -- fragments ----------------------------------------------------------------------------------------------
def test_a_message_in_more_fragments_than_the_bound_is_closed_1009() -> None:
    frames = [client_frame(2 if i == 0 else 0, b"x", fin=False, mask=b"abcd") for i in range(11)]
    _, _, code = run_websocket_stream([b"".join(frames)], max_fragments=10)
    assert code == 1009
    events, _, code = run_websocket_stream([b"".join(frames[:9]) + client_frame(0, b"x", mask=b"abcd")],
                                           max_fragments=10)
    assert events == [("bytes", b"x" * 10), ("close", 1006, "")] and code == 1006


@pytest.mark.parametrize("opcode", [1, 2], ids=["text", "binary"])
def test_a_fragment_costs_its_payload_and_not_much_more(opcode: int) -> None:
    count = 20000
    stream = b"".join(client_frame(opcode if i == 0 else 0, b"x", fin=False, mask=b"abcd") for i in range(count))
    protocol = WebSocketProtocol(1 << 20, max_fragments=count + 1)
    gc.collect()
    tracemalloc.start()
    try:
        protocol.receive_data(stream)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    held -= len(stream)  # the protocol's input buffer still holds the stream
    assert held < 8 * count, "%d bytes held for %d one-byte fragments" % (held, count)  # was about 133 each
    protocol.receive_data(client_frame(0, b"!", mask=b"abcd"))
    event = protocol.events_received()[0]
    assert event[1] == ("x" * count + "!" if opcode == 1 else b"x" * count + b"!")


# -- streaming to a client that left ------------------------------------------------------------------------
def test_an_event_stream_ends_as_soon_as_its_client_leaves(hostile: Any) -> None:
    port, seen = hostile
    with connect(port) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"data: tick" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert seen["stream_cancelled"].wait(2), "the stream still waits for its next event"


def test_a_request_pipelined_behind_a_stream_is_answered_after_it(hostile: Any) -> None:
    port, _ = hostile
    with connect(port) as sock:
        sock.sendall(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = read_until_closed(sock)
    assert b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n" in response and response.endswith(b'{"status": "ok"}')


def test_a_request_sent_after_a_stream_ends_is_answered_on_the_same_connection(hostile: Any) -> None:
    """The stream's reader of the client must be gone before the next request is read (asyncio allows one
    reader per stream)."""
    port, seen = hostile
    with connect(port) as sock:
        for _ in range(3):
            sock.sendall(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while not received.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                assert chunk, "closed after %r" % received
                received += chunk
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock) == (200, b'{"status": "ok"}')
    assert not [line for line in seen["log"] if "connection error" in line], seen["log"]


# -- a reset peer -------------------------------------------------------------------------------------------
def test_writes_to_a_reset_peer_log_at_most_one_line(hostile: Any, caplog: pytest.LogCaptureFixture) -> None:
    port, seen = hostile
    caplog.set_level(logging.DEBUG, logger="asyncio")
    sock = connect(port)
    sock.sendall(HANDSHAKE)
    assert read_response(sock, upgrade=True)[0] == 101
    sock.sendall(client_frame(1, b"flood the reset peer"))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset
    deadline = time.monotonic() + 5
    while "queued" not in seen or not seen["log"]:
        assert time.monotonic() < deadline, "the handler never finished"
        time.sleep(0.05)
    assert seen["queued"] == 0  # nothing handed to a connection known to be gone
    assert len(seen["log"]) == 1 and "ConnectionError" in seen["log"][0], seen["log"]
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


# -- small things -------------------------------------------------------------------------------------------
def test_memory_info_does_not_collect_on_cpython(monkeypatch: pytest.MonkeyPatch) -> None:
    load_dut_module()  # puts framework/dut on sys.path, as on a board
    from dut_board import memory_info

    collections = []
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 0)
    assert memory_info() == (None, None)
    assert collections == []


def test_vhil_serve_refuses_a_port_out_of_range_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "vhil_serve", "--port", "70000"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--port must be 0-65535" in result.stderr, result.stderr


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (TcpExt ListenOverflows)."""
    with open("/proc/net/netstat") as netstat:
        lines = [line.split() for line in netstat if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1]))["ListenOverflows"])


def test_a_burst_of_connections_waits_in_the_listen_queue_instead_of_being_dropped() -> None:
    """300 clients connect while the server's loop is busy: asyncio's default listen queue (100) overflowed,
    and the kernel dropped the rest until their handshake was retried a second later. The server accepts a
    few per loop turn from a longer queue, so none is dropped and all are answered."""
    from viperhttp import server

    burst = 300
    try:
        with open("/proc/sys/net/core/somaxconn") as somaxconn:
            if int(somaxconn.read()) < burst:
                pytest.skip("the kernel caps listen queues below the burst (net.core.somaxconn)")
        listen_overflows()
    except OSError:
        pytest.skip("no /proc/net/netstat: not Linux")
    app = viperhttp.ViperHTTP()

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    async def scenario() -> tuple[int, list[bytes]]:
        srv = server.Server(app)
        port = await srv.start("127.0.0.1", 0)
        overflows = listen_overflows()
        sockets = []
        for _ in range(burst):  # the loop does not run meanwhile: the kernel queues what it has room for
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets.append(sock)
        time.sleep(0.3)
        dropped = listen_overflows() - overflows

        async def get(sock: socket.socket) -> bytes:
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return answer

        answers = await asyncio.gather(*(get(sock) for sock in sockets))
        await srv.close()
        return dropped, answers

    dropped, answers = asyncio.run(scenario())
    assert dropped == 0, f"{dropped} connections dropped from the listen queue"
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers)
