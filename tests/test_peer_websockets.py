"""The `websockets` peer (`vhil serve --impl websockets`) speaks the DUT app protocol of docs/dut-app.md."""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import urllib.request
from typing import Iterator

import pytest
import websockets
from websockets.asyncio.client import connect

from hil.probe import READY_LINE_PATTERN
from hil.process import ManagedProcess



@pytest.fixture(scope="module")
def peer() -> Iterator[tuple[int, ManagedProcess]]:
    process = ManagedProcess([sys.executable, "-m", "vhil_serve", "--port", "0", "--impl", "websockets"])
    try:
        port = int(process.wait_for_line(READY_LINE_PATTERN, 20).group(2))
        yield port, process
    finally:
        process.stop()


def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_health_stats_and_server_header(peer: tuple[int, ManagedProcess]) -> None:
    port, _ = peer
    status, headers, body = http_get(port, "/health")
    assert status == 200
    assert headers["Server"] == f"websockets-peer/{websockets.__version__}"
    assert headers["Content-Type"] == "application/json"
    health = json.loads(body)
    assert health["status"] == "ok" and health["impl"] == "websockets-peer"
    assert health["max_message_size"] == 16 * 1024 * 1024
    status, _, body = http_get(port, "/stats")
    assert status == 200 and json.loads(body)["rooms"] == {}
    assert http_get(port, "/no-such-route")[0] == 404


def test_rooms_protocol_counts_recipients(peer: tuple[int, ManagedProcess]) -> None:
    port, _ = peer

    async def scenario() -> None:
        url = f"ws://127.0.0.1:{port}/ws/rooms"
        async with connect(url) as a, connect(url) as b, connect(url) as publisher:
            for member in (a, b):
                await member.send("join t1")
                assert await member.recv() == "ok join t1"
            await publisher.send("pub t1 hello there")
            assert await publisher.recv() == "ok pub t1 2"
            assert await a.recv() == "hello there" and await b.recv() == "hello there"
            await b.send("leave t1")
            assert await b.recv() == "ok leave t1"
            await publisher.send("pub t1 again")
            assert await publisher.recv() == "ok pub t1 1"
            await publisher.send("stats")
            stats = await publisher.recv()
            assert stats.startswith("ok stats ") and json.loads(stats[9:]) == {"connections": 3, "rooms": {"t1": 1}}
            await publisher.send("dance")
            assert (await publisher.recv()).startswith("err ")

    asyncio.run(scenario())
    assert json.loads(http_get(port, "/stats")[2])["connections"] == 0


def test_echo_chat_and_mqtt_routes(peer: tuple[int, ManagedProcess]) -> None:
    port, _ = peer

    async def scenario() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws/echo") as ws:
            await ws.send("hi")
            assert await ws.recv() == "echo:hi"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"
        async with connect(f"ws://127.0.0.1:{port}/ws/chat?room=lobby") as ws:
            await ws.send("hello")
            assert json.loads(await ws.recv()) == {"user": "anon", "text": "hello"}
        async with connect(f"ws://127.0.0.1:{port}/ws/mqtt", subprotocols=["v12.stomp", "mqttv5"]) as ws:
            assert ws.subprotocol == "mqttv5"
            await ws.send(b"\x10")
            assert await ws.recv() == b"\x10"

    asyncio.run(scenario())


def test_sigint_stops_cleanly() -> None:
    process = ManagedProcess([sys.executable, "-m", "vhil_serve", "--port", "0", "--impl", "websockets"])
    try:
        process.wait_for_line(READY_LINE_PATTERN, 20)
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(10) == 0
        assert "Traceback" not in process.output()
    finally:
        process.stop()
