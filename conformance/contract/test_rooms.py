"""Rooms and broadcast: /ws/chat?room=NAME and the /ws/rooms commands, checked against GET /stats.

/stats counts every connection on the target, so these tests assume they are its only clients; room names are
unique per test. A room with no members may be absent or 0 in stats (`ConnectionManager.stats()` drops it).
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from conformance.contract.helpers import STEP_TIMEOUT_S, get_json, recv, run, ws_connect

SETTLE_TIMEOUT_S = STEP_TIMEOUT_S / 2  # the server unregisters a closed or dropped connection asynchronously


def room_name(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def snapshot(dut: Any, rooms: list[str]) -> tuple[int, dict[str, int]]:
    stats = get_json(dut, "/stats")
    return stats["connections"], {room: stats["rooms"].get(room, 0) for room in rooms}


async def settled_stats(dut: Any, rooms: list[str], expected: tuple[int, dict[str, int]]) -> tuple[int, dict[str, int]]:
    """/stats once it equals `expected`, or its last value after SETTLE_TIMEOUT_S (the caller asserts)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        seen = await asyncio.to_thread(snapshot, dut, rooms)
        if seen == expected or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.05)


async def command(ws: Any, line: str) -> str:
    await ws.send(line)
    reply = await recv(ws)
    assert isinstance(reply, str), f"{line!r}: expected a text reply, got {reply!r}"
    return reply


def test_chat_room_isolation_and_own_broadcast(dut):
    room_a, room_b = room_name("a"), room_name("b")

    async def body():
        async with ws_connect(dut, f"/ws/chat?room={room_a}") as a1, \
                ws_connect(dut, f"/ws/chat?room={room_a}") as a2, \
                ws_connect(dut, f"/ws/chat?room={room_b}") as b1:
            await a1.send("hello a")
            expected = {"user": "anon", "text": "hello a"}
            assert json.loads(await recv(a1)) == expected, "the sender must receive its own broadcast"
            assert json.loads(await recv(a2)) == expected
            # Anything leaked to room b was queued for b1 before a2 got its copy, so it would arrive before this
            await b1.send("marker b")
            assert json.loads(await recv(b1)) == {"user": "anon", "text": "marker b"}, \
                "a broadcast to room a reached a member of room b"
    run(body)


def test_rooms_pub_reaches_members_and_counts_them(dut):
    room = room_name("pub")

    async def body():
        async with ws_connect(dut, "/ws/rooms") as m1, ws_connect(dut, "/ws/rooms") as m2, \
                ws_connect(dut, "/ws/rooms") as outsider:
            assert await command(m1, f"join {room}") == f"ok join {room}"
            assert await command(m2, f"join {room}") == f"ok join {room}"
            assert await command(outsider, f"pub {room} hello members") == f"ok pub {room} 2"
            assert await recv(m1) == "hello members"
            assert await recv(m2) == "hello members"
            # a member publishing receives its own broadcast, and the reply comes after it
            await m1.send(f"pub {room} from m1")
            assert [await recv(m1), await recv(m1)] == ["from m1", f"ok pub {room} 2"]
            assert await recv(m2) == "from m1"
            reply = await command(outsider, "stats")
            assert reply.startswith("ok stats "), reply
            assert json.loads(reply[len("ok stats "):])["rooms"].get(room) == 2
    run(body)


def test_stats_exact_after_join_and_leave(dut):
    room, chat_room = room_name("join"), room_name("chat")

    async def body():
        base_connections, _ = await asyncio.to_thread(snapshot, dut, [])
        async with ws_connect(dut, "/ws/rooms") as c1, ws_connect(dut, "/ws/rooms") as c2:
            rooms = [room, chat_room]
            assert await settled_stats(dut, rooms, (base_connections + 2, {room: 0, chat_room: 0})) == \
                (base_connections + 2, {room: 0, chat_room: 0})
            await command(c1, f"join {room}")
            assert await asyncio.to_thread(snapshot, dut, rooms) == (base_connections + 2, {room: 1, chat_room: 0})
            await command(c2, f"join {room}")
            assert await asyncio.to_thread(snapshot, dut, rooms) == (base_connections + 2, {room: 2, chat_room: 0})
            await command(c2, f"leave {room}")
            assert await asyncio.to_thread(snapshot, dut, rooms) == (base_connections + 2, {room: 1, chat_room: 0})
            async with ws_connect(dut, f"/ws/chat?room={chat_room}"):
                expected = (base_connections + 3, {room: 1, chat_room: 1})
                assert await settled_stats(dut, rooms, expected) == expected
    run(body)


async def two_members(dut, room: str) -> tuple[int, Any, Any]:
    """(connections before, member 1, member 2): two /ws/rooms clients in `room`, counted exactly."""
    base_connections, _ = await asyncio.to_thread(snapshot, dut, [])
    first = await ws_connect(dut, "/ws/rooms")
    second = await ws_connect(dut, "/ws/rooms")
    assert await command(first, f"join {room}") == f"ok join {room}"
    assert await command(second, f"join {room}") == f"ok join {room}"
    assert await asyncio.to_thread(snapshot, dut, [room]) == (base_connections + 2, {room: 2})
    return base_connections, first, second


def test_stats_exact_after_disconnect(dut):
    room = room_name("close")

    async def body():
        base_connections, stays, leaves = await two_members(dut, room)
        try:
            await leaves.close()  # closing handshake
            expected = (base_connections + 1, {room: 1})
            assert await settled_stats(dut, [room], expected) == expected
            await stays.close()
            expected = (base_connections, {room: 0})
            assert await settled_stats(dut, [room], expected) == expected
        finally:
            stays.transport.abort()  # no-op after a clean close; frees the socket when an assertion failed
    run(body)


def test_stats_exact_after_abrupt_tcp_drop(dut):
    room = room_name("drop")

    async def body():
        base_connections, stays, dropped = await two_members(dut, room)
        try:
            dropped.transport.abort()  # TCP reset, no close frame
            expected = (base_connections + 1, {room: 1})
            assert await settled_stats(dut, [room], expected) == expected
            # the survivor still gets the room's broadcasts, and is the only one counted
            assert await command(stays, f"pub {room} after drop") == "after drop"
            assert await recv(stays) == f"ok pub {room} 1"
            await stays.close()
        finally:
            stays.transport.abort()
    run(body)
