# The server side of a WebSocket connection after the handshake, sans-I/O (RFC 6455 sections 5 to 7).
#
#   protocol.receive_data(bytes)      bytes from the client (b"": nothing new, parse what is buffered)
#   protocol.receive_eof()            the client's end of stream
#   protocol.events_received()        [(TEXT, str) | (BINARY, bytes) | (CLOSE, code, reason)]
#   protocol.data_to_send()           [bytes, ...] to write, in order
#   protocol.send_text / send_binary / send_ping / send_close
#
# It never touches a socket. Every violation fails the connection at once with the RFC's close code:
# 1002 protocol errors, 1007 invalid UTF-8 (checked as bytes arrive, mid-frame), 1009 messages over the size
# limit or in more than `max_fragments` frames. A message's fragments are gathered in one growing buffer, so a
# fragment costs its payload bytes and nothing more.
# Parsing stops after each complete message until the application has taken it (events_received), so what
# the application sends in reply leaves before anything caused by later frames (a pong, a failure's close):
# replies stay in the order the client's frames came in even when many frames arrive in one read.
from viperhttp.compat import MICROPYTHON, ConnectionError, TextDecoder, decode_utf8, unmask_bytes
from viperhttp.http import ByteBuffer

# -- frames (RFC 6455 section 5): opcodes, close codes and the server frame encoder; the client frame header is
# parsed, and messages assembled with their fail-fast checks, in WebSocketProtocol._parse --------------------------
OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
KNOWN_OPCODES = (OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005  # never sent: what a receiver reports for a close frame without a code
CLOSE_ABNORMAL = 1006  # never sent: what a receiver reports when TCP dropped without a close frame
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

MAX_CONTROL_PAYLOAD = 125


class ProtocolError(Exception):
    """The peer broke the protocol; `code` is the close code to fail the connection with."""

    def __init__(self, code, reason):
        super().__init__(reason)  # MicroPython has no Exception.__init__ to call unbound
        self.code = code
        self.reason = reason


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


# A close frame's payload (RFC 6455 5.5.1) is the value (code, reason): parsed, checked and encoded by the three
# functions below. Functions over a pair rather than a class, because a class adds a type object and its method
# table to every MicroPython import (`vhil bench memory` import_bytes must not grow).
def parse_close(payload):
    """The client's close payload as (code, reason); (CLOSE_NO_STATUS, "") for an empty one. ProtocolError
    1002 for a one-byte payload or a code not allowed on the wire, 1007 for a reason that is not UTF-8."""
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "close frame payload of one byte")
    code = int.from_bytes(payload[:2], "big")
    check_close(code)
    try:
        reason = decode_utf8(payload[2:])
    except ValueError:
        raise ProtocolError(CLOSE_INVALID_DATA, "close reason is not valid UTF-8")
    return code, reason


def check_close(code):
    """ProtocolError 1002 unless the code may appear in a close frame on the wire (RFC 6455 7.4 and the IANA
    registry)."""
    if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "invalid close code %d" % code)


def encode_close(code, reason=""):
    """The payload to send: the code, then the reason's UTF-8 cut to fit a control frame (at a character
    boundary, so the peer still gets valid UTF-8); empty for code None."""
    if code is None:
        return b""
    data = reason.encode("utf-8")
    end = MAX_CONTROL_PAYLOAD - 2
    if len(data) > end:
        while data[end] & 0xC0 == 0x80:  # a continuation byte: the cut would split a character
            end -= 1
        data = data[:end]
    return code.to_bytes(2, "big") + data


TEXT = "text"
BINARY = "bytes"
CLOSE = "close"

OPEN = 1
CLOSING = 2  # we sent a close frame and wait for the client's
CLOSED = 3  # both close frames exchanged, or the stream ended: the transport should be closed

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
# Autobahn 9.3.1 / 9.4.1 send 4 MiB in 64-byte fragments (65,536 frames): the CPython default takes that.
DEFAULT_MAX_FRAGMENTS = 1024 if MICROPYTHON else 131072


