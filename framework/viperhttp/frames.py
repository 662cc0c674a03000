# WebSocket frames (RFC 6455 section 5): opcodes, close codes, the client frame header parser and the server
# frame encoder. Message assembly and its fail-fast checks live in protocol.py.

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
KNOWN_OPCODES = (OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005  # never sent: what a receiver reports for a close frame without a code
CLOSE_ABNORMAL = 1006  # never sent: what a receiver reports when TCP dropped without a close frame
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

MAX_CONTROL_PAYLOAD = 125


class ProtocolError(Exception):
    """The peer broke the protocol; `code` is the close code to fail the connection with."""

    def __init__(self, code, reason):
        super().__init__(reason)  # MicroPython has no Exception.__init__ to call unbound
        self.code = code
        self.reason = reason


def close_code_is_valid(code):
    """May this code appear in a close frame on the wire? (RFC 6455 7.4 and the IANA registry.)"""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_frame_header(read_exact):
    """Generator over `read_exact(n)` (a generator giving n bytes): the next client frame's header as
    (fin, opcode, payload length, mask); ProtocolError (close code 1002) for one the RFC forbids."""
    head = yield from read_exact(2)
    first, second = head[0], head[1]
    opcode = first & 0x0F
    if first & 0x70:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set without a negotiated extension")
    if opcode not in KNOWN_OPCODES:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unknown opcode %d" % opcode)
    if not second & 0x80:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frame not masked")
    length = second & 0x7F
    if opcode >= OP_CLOSE:
        if not first & 0x80:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
        if length > MAX_CONTROL_PAYLOAD:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frame payload over 125 bytes")
    if length == 126:
        length = int.from_bytes((yield from read_exact(2)), "big")
    elif length == 127:
        length = int.from_bytes((yield from read_exact(8)), "big")
        if length >> 63:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "payload length with the most significant bit set")
    mask = yield from read_exact(4)
    return first & 0x80, opcode, length, mask


def encode_frame(opcode, payload, fin=True):
    """A server frame (never masked). Returns a list of byte strings to write in order, so a large payload is
    not copied into a new buffer just to prepend its header."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        header = bytes((first, n))
    elif n < 0x10000:
        header = bytes((first, 126, n >> 8, n & 0xFF))
    else:
        header = bytes((first, 127)) + n.to_bytes(8, "big")
    if n <= 4096:
        return [header + payload]
    return [header, payload]


def encode_close_payload(code, reason=""):
    if code is None:
        return b""
    return code.to_bytes(2, "big") + reason.encode("utf-8")[:MAX_CONTROL_PAYLOAD - 2]
