# The WebSocket object a route handler receives: the guide's API over the sans-I/O protocol and a Transport.
import asyncio
import json

from viperhttp.http import accept_response
from viperhttp.protocol import BINARY, CLOSE_NORMAL, CLOSED, OP_TEXT, OPEN, TEXT, WebSocketProtocol, encode_frame

CLOSING_TIMEOUT_S = 5


class WebSocketDisconnect(Exception):
    """Raised by receive_text/receive_bytes/receive_json when the connection closed; `code` says how."""

    def __init__(self, code=1000, reason=""):
        super().__init__("WebSocket closed with code %d" % code)  # MicroPython has no Exception.__init__
        self.code = code
        self.reason = reason


class WebSocket:
    # Until they change, a connection's flags are these class-level defaults, not entries in its own object.
    subprotocol = None
    _messages = None  # received messages receive() has not returned yet
    _close_message = None
    _close_reason = ""
    _finished = False

    def __init__(self, request, transport, key, offered_subprotocol, server_header, max_message_size,
                 initial_data=b""):
        self.path = request.path
        self.headers = request.headers
        self.query_params = request.query_params
        self.path_params = request.path_params
        self._transport = transport
        self._handshake = (key, offered_subprotocol, server_header)  # until accept() has answered it
        self._protocol = WebSocketProtocol(max_message_size)
        if initial_data:  # frames the client sent right behind its request: parsed now, taken after accept()
            self._protocol.receive_data(initial_data)

    @property
    def client(self):
        """(host, port) of the peer where known (asked of the transport: one attribute fewer per connection)."""
        return self._transport.client

    @property
    def accepted(self):
        return self._handshake is None

    @property
    def closed(self):
        return self._close_message is not None or self._transport.closed

    async def accept(self, subprotocol=None):
        """Complete the handshake; `subprotocol` defaults to the one negotiated from the route's protocols."""
        if self.accepted:
            return
        key, offered_subprotocol, server_header = self._handshake
        if subprotocol is None:
            subprotocol = offered_subprotocol
        await self._transport.send([accept_response(key, subprotocol, server_header)])
        if subprotocol is not None:
            self.subprotocol = subprotocol
        self._handshake = None
        self._take_from_protocol()  # what the frames sent with the request caused (a pong, say) goes out now

    async def receive(self):
        """The next message: {"type": "text", "text": ...}, {"type": "bytes", "bytes": ...} or
        {"type": "close", "code": ...}; after the close, the close message again."""
        if not self.accepted:
            raise RuntimeError("call accept() before receive()")
        if not self._messages:
            self._protocol.receive_data(b"")  # frames already buffered come first
            self._take_from_protocol()
        while not self._messages:
            if self._close_message is not None:
                return dict(self._close_message)
            try:
                data = await self._transport.read()
            except OSError:  # reset by the peer: the same as its end of stream
                data = b""
            self._feed(data)
        message = self._messages.pop(0)
        if not self._messages:
            self._messages = None  # an idle connection holds no list
        return message

    def _feed(self, data):
        """Hand the protocol what the transport read: bytes, or b"" for the client's end of stream (one meaning
        per value, as the protocol's receive_data/receive_eof have)."""
        if data:
            self._protocol.receive_data(data)
        else:
            self._protocol.receive_eof()
        self._take_from_protocol()

    def _take_from_protocol(self):
        """Send the replies the protocol has made and queue the messages it has parsed."""
        protocol = self._protocol
        replies = protocol.data_to_send()
        if replies:
            # one byte string for all the replies a read caused (a read of pings makes thousands of pongs),
            # so the send buffer's count is what they cost; reading pauses while it is over the limit
            self._transport.send_nowait([replies[0] if len(replies) == 1 else b"".join(replies)], force=True)
        for event in protocol.events_received():
            kind = event[0]
            if kind == TEXT:
                message = {"type": "text", "text": event[1]}
            elif kind == BINARY:
                message = {"type": "bytes", "bytes": event[1]}
            else:  # CLOSE, the last event
                self._close_message = {"type": "close", "code": event[1]}
                self._close_reason = event[2]
                message = dict(self._close_message)
            if self._messages is None:
                self._messages = [message]
            else:
                self._messages.append(message)

    async def receive_text(self):
        message = await self._receive_data()
        if "text" not in message:
            raise TypeError("got binary, expected text")
        return message["text"]

    async def receive_bytes(self):
        message = await self._receive_data()
        if "bytes" not in message:
            raise TypeError("got text, expected binary")
        return message["bytes"]

    async def receive_json(self):
        message = await self._receive_data()
        return json.loads(message["text"] if "text" in message else message["bytes"])

    async def _receive_data(self):
        message = await self.receive()
        if message["type"] == "close":
            raise WebSocketDisconnect(message["code"], self._close_reason)
        return message

    async def send_text(self, text):
        self._protocol.send_text(text)
        await self._transport.send(self._protocol.data_to_send())

    async def send_bytes(self, data):
        self._protocol.send_binary(data)
        await self._transport.send(self._protocol.data_to_send())

    async def send_json(self, obj):
        await self.send_text(json.dumps(obj))

    def send_frame_nowait(self, chunks):
        """Hand pre-encoded frame bytes to the send buffer without waiting (broadcasts). False when the
        connection is closed or its buffer is over the limit: the caller decides what to do with the member."""
        if self._protocol.state != OPEN:
            return False
        return self._transport.send_nowait(chunks)

    async def close(self, code=CLOSE_NORMAL, reason=""):
        """Start the closing handshake, wait (bounded) for the client's close frame, close the connection."""
        if self._protocol.state == OPEN and not self._transport.closed:
            self._protocol.send_close(code, reason)
            self._transport.send_nowait(self._protocol.data_to_send(), force=True)
            if self._close_message is None:
                self._close_message = {"type": "close", "code": code}
                self._close_reason = reason
        await self.finish()

    async def finish(self):
        """Bring the connection to its end whatever state it is in (called when the handler returns)."""
        if self._finished:
            return
        if self.accepted and self._protocol.state == OPEN and not self._transport.closed:
            await self.close()
            return
        await self._transport.flush()
        if self._protocol.failed:
            await self._transport.drain_input(1)
        elif self._protocol.state != CLOSED and not self._transport.closed:
            try:
                await asyncio.wait_for(self._await_client_close(), CLOSING_TIMEOUT_S)
            except asyncio.TimeoutError:
                pass
        self._finished = True
        await self._transport.close()

    async def _await_client_close(self):
        while self._protocol.state != CLOSED:
            try:
                data = await self._transport.read()
            except OSError:
                data = b""
            self._feed(data)
            if not data:
                return

    def abort(self):
        self._transport.abort()

