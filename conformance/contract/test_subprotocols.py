"""Sub-protocol negotiation on /ws/mqtt (protocols=["mqtt", "mqttv5"]): the client's first offer the route
supports is chosen; with no overlap (or on a route without protocols) the handshake carries no
Sec-WebSocket-Protocol header and the connection still opens."""
from __future__ import annotations

import pytest

from conformance.contract.helpers import recv, run, ws_connect


@pytest.mark.parametrize("offer, chosen", [
    (["mqtt"], "mqtt"),
    (["mqttv5"], "mqttv5"),
    (["mqtt", "mqttv5"], "mqtt"),
    (["mqttv5", "mqtt"], "mqttv5"),
    (["graphql-ws", "mqttv5", "mqtt"], "mqttv5"),
])
def test_offer_order_decides(dut, offer, chosen):
    async def body():
        async with ws_connect(dut, "/ws/mqtt", subprotocols=offer) as ws:
            assert ws.response.headers.get("Sec-WebSocket-Protocol") == chosen
            assert ws.subprotocol == chosen
            await ws.send("after negotiation")
            assert await recv(ws) == "after negotiation"
    run(body)


@pytest.mark.parametrize("path, offer", [("/ws/mqtt", ["graphql-ws"]), ("/ws/mqtt", None), ("/ws/echo", ["mqtt"])])
def test_no_overlap_means_no_header(dut, path, offer):
    async def body():
        # websockets refuses a handshake whose protocol was not offered, so a wrong header fails here too
        async with ws_connect(dut, path, subprotocols=offer) as ws:
            assert "Sec-WebSocket-Protocol" not in ws.response.headers
            assert ws.subprotocol is None
    run(body)
