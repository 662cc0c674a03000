"""Broadcast bursts on MicroPython: the DUT app on the mpy VM, where the send-buffer limit is 16 KiB. Two
publishers each sending two 16 KiB broadcasts back to back put more than the limit into every member's buffer
before any writer runs; members that are reading must keep every message (this shed every member once:
docs/mpy-target.md). Checked against breakage: with the old rule (over the limit = too slow) and the manager's
yield between broadcasts removed, this fails with the members' connections dropped; with the grace rule it
holds with or without that yield."""
from __future__ import annotations

import asyncio
from typing import Any, Iterator

import pytest
from websockets.asyncio.client import ClientConnection, connect

from hil.targets.mpy import MpyTarget

MEMBERS = 5
PUBLISHERS = 2
BURST = 2  # broadcasts per publisher, sent without waiting for the first one's acknowledgement
PAYLOAD = "b" * 16 * 1024  # the send-buffer limit on MicroPython (server.DEFAULT_SEND_BUFFER_LIMIT)


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MpyTarget]:
    target = MpyTarget(name="mpy")
    available = target.availability()
    if not available.ok:
        pytest.skip(available.reason)
    target.log_dir = tmp_path_factory.mktemp("mpy-log")
    with target:
        yield target


async def _joined(url: str, room: str) -> ClientConnection:
    ws = await connect(url, max_size=None, ping_interval=None)
    await ws.send(f"join {room}")
    assert await ws.recv() == f"ok join {room}"
    return ws


async def _burst(vm: MpyTarget) -> tuple[list[str], list[list[Any]]]:
    url = vm.ws_url("/ws/rooms")
    members = [await _joined(url, "r") for _ in range(MEMBERS)]
    publishers = [await connect(url, max_size=None, ping_interval=None) for _ in range(PUBLISHERS)]
    try:
        await asyncio.gather(*(ws.send(f"pub r {PAYLOAD}") for ws in publishers for _ in range(BURST)))
        acks = [await ws.recv() for ws in publishers for _ in range(BURST)]
        received = [[await member.recv() for _ in range(PUBLISHERS * BURST)] for member in members]
        await publishers[0].send("stats")
        stats = await publishers[0].recv()
        assert stats.startswith("ok stats ") and f'"r": {MEMBERS}' in stats, stats
        return acks, received
    finally:
        await asyncio.gather(*(ws.close() for ws in members + publishers), return_exceptions=True)


def test_two_16_kib_broadcasts_in_a_row_shed_no_reading_member(vm: MpyTarget) -> None:
    acks, received = asyncio.run(asyncio.wait_for(_burst(vm), 60))
    assert acks == [f"ok pub r {MEMBERS}"] * (PUBLISHERS * BURST)  # every member was handed every broadcast
    assert all(messages == [PAYLOAD] * (PUBLISHERS * BURST) for messages in received)
