"""The guide's echo route and its message dicts: text, bytes, close with its code (docs/dut-app.md /ws/echo)."""
from __future__ import annotations

import pytest

from conformance.contract.helpers import assert_binary_echo, recv, run, ws_connect


def test_text_is_echoed_with_prefix(dut):
    async def body():
        async with ws_connect(dut, "/ws/echo") as ws:
            replies = []
            for text in ("hello", "", "héllo ✓ 😀"):
                await ws.send(text)
                replies.append(await recv(ws))
            assert replies == ["echo:hello", "echo:", "echo:héllo ✓ 😀"]
    run(body)


def test_bytes_are_echoed_unchanged(dut):
    async def body():
        async with ws_connect(dut, "/ws/echo") as ws:
            for payload in (bytes(range(256)), b"\x00", b"echo:"):
                await ws.send(payload)
                reply = await recv(ws)
                await assert_binary_echo(dut, reply, payload)
                assert reply == payload
    run(body)


@pytest.mark.parametrize("code", [1000, 4000])
def test_close_is_answered_with_its_code(dut, code):
    # The handler sees {"type": "close", "code": code}; on the wire the server's close frame echoes the code
    # (RFC 6455 5.5.1), which is the part of the close message a client can observe.
    async def body():
        async with ws_connect(dut, "/ws/echo") as ws:
            await ws.send("before close")
            assert await recv(ws) == "echo:before close"
            await ws.close(code=code, reason="contract")
            assert ws.protocol.close_rcvd is not None, "the server never answered the close frame"
            assert ws.protocol.close_rcvd.code == code
    run(body)
