"""The guide's "Message Format": what ws.receive() returns, seen through the DUT app's /ws/inspect route (type
names and keys, never payloads). One test per documented shape; a failure quotes the guide and shows what the
target returned instead."""
from __future__ import annotations

import pytest

from conformance.contract.helpers import GUIDE, describe_shape, received_shape, run

# (what is sent, the guide's words for it, the "type" it documents, the key holding the payload, its type name)
DOCUMENTED = {
    "text": ("hello", '# Text message {"type": "text", "text": "hello"}', "text", "text", "str"),
    "bytes": (b"\x01\x02", '# Binary message {"type": "bytes", "bytes": b"\\x01\\x02"}', "bytes", "bytes", "bytes"),
}


@pytest.mark.parametrize("kind", sorted(DOCUMENTED))
def test_receive_returns_the_documented_message(dut, kind):
    payload, quote, documented_type, key, key_type = DOCUMENTED[kind]

    async def body():
        shape = await received_shape(dut, payload)
        holds = (shape.get("python_type") == "dict" and shape.get("type") == documented_type
                 and shape.get("keys", {}).get(key) == key_type)
        assert holds, (f"{GUIDE}, Message Format: \"Messages received from `ws.receive()` have the following "
                       f"structure: {quote}\"; for a {kind} message this target's receive() returned "
                       f"{describe_shape(shape)}")
    run(body)
