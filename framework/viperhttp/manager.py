# ConnectionManager: connected clients, named rooms, broadcast.
#
# Broadcast policy: a message is serialised and framed once, then handed to every member's send buffer
# without waiting for any of them. A member is too slow when its buffer holds more than the app's
# `send_buffer_limit` (default 1 MiB on CPython, 16 KiB on MicroPython) and its connection has taken no bytes
# for a second, or at once when the buffer reaches four times the limit; a too-slow or closed member is
# disconnected from the manager and its connection dropped. So one slow or dead client never delays or
# breaks delivery to the others, a burst that briefly passes the limit sheds nobody, and memory stays bounded.
import asyncio
import json

from viperhttp.protocol import OP_TEXT, encode_frame


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
            self._leave(ws, name)

    def join_room(self, ws, room):
        if ws not in self._connections:
            self._connections.append(ws)
        members = self._rooms.setdefault(room, [])
        if ws not in members:
            members.append(ws)

    def leave_room(self, ws, room):
        self._leave(ws, room)

    def _leave(self, ws, room):
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