# -- ConnectionManager: connected clients, named rooms, broadcast.
#
# Broadcast policy: a message is serialised and framed once, then handed to every member's send buffer
# without waiting for any of them. A member is too slow when its buffer holds more than the app's
# `send_buffer_limit` (default 1 MiB on CPython, 16 KiB on MicroPython) and its connection has taken no bytes
# for a second, or at once when the buffer reaches four times the limit; a too-slow or closed member is
# disconnected from the manager and its connection dropped. So one slow or dead client never delays or
# breaks delivery to the others, a burst that briefly passes the limit sheds nobody, and memory stays bounded.
class ConnectionManager:
    def __init__(self):
        self._connections = []  # insertion order = delivery order
        self._rooms = {}  # room name -> list of members
        self.shed = 0  # members dropped for being too slow or dead

    async def connect(self, ws, room=None):
        """Accept the WebSocket (if not yet accepted), register it, and optionally join `room`."""
        await ws.accept()
        if ws not in self._connections:
            self._connections.append(ws)
        if room is not None:
            self.join_room(ws, room)

    def disconnect(self, ws):
        """Forget `ws` and leave every room; calling it again does nothing."""
        if ws in self._connections:
            self._connections.remove(ws)
        for name in list(self._rooms):
            self.leave_room(ws, name)

    def join_room(self, ws, room):
        if ws not in self._connections:
            self._connections.append(ws)
        members = self._rooms.setdefault(room, [])
        if ws not in members:
            members.append(ws)

    def leave_room(self, ws, room):
        members = self._rooms.get(room)
        if members is None:
            return
        if ws in members:
            members.remove(ws)
        if not members:
            del self._rooms[room]  # empty rooms are dropped, as stats() promises

    def members(self, room=None):
        return list(self._connections if room is None else self._rooms.get(room, ()))

    async def broadcast_text(self, text, room=None):
        """Send `text` to every member (of `room`, or everyone); returns how many it was handed to."""
        return await self._broadcast(encode_frame(OP_TEXT, text.encode("utf-8")), room)

    async def broadcast_json(self, obj, room=None):
        return await self._broadcast(encode_frame(OP_TEXT, json.dumps(obj).encode("utf-8")), room)

    async def _broadcast(self, frame, room):
        delivered = 0
        dropped = []
        for ws in self.members(room):
            if ws.send_frame_nowait(frame):
                delivered += 1
            else:
                dropped.append(ws)
        for ws in dropped:
            self.disconnect(ws)
            ws.abort()
            self.shed += 1
        # One turn of the loop lets the members' writers move the frame on, so a publisher broadcasting in a
        # tight loop does not pile its whole burst into the buffers and get healthy members shed.
        await asyncio.sleep(0)
        return delivered

    def stats(self):
        return {
            "connections": len(self._connections),
            "rooms": dict((name, len(members)) for name, members in self._rooms.items()),
        }