class WebSocketProtocol:
    # A connection's state starts as these class-level defaults and becomes its own only where it changes, so an
    # idle connection's object holds little; the lists of events and output exist only while they hold something.
    max_message_size = DEFAULT_MAX_MESSAGE_SIZE
    max_fragments = DEFAULT_MAX_FRAGMENTS
    state = OPEN
    close_code = None  # the code this side reports for the connection once it is closing
    close_reason = ""
    failed = False  # closed because the client broke the protocol
    _events = None
    _output = None
    _message_opcode = None
    _message_size = 0
    _fragments = 0
    _message_parts = None  # binary: [the first chunk] or [it, one bytearray gathering all]
    _text = None  # the TextDecoder of the text message being received, only while there is one
    _parser = None  # the _parse generator, only while a frame is partly received or buffered frames wait
    _buffer = None  # the ByteBuffer of received bytes, only while it holds some (or the end of stream)

    def __init__(self, max_message_size=DEFAULT_MAX_MESSAGE_SIZE, max_fragments=DEFAULT_MAX_FRAGMENTS):
        if max_message_size != DEFAULT_MAX_MESSAGE_SIZE:
            self.max_message_size = max_message_size
        if max_fragments != DEFAULT_MAX_FRAGMENTS:
            self.max_fragments = max_fragments

    # -- input -------------------------------------------------------------------------------------------
    def receive_data(self, data):
        if self.state == CLOSED:
            return  # after the close handshake or a failure, further bytes mean nothing
        if data:
            if self._buffer is None:
                self._buffer = ByteBuffer()
            self._buffer.feed(data)
        self._run_parser()

    def receive_eof(self):
        if self.state == CLOSED:
            return
        if self._buffer is None:
            self._buffer = ByteBuffer()
        self._buffer.feed_eof()
        self._run_parser()

    def _run_parser(self):
        if self._events:
            return  # the application has not taken the last message yet
        if self._parser is None:
            if self._buffer is None:
                return  # idle between frames
            self._parser = self._parse()
        try:
            next(self._parser)
        except StopIteration:
            self._parser = None
            if not self._buffer.available() and not self._buffer.eof:
                self._buffer = None  # nothing left to parse: an idle connection holds no buffer
        except ProtocolError as exc:  # the client broke the protocol: fail the connection with the RFC's code
            self._parser = None
            self.failed = True
            if self.state == OPEN:
                self.send_close(exc.code, exc.reason)
                self._event((CLOSE, exc.code, exc.reason))
            self.state = CLOSED
        except EOFError:  # the stream ended without a closing handshake
            self._parser = None
            if self.state == OPEN:
                self.close_code = CLOSE_ABNORMAL
                self._event((CLOSE, CLOSE_ABNORMAL, ""))
            self.state = CLOSED

    def events_received(self):
        events, self._events = self._events or [], None
        return events

    def data_to_send(self):
        output, self._output = self._output or [], None
        return output

    def _event(self, event):
        if self._events is None:
            self._events = [event]
        else:
            self._events.append(event)

    # -- output ------------------------------------------------------------------------------------------
    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data):
        self.send_frame(OP_BINARY, bytes(data))

    def send_ping(self, data=b""):
        self.send_frame(OP_PING, data)

    def send_frame(self, opcode, payload):
        if self.state != OPEN:
            raise ConnectionError("WebSocket is closing")
        self._send(encode_frame(opcode, payload))

    def send_close(self, code=CLOSE_NORMAL, reason=""):
        """Start the closing handshake (no-op when it has started)."""
        if self.state != OPEN:
            return
        self._send(encode_frame(OP_CLOSE, encode_close(code, reason)))
        self.state = CLOSING
        self.close_code = code
        self.close_reason = reason

    def _send(self, chunks):
        """Queue a frame's byte strings (a list encode_frame made, so it is ours to keep)."""
        if self._output is None:
            self._output = chunks
        else:
            self._output.extend(chunks)

    # -- parsing -----------------------------------------------------------------------------------------
    def _parse(self):
        """Generator: parses frames until the buffer is empty between two frames, a message is complete (parsing
        goes on once the application has taken it) or the connection is closed. It ends at each of those, so
        an idle connection holds no parser. (One generator, not helpers per step: each function costs every
        MicroPython import its own code object.)"""
        buf = self._buffer
        while buf.available():
            # the frame header (RFC 6455 5.2); ProtocolError 1002 for one the RFC forbids
            head = yield from buf.read_exact(2)
            fin, opcode, length = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x7F
            if head[0] & 0x70:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV bits set without extension")
            if opcode not in KNOWN_OPCODES:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unknown opcode %d" % opcode)
            if not head[1] & 0x80:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frame not masked")
            if opcode >= OP_CLOSE:
                if not fin:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
                if length > MAX_CONTROL_PAYLOAD:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes")
            if length == 126:
                length = int.from_bytes((yield from buf.read_exact(2)), "big")
            elif length == 127:
                length = int.from_bytes((yield from buf.read_exact(8)), "big")
                if length >> 63:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "64-bit length with top bit set")
            mask = yield from buf.read_exact(4)
            if opcode == OP_PING:
                payload = unmask_bytes((yield from buf.read_exact(length)), mask)
                if self.state == OPEN:
                    self._send(encode_frame(OP_PONG, payload))
                continue
            if opcode == OP_PONG:
                yield from buf.read_exact(length)  # unsolicited pongs are allowed and ignored
                continue
            if opcode == OP_CLOSE:
                code, reason = parse_close(unmask_bytes((yield from buf.read_exact(length)), mask))
                if self.state == OPEN:
                    # echo the client's code; a close without one is answered with a normal closure
                    self._send(encode_frame(OP_CLOSE, encode_close(CLOSE_NORMAL if code == CLOSE_NO_STATUS else code)))
                    self.close_code = code
                    self.close_reason = reason
                    self._event((CLOSE, code, reason))
                self.state = CLOSED
                return
            # a data frame: the start or the continuation of a message, held to the size and fragment limits
            if opcode == OP_CONTINUATION:
                if self._message_opcode is None:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation without a message")
            else:
                if self._message_opcode is not None:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "data frame inside a message")
                self._message_opcode = opcode
                self._message_size = 0
                self._fragments = 0
                if opcode == OP_TEXT:
                    self._text = TextDecoder()
            self._fragments += 1
            if self._fragments > self.max_fragments:
                raise ProtocolError(CLOSE_TOO_BIG, "more than %d fragments" % self.max_fragments)
            self._message_size += length
            if self._message_size > self.max_message_size:
                raise ProtocolError(CLOSE_TOO_BIG, "message over %d bytes" % self.max_message_size)
            text = self._message_opcode == OP_TEXT
            offset = 0
            while offset < length:
                chunk = unmask_bytes((yield from buf.read_some(length - offset)), mask, offset)
                offset += len(chunk)
                if text:
                    try:
                        self._text.feed(chunk)  # fails fast: before the rest of the frame arrives
                    except ValueError:
                        raise ProtocolError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message")
                else:
                    parts = self._message_parts
                    if parts is None:
                        self._message_parts = [chunk]  # a message in one chunk is never copied
                    else:
                        if len(parts) == 1:
                            parts.append(bytearray(parts[0]))
                        parts[1] += chunk
            chunk = None  # the message is the application's now: a parser waiting for a frame must not keep it
            if not fin:
                continue
            if text:
                try:
                    event = (TEXT, self._text.finish())
                except ValueError:
                    raise ProtocolError(CLOSE_INVALID_DATA, "text ends inside a character")
                self._text = None
            else:
                parts = self._message_parts
                event = (BINARY, b"" if not parts else parts[0] if len(parts) == 1 else bytes(parts[1]))
            parts = self._message_parts = self._message_opcode = None
            if self.state == OPEN:  # data after our close frame is discarded (RFC 6455 1.4)
                self._event(event)
                return
            event = None  # discarded: not held while the next frame arrives
        if buf.eof:
            raise EOFError("connection closed")
