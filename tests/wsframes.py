"""Client-side frame building for tests: masked frames, including deliberately malformed ones.

Runs on MicroPython too (the core tests in tests/core/ run inside the VM): no `from __future__`, and the
annotations are ones CPython 3.10 evaluates and MicroPython ignores."""

try:
    from os import urandom
except ImportError:  # MicroPython's os may lack it (the WebAssembly port's does)
    from random import getrandbits

    def urandom(n: int) -> bytes:
        return bytes(getrandbits(8) for _ in range(n))

# The opening handshake of RFC 6455 section 1.3's example key, for the /ws/echo route.
HANDSHAKE = (b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def client_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, masked: bool = True,
                 length_bytes: int | None = None, mask: bytes | None = None) -> bytes:
    """A client frame. `length_bytes` forces the 16-bit (2) or 64-bit (8) length form."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if length_bytes == 8 or (length_bytes is None and n >= 0x10000):
        header = bytes((first, mask_bit | 127)) + n.to_bytes(8, "big")
    elif length_bytes == 2 or (length_bytes is None and n >= 126):
        header = bytes((first, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | n))
    if not masked:
        return header + payload
    key = mask if mask is not None else urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def parse_server_frames(data: bytes) -> list[tuple[int, bool, bytes]]:
    """(opcode, fin, payload) for each complete unmasked server frame in `data`."""
    frames = []
    i = 0
    while i + 2 <= len(data):
        first, second = data[i], data[i + 1]
        assert not second & 0x80, "server frames must not be masked"
        n = second & 0x7F
        i += 2
        if n == 126:
            n = int.from_bytes(data[i:i + 2], "big")
            i += 2
        elif n == 127:
            n = int.from_bytes(data[i:i + 8], "big")
            i += 8
        if i + n > len(data):
            break
        frames.append((first & 0x0F, bool(first & 0x80), data[i:i + n]))
        i += n
    return frames


def sent(protocol) -> list[tuple[int, bool, bytes]]:
    """The frames a sans-I/O protocol has queued to send, parsed."""
    return parse_server_frames(b"".join(protocol.data_to_send()))


def feed(protocol, *frames: bytes) -> list[tuple]:
    """Feed frames to a sans-I/O protocol, taking events as an application would (one message at a time)."""
    events = []
    protocol.receive_data(b"".join(frames))
    while True:
        batch = protocol.events_received()
        if not batch:
            return events
        events.extend(batch)
        protocol.receive_data(b"")
