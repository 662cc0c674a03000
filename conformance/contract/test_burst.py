"""A burst of 1,000 messages sent without waiting is echoed complete and in order: the guide's receive loop
(`while True: msg = await ws.receive() ...`) is handed every message the client sent."""
from __future__ import annotations

import asyncio

from conformance.contract.helpers import GUIDE, STEP_TIMEOUT_S, run, ws_connect

BURST = 1000
QUIET_S = min(3.0, STEP_TIMEOUT_S)  # no echo for this long after the last one: the rest are not coming


def test_burst_of_1000_echoed_in_order(dut):
    async def body():
        async with ws_connect(dut, "/ws/echo") as ws:
            for i in range(BURST):
                await ws.send(f"burst {i}")
            replies = []
            while len(replies) < BURST:
                try:
                    replies.append(await asyncio.wait_for(ws.recv(), QUIET_S))
                except asyncio.TimeoutError:
                    break
            echoed = {reply[len("echo:burst "):] for reply in replies if isinstance(reply, str)}
            missing = [i for i in range(BURST) if str(i) not in echoed]
            assert not missing, (
                f"{GUIDE}, Basic WebSocket Route: each `await ws.receive()` returns the client's next message and "
                f"the handler echoes it; of a burst of {BURST} messages sent before the handler read them, "
                f"{len(missing)} never reached it (first missing: #{missing[0]}; {len(replies)} echoed, none "
                f"for {QUIET_S:g} s after): the target drops messages that arrive while its receive queue is full")
            assert replies == [f"echo:burst {i}" for i in range(BURST)], "echoes out of order"
    run(body)
