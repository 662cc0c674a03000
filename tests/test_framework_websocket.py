"""The WebSocket object and ConnectionManager over real sockets, with the `websockets` library as the peer."""
from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any, Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import viperhttp
from conftest import serve_in_thread
from hil.probe import get_json
from wsframes import client_frame

KEY_REQUEST = (b"GET /ws/rooms HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


# -- the DUT's documented behaviour -------------------------------------------------------------------------
def test_echo_route_text_and_binary(dut_port: int) -> None:
    async def scenario() -> None:
        async with connect(f"ws://127.0.0.1:{dut_port}/ws/echo") as ws:
            await ws.send("hello")
            assert await ws.recv() == "echo:hello"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
            await ws.send("")
            assert await ws.recv() == "echo:"
    run(scenario())


def test_chat_room_broadcast_reaches_members_and_sender(dut_port: int) -> None:
    async def scenario() -> None:
        base = f"ws://127.0.0.1:{dut_port}/ws/chat"
        async with connect(base + "?room=a") as a1, connect(base + "?room=a") as a2, connect(base + "?room=b") as b1:
            await a1.send("hi")
            assert await a1.recv() == '{"user": "anon", "text": "hi"}'
            assert await a2.recv() == '{"user": "anon", "text": "hi"}'
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(b1.recv(), 0.3)
    run(scenario())


# -- the WebSocket object API -------------------------------------------------------------------------------
@pytest.fixture
def api() -> Iterator[tuple[int, dict[str, Any]]]:
    app = viperhttp.ViperHTTP(max_message_size=1000)
    seen: dict[str, Any] = {}

    @app.websocket("/ws/record")
    async def record(ws):
        await ws.accept()
        seen["attrs"] = (ws.path, ws.query_params, ws.headers.get("x-probe"), ws.subprotocol, ws.client[0])
        seen["json"] = await ws.receive_json()
        await ws.send_json({"got": seen["json"]})
        seen["bytes"] = await ws.receive_bytes()
        seen["close"] = await ws.receive()
        seen["again"] = await ws.receive()

    @app.websocket("/ws/raise")
    async def raises(ws):
        await ws.accept()
        await ws.receive()
        raise RuntimeError("handler bug")

    @app.websocket("/ws/server-close")
    async def server_close(ws):
        await ws.accept()
        await ws.close(4000, "bye")

    @app.websocket("/ws/refuse")
    async def refuse(ws):
        return None

    @app.websocket("/ws/limited")
    async def limited(ws):
        await ws.accept()
        while (await ws.receive())["type"] != "close":
            pass

    with serve_in_thread(app) as port:
        yield port, seen


def test_receive_dicts_attributes_and_close_message_repeats(api: tuple[int, dict[str, Any]]) -> None:
    port, seen = api

    async def scenario() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws/record?x=1&y=a%20b", additional_headers={"X-Probe": "p"}) as ws:
            await ws.send('{"k": [1, 2]}')
            assert await ws.recv() == '{"got": {"k": [1, 2]}}'
            await ws.send(b"\x01\x02")
            await ws.close(4321, "done")
        await asyncio.sleep(0.3)
    run(scenario())
    assert seen["attrs"] == ("/ws/record", {"x": "1", "y": "a b"}, "p", None, "127.0.0.1")
    assert seen["json"] == {"k": [1, 2]} and seen["bytes"] == b"\x01\x02"
    assert seen["close"] == {"type": "close", "code": 4321}
    assert seen["again"] == {"type": "close", "code": 4321}  # not a hang


def test_handler_exception_closes_1011(api: tuple[int, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    port, _ = api

    async def scenario() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws/raise") as ws:
            await ws.send("trigger")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1011
    run(scenario())
    assert "websocket /ws/raise: handler raised RuntimeError: handler bug" in capsys.readouterr().out


def test_server_close_with_code_and_reason(api: tuple[int, dict[str, Any]]) -> None:
    port, _ = api

    async def scenario() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws/server-close") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "bye")
    run(scenario())


def test_handler_that_never_accepts_refuses_with_403(api: tuple[int, dict[str, Any]]) -> None:
    port, _ = api
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(KEY_REQUEST.replace(b"/ws/rooms", b"/ws/refuse"))
        assert sock.recv(1024).startswith(b"HTTP/1.1 403 ")


def test_message_over_the_app_limit_closes_1009(api: tuple[int, dict[str, Any]]) -> None:
    port, _ = api

    async def scenario() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws/limited", max_size=None) as ws:
            await ws.send(b"x" * 1000)
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1009
    run(scenario())


# -- ConnectionManager ---------------------------------------------------------------------------------------
def test_stats_follow_join_leave_disconnect_and_abrupt_drop(dut_port: int) -> None:
    def stats() -> dict[str, Any]:
        body = get_json(f"http://127.0.0.1:{dut_port}/stats")
        return {"connections": body["connections"], "rooms": body["rooms"]}

    async def scenario() -> None:
        url = f"ws://127.0.0.1:{dut_port}/ws/rooms"
        async with connect(url) as a, connect(url) as b:
            for ws, room in ((a, "r1"), (a, "r2"), (b, "r1")):
                await ws.send(f"join {room}")
                assert await ws.recv() == f"ok join {room}"
            assert stats() == {"connections": 2, "rooms": {"r1": 2, "r2": 1}}
            await a.send("leave r2")
            assert await a.recv() == "ok leave r2"
            assert stats() == {"connections": 2, "rooms": {"r1": 2}}  # empty rooms are dropped
            await b.send("pub r1 hello")
            assert await b.recv() == "hello" and await b.recv() == "ok pub r1 2" and await a.recv() == "hello"
        await asyncio.sleep(0.2)
        assert stats() == {"connections": 0, "rooms": {}}
    run(scenario())

    with socket.create_connection(("127.0.0.1", dut_port), timeout=5) as sock:  # drop without a close frame
        sock.sendall(KEY_REQUEST + client_frame(1, b"join r9"))
        time.sleep(0.3)
        assert stats() == {"connections": 1, "rooms": {"r9": 1}}
    deadline = time.monotonic() + 5
    while stats()["connections"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats() == {"connections": 0, "rooms": {}}


def test_disconnect_is_idempotent_and_leaves_every_room() -> None:
    class FakeMember:  # the manager only needs accept() and send_frame_nowait() from a member
        async def accept(self) -> None:
            pass

    manager = viperhttp.ConnectionManager()
    member = FakeMember()
    run(manager.connect(member, room="a"))
    manager.join_room(member, "b")
    assert manager.stats() == {"connections": 1, "rooms": {"a": 1, "b": 1}}
    manager.disconnect(member)
    manager.disconnect(member)
    assert manager.stats() == {"connections": 0, "rooms": {}}


def test_slow_member_is_shed_and_never_delays_the_others() -> None:
    """Against the DUT in its own process (1 MiB send buffer): a member that stops reading is dropped once its
    buffer passes the limit, while a reading member receives every broadcast."""
    from hil.targets import resolve_target

    messages, payload = 400, "p" * 32768  # 12.5 MiB in all: far past socket buffers plus the send buffer
    with resolve_target("host") as target:
        url = target.ws_url("/ws/rooms")
        port = int(target.base_url.rsplit(":", 1)[1])

        async def scenario() -> list[int]:
            slow = socket.create_connection(("127.0.0.1", port))
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.sendall(KEY_REQUEST + client_frame(1, b"join r"))
            try:
                async with connect(url, max_size=None) as fast, connect(url) as publisher:
                    await fast.send("join r")
                    assert await fast.recv() == "ok join r"
                    await asyncio.sleep(0.3)  # the slow member's join is processed
                    counts = []
                    for _ in range(messages):
                        await publisher.send("pub r " + payload)
                        counts.append(int((await publisher.recv()).split()[-1]))
                        assert await fast.recv() == payload
                    await publisher.send("stats")
                    assert json.loads((await publisher.recv())[len("ok stats "):]) == {"connections": 2, "rooms": {"r": 1}}
                    return counts
            finally:
                slow.close()
        counts = run(scenario())
    assert counts[0] == 2 and counts[-1] == 1  # the slow member was counted until it was shed
    assert counts == sorted(counts, reverse=True)


def test_a_burst_past_the_send_buffer_limit_sheds_nobody() -> None:
    """Two 16 KiB broadcasts back to back exceed a 16 KiB limit before the writer runs (the MicroPython default):
    a healthy member keeps both."""
    app = viperhttp.ViperHTTP(send_buffer_limit=16 * 1024)
    manager = viperhttp.ConnectionManager()
    payload = "b" * 16 * 1024

    @app.websocket("/ws/member")
    async def member(ws):
        await manager.connect(ws, room="r")
        try:
            message = await ws.receive()
            while message["type"] != "close":
                counts = [await manager.broadcast_text(payload, room="r") for _ in range(3)]
                await ws.send_text(" ".join(map(str, counts)) + " shed=%d" % manager.shed)
                message = await ws.receive()
        finally:
            manager.disconnect(ws)

    async def scenario(port: int) -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws/member", max_size=None) as ws:
            await ws.send("go")
            assert [await ws.recv() for _ in range(3)] == [payload] * 3
            assert await ws.recv() == "1 1 1 shed=0"

    with serve_in_thread(app) as port:
        run(scenario(port))
