"""The DUT app's protocol (docs/dut-app.md) served by the `websockets` library: the peer the reference is compared with.

`vhil serve --impl websockets` and the `host:websockets` target run this. It is a fair peer: broadcasts go through
`websockets.broadcast`, which frames each message once per member without awaiting anyone, exactly the path a
production `websockets` server would use.

Slow-member policy (the peer's own, documented in docs/load.md): `websockets.broadcast` has no backpressure, so before
each broadcast a member whose transport write buffer holds more than `SHED_WRITE_BUFFER_BYTES` is removed from every
room and its connection aborted. The recipient count in `ok pub ROOM N` counts only the members the message was
handed to.

Fault injection, for the load tests only (`python -m vhil_serve.peer_websockets --fault ...`): `drop:K` silently
skips every K-th delivery while still counting it in `ok pub`; `wrong-room:K` hands every K-th broadcast to the
members of another room instead of its own (still acknowledging the right count). Both speak correct WebSocket.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from dataclasses import dataclass, field
from typing import Iterable

import websockets
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

IMPL_NAME = "websockets-peer"
SERVER_HEADER = f"{IMPL_NAME}/{websockets.__version__}"
MAX_MESSAGE_SIZE = 16 * 1024 * 1024  # docs/dut-app.md: 16 MiB on CPython
SHED_WRITE_BUFFER_BYTES = 1024 * 1024
MQTT_PROTOCOLS = ("mqtt", "mqttv5")
DEFAULT_CHAT_ROOM = "general"


@dataclass
class Fault:
    """A deliberate misbehaviour of the broadcast path, used only to prove the load verdict catches it."""

    kind: str  # "drop" or "wrong-room"
    every: int
    counter: int = 0

    def tick(self) -> bool:
        self.counter += 1
        return self.counter % self.every == 0


def parse_fault(spec: str | None) -> Fault | None:
    if not spec:
        return None
    kind, _, every = spec.partition(":")
    if kind not in ("drop", "wrong-room") or not every.isdigit() or int(every) < 1:
        raise SystemExit(f"peer_websockets: bad --fault {spec!r}: use drop:K or wrong-room:K (K >= 1)")
    return Fault(kind, int(every))


@dataclass
class RoomRegistry:
    """The peer's connected clients and rooms, and broadcast to them (what the reference framework's
    ConnectionManager does, with its stats() shape), over websockets' connections."""

    fault: Fault | None = None
    connections: set[ServerConnection] = field(default_factory=set)
    rooms: dict[str, set[ServerConnection]] = field(default_factory=dict)

    def connect(self, conn: ServerConnection, room: str | None = None) -> None:
        self.connections.add(conn)
        if room is not None:
            self.join_room(conn, room)

    def join_room(self, conn: ServerConnection, room: str) -> None:
        self.rooms.setdefault(room, set()).add(conn)

    def leave_room(self, conn: ServerConnection, room: str) -> None:
        members = self.rooms.get(room)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.rooms[room]

    def disconnect(self, conn: ServerConnection) -> None:
        self.connections.discard(conn)
        for room in [name for name, members in self.rooms.items() if conn in members]:
            self.leave_room(conn, room)

    def _shed_slow(self, members: Iterable[ServerConnection]) -> list[ServerConnection]:
        """Members that can take the message now; the ones over the write-buffer limit are dropped and aborted."""
        ready = []
        for conn in members:
            transport = conn.transport
            if transport.get_write_buffer_size() > SHED_WRITE_BUFFER_BYTES:
                self.disconnect(conn)
                transport.abort()
            elif conn.state is websockets.protocol.State.OPEN:
                ready.append(conn)
        return ready

    def broadcast_text(self, text: str, room: str | None = None) -> int:
        members = self.connections if room is None else self.rooms.get(room, ())
        recipients = self._shed_slow(list(members))
        delivered_to = recipients
        if self.fault is not None and self.fault.kind == "drop":
            delivered_to = [conn for conn in recipients if not self.fault.tick()]
        elif self.fault is not None and self.fault.kind == "wrong-room" and self.fault.tick():
            others = [name for name in self.rooms if name != room]
            if others:
                delivered_to = list(self.rooms[others[0]])
        broadcast(delivered_to, text)
        return len(recipients)

    def stats(self) -> dict[str, object]:
        return {"connections": len(self.connections), "rooms": {name: len(m) for name, m in self.rooms.items() if m}}


