"""Large messages: up to the target's documented limit (/health max_message_size) echoed intact on
/ws/autobahn; one byte over it answered with close code 1009 (message too big)."""
from __future__ import annotations

import os

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from conformance.contract.helpers import assert_binary_echo, recv, run, ws_connect

CLOSE_MESSAGE_TOO_BIG = 1009
LARGE_TIMEOUT_S = 60.0  # 16 MiB each way on CPython; far less on a board's 64 KiB


@pytest.fixture
def limit(health):
    value = health.get("max_message_size")
    if value is None:  # ViperHTTP firmware does not tell its limit: the board's dut_config.json may state it
        pytest.skip("the target's /health states no max_message_size (set max_message_size in its dut_config.json)")
    assert isinstance(value, int) and value > 0, f"/health max_message_size is {value!r}"
    return value


@pytest.mark.parametrize("kind", ["bytes", "text"])
def test_message_at_the_limit_is_echoed(dut, limit, kind):
    payload = os.urandom(limit) if kind == "bytes" else "x" * limit

    async def body():
        async with ws_connect(dut, "/ws/autobahn", max_size=limit + 1024) as ws:
            await ws.send(payload)
            reply = await recv(ws, LARGE_TIMEOUT_S)
            if kind == "bytes":
                await assert_binary_echo(dut, reply, payload)
            assert type(reply) is type(payload) and len(reply) == limit and reply == payload
    run(body, LARGE_TIMEOUT_S * 2)


def test_message_over_the_limit_closes_1009(dut, limit):
    async def body():
        # not `async with`: leaving it on a connection the server already closed mid-send trips websockets 17
        ws = await ws_connect(dut, "/ws/autobahn", max_size=limit + 1024)
        try:
            await ws.send(os.urandom(limit + 1))
            with pytest.raises(ConnectionClosed):
                reply = await recv(ws, LARGE_TIMEOUT_S)
                pytest.fail(f"a {limit + 1}-byte message was answered ({len(reply)} bytes) instead of closed")
            assert ws.protocol.close_rcvd is not None, "the connection was dropped without a close frame"
            assert ws.protocol.close_rcvd.code == CLOSE_MESSAGE_TOO_BIG
        finally:
            if ws.state is not State.CLOSED:
                ws.transport.close()
    run(body, LARGE_TIMEOUT_S * 2)
