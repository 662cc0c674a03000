"""A burst of 1,000 messages sent without waiting is echoed complete and in order."""
from __future__ import annotations

from conformance.contract.helpers import recv, run, ws_connect

BURST = 1000


def test_burst_of_1000_echoed_in_order(dut):
    async def body():
        async with ws_connect(dut, "/ws/echo") as ws:
            for i in range(BURST):
                await ws.send(f"burst {i}")
            replies = [await recv(ws) for _ in range(BURST)]
            missing = [i for i in range(BURST) if f"echo:burst {i}" not in replies]
            assert not missing, f"{len(missing)} of {BURST} messages not echoed (first: {missing[0]})"
            assert replies == [f"echo:burst {i}" for i in range(BURST)], "echoes out of order"
    run(body)