class PeerApp:
    def __init__(self, fault: Fault | None = None) -> None:
        self.manager = RoomRegistry(fault=fault)

    # --- HTTP ---------------------------------------------------------------------------------------------------
    def _json(self, conn: ServerConnection, status: int, obj: object) -> Response:
        response = conn.respond(status, json.dumps(obj))
        del response.headers["Content-Type"]  # respond() labels its body text/plain
        response.headers["Content-Type"] = "application/json"
        return response

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path.startswith("/ws/") and path in self.WS_ROUTES:
            return None  # a WebSocket route: let the handshake proceed (websockets answers 426 to a plain GET)
        if path == "/health":
            return self._json(conn, 200, {"status": "ok", "impl": IMPL_NAME, "version": websockets.__version__,
                                          "platform": sys.platform, "max_message_size": MAX_MESSAGE_SIZE})
        if path == "/stats":
            return self._json(conn, 200, {**self.manager.stats(), "mem_free": None, "mem_alloc": None})
        return self._json(conn, 404, {"detail": "Not Found"})

    @staticmethod
    def select_subprotocol(conn: ServerConnection, offered: list[str]) -> str | None:
        if conn.request is None or conn.request.path.split("?", 1)[0] != "/ws/mqtt":
            return None
        return next((proto for proto in offered if proto in MQTT_PROTOCOLS), None)

    # --- WebSocket routes ---------------------------------------------------------------------------------------
    async def handler(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        path, _, query = conn.request.path.partition("?")
        await self.WS_ROUTES[path](self, conn, query)

    async def echo(self, conn: ServerConnection, query: str) -> None:
        async for message in conn:
            await conn.send("echo:" + message if isinstance(message, str) else message)

    async def plain_echo(self, conn: ServerConnection, query: str) -> None:
        async for message in conn:
            await conn.send(message)

    async def chat(self, conn: ServerConnection, query: str) -> None:
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        self.manager.connect(conn, room=params.get("room") or DEFAULT_CHAT_ROOM)
        try:
            async for message in conn:
                if isinstance(message, str):
                    self.manager.broadcast_text(json.dumps({"user": "anon", "text": message}),
                                                room=params.get("room") or DEFAULT_CHAT_ROOM)
        finally:
            self.manager.disconnect(conn)

    async def rooms(self, conn: ServerConnection, query: str) -> None:
        self.manager.connect(conn)
        try:
            async for message in conn:
                if isinstance(message, str):
                    await conn.send(self.command(conn, message))
        except ConnectionClosed:
            pass
        finally:
            self.manager.disconnect(conn)

    def command(self, conn: ServerConnection, line: str) -> str:
        verb, _, rest = line.partition(" ")
        if verb == "join" and rest and " " not in rest:
            self.manager.join_room(conn, rest)
            return f"ok join {rest}"
        if verb == "leave" and rest and " " not in rest:
            self.manager.leave_room(conn, rest)
            return f"ok leave {rest}"
        if verb == "pub":
            room, sep, payload = rest.partition(" ")
            if not room or not sep:
                return "err usage: pub ROOM PAYLOAD"
            return f"ok pub {room} {self.manager.broadcast_text(payload, room=room)}"
        if verb == "stats" and not rest:
            return "ok stats " + json.dumps(self.manager.stats())
        return f"err unknown command {verb!r}: use join ROOM, leave ROOM, pub ROOM PAYLOAD or stats"

    WS_ROUTES = {"/ws/echo": echo, "/ws/autobahn": plain_echo, "/ws/mqtt": plain_echo, "/ws/chat": chat,
                 "/ws/rooms": rooms}


async def _serve(host: str, port: int, fault: Fault | None) -> None:
    app = PeerApp(fault)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
    async with serve(app.handler, host, port, process_request=app.process_request,
                     select_subprotocol=app.select_subprotocol, subprotocols=list(MQTT_PROTOCOLS),
                     server_header=SERVER_HEADER, compression=None, max_size=MAX_MESSAGE_SIZE,
                     ping_interval=None) as server:
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        print(f"listening on http://{bound_host}:{bound_port}", flush=True)
        try:
            await stop
        except asyncio.CancelledError:
            pass


def run(host: str, port: int, fault: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM; prints `listening on http://HOST:PORT` once it accepts connections."""
    try:
        asyncio.run(_serve(host, port, parse_fault(fault)))
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vhil_serve.peer_websockets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fault", default=None, help="drop:K or wrong-room:K (load-test fault injection)")
    args = parser.parse_args(argv)
    run(args.host, args.port, args.fault)


if __name__ == "__main__":
    main()
