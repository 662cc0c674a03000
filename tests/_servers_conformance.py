"""Servers that break one rule on purpose, for the conformance and contract tests. Each speaks real WebSocket/HTTP.

    python tests/_servers_conformance.py raw [--accept-invalid-utf8] [--ignore-rsv] [--die-after N] [--port P]
        A WebSocket echo server on raw asyncio (RFC 6455 framing, fragmentation, ping/pong, closing handshake),
        optionally skipping UTF-8 validation or reserved-bit checks, or exiting when handshake N+1 arrives.
    python tests/_servers_conformance.py dut --fault NAME
        The real DUT app (framework/dut/main.py) on the reference framework with one documented rule broken.

Both print `listening on http://127.0.0.1:PORT` once they accept connections (port 0: a free one).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
PROTOCOL_ERROR, INVALID_DATA = 1002, 1007
MAX_RAW_MESSAGE = 32 * 1024 * 1024


class ProtocolViolation(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
READY_TIMEOUT_S = 20.0


@contextmanager
def running(*args: str, script: Path = HERE) -> Iterator[Any]:
    """Start `python SCRIPT ARGS` (default: this file) and yield its ManagedProcess with `.port` set; always stopped."""
    from hil.probe import READY_LINE_PATTERN
    from hil.process import ManagedProcess

    server = ManagedProcess([sys.executable, str(script), *args], cwd=str(REPO))
    try:
        server.port = int(server.wait_for_line(READY_LINE_PATTERN, READY_TIMEOUT_S).group(2))
        yield server
    finally:
        server.stop()


def vhil(*args: str, timeout: float = 300.0, **options: Any) -> subprocess.CompletedProcess[str]:
    """Run the `vhil` CLI as users do (a wide terminal so rich does not wrap case names)."""
    env = {**os.environ, "COLUMNS": "200", **options.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "hil", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=str(REPO), env=env, **options)


# ---- raw asyncio WebSocket echo server ------------------------------------------------------------------------
class RawEchoServer:
    def __init__(self, accept_invalid_utf8: bool, ignore_rsv: bool, die_after: int | None, port: int = 0) -> None:
        self.port = port
        self.accept_invalid_utf8 = accept_invalid_utf8
        self.ignore_rsv = ignore_rsv
        self.die_after = die_after
        self.handshakes = 0

    @staticmethod
    def frame(opcode: int, payload: bytes) -> bytes:
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, length)
        elif length < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        return head + payload

    async def handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key")
        if key is None or headers.get("upgrade", "").lower() != "websocket":
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        self.handshakes += 1
        if self.die_after is not None and self.handshakes > self.die_after:
            os._exit(0)  # the fault: the server process dies mid-run
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\nServer: broken-raw/1\r\n\r\n").encode())
        return True

    async def read_frame(self, reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
        first, second = await reader.readexactly(2)
        if first & 0x70 and not self.ignore_rsv:
            raise ProtocolViolation(PROTOCOL_ERROR)
        fin, opcode, length = bool(first & 0x80), first & 0x0F, second & 0x7F
        if not second & 0x80:
            raise ProtocolViolation(PROTOCOL_ERROR)  # client frames must be masked
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        if opcode >= 8 and (length > 125 or not fin):
            raise ProtocolViolation(PROTOCOL_ERROR)
        if opcode not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG) or length > MAX_RAW_MESSAGE:
            raise ProtocolViolation(PROTOCOL_ERROR)
        mask = await reader.readexactly(4)
        data = bytearray(await reader.readexactly(length))
        for i in range(length):
            data[i] ^= mask[i % 4]
        return fin, opcode, bytes(data)

    @staticmethod
    def check_close(payload: bytes) -> None:
        """RFC 6455 7.4: a close payload is empty or a sendable code plus a UTF-8 reason."""
        if not payload:
            return
        if len(payload) == 1:
            raise ProtocolViolation(PROTOCOL_ERROR)
        (code,) = struct.unpack("!H", payload[:2])
        if not (code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999):
            raise ProtocolViolation(PROTOCOL_ERROR)
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation(INVALID_DATA) from None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not await self.handshake(reader, writer):
                return
            message_opcode, parts = None, []
            while True:
                try:
                    fin, opcode, data = await asyncio.wait_for(self.read_frame(reader), 120)
                    if opcode == OP_CLOSE:
                        self.check_close(data)
                        writer.write(self.frame(OP_CLOSE, data[:2]))
                        return
                    if opcode == OP_PING:
                        writer.write(self.frame(OP_PONG, data))
                        continue
                    if opcode == OP_PONG:
                        continue
                    if (opcode == OP_CONT) != (message_opcode is not None):
                        raise ProtocolViolation(PROTOCOL_ERROR)
                    message_opcode = message_opcode if opcode == OP_CONT else opcode
                    parts.append(data)
                    if fin:
                        message = b"".join(parts)
                        if message_opcode == OP_TEXT and not self.accept_invalid_utf8:
                            try:
                                message.decode("utf-8")
                            except UnicodeDecodeError:
                                raise ProtocolViolation(INVALID_DATA) from None
                        writer.write(self.frame(message_opcode, message))
                        message_opcode, parts = None, []
                except ProtocolViolation as violation:
                    writer.write(self.frame(OP_CLOSE, struct.pack("!H", violation.code)))
                    return
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def serve(self) -> None:
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        print(f"listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()


# ---- the real DUT app with one rule broken --------------------------------------------------------------------
def _route(app: Any, path: str) -> Any:
    return next(route for route in app.routes if route.path == path)


def _fault_echo_no_prefix(dut: Any) -> None:
    _route(dut.app, "/ws/echo").endpoint = dut.ws_autobahn


def _fault_echo_bytes_as_text(dut: Any) -> None:
    async def echo(ws: Any) -> None:
        await ws.accept()
        while (msg := await ws.receive())["type"] != "close":
            await ws.send_text("echo:" + msg["text"] if msg["type"] == "text" else msg["bytes"].decode("latin-1"))
    _route(dut.app, "/ws/echo").endpoint = echo


def _fault_close_code_going_away(dut: Any) -> None:
    import viperhttp.protocol as protocol

    original = protocol.encode_close
    protocol.encode_close = lambda code, reason="": original(1001, reason)


def _fault_subprotocol_none(dut: Any) -> None:
    import viperhttp.app as app_module

    app_module.choose_subprotocol = lambda request, supported: None


def _fault_subprotocol_first_offered(dut: Any) -> None:
    import viperhttp.app as app_module

    def choose(request: Any, supported: list[str]) -> str:
        offered = [p.strip() for p in request.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        return offered[0] if offered else "mqtt"
    app_module.choose_subprotocol = choose


def _chat_endpoint(dut: Any, deliver: Callable[[Any, Any, str, dict], Any]) -> None:
    async def chat(ws: Any) -> None:
        room = ws.query_params.get("room", "general")
        await dut.ws_manager.connect(ws, room=room)
        try:
            while (msg := await ws.receive())["type"] != "close":
                await deliver(dut, ws, room, {"user": "anon", "text": msg.get("text", "")})
        finally:
            dut.ws_manager.disconnect(ws)
    _route(dut.app, "/ws/chat").endpoint = chat


def _fault_chat_all_rooms(dut: Any) -> None:
    async def deliver(dut: Any, ws: Any, room: str, obj: dict) -> None:
        await dut.ws_manager.broadcast_json(obj)  # every connection, whatever its room
    _chat_endpoint(dut, deliver)


def _fault_chat_not_to_sender(dut: Any) -> None:
    async def deliver(dut: Any, ws: Any, room: str, obj: dict) -> None:
        for member in dut.ws_manager.members(room):
            if member is not ws:
                await member.send_text(json.dumps(obj))
    _chat_endpoint(dut, deliver)


def _rooms_command_wrapper(dut: Any, wrap: Callable[[Any, Any, str], Any]) -> None:
    import dut_commands  # the module main.py loads /ws/rooms' commands from (its folder is on sys.path)

    original = dut_commands.room_command

    async def command(ws_manager: Any, ws: Any, text: str) -> str:
        return await wrap(lambda ws, text: original(ws_manager, ws, text), ws, text)
    dut_commands.room_command = command


def _fault_rooms_leave_noop(dut: Any) -> None:
    async def wrap(original: Any, ws: Any, text: str) -> str:
        return f"ok leave {text[6:]}" if text.startswith("leave ") else await original(ws, text)
    _rooms_command_wrapper(dut, wrap)


def _fault_pub_count_off(dut: Any) -> None:
    async def wrap(original: Any, ws: Any, text: str) -> str:
        reply = await original(ws, text)
        if reply.startswith("ok pub "):
            head, _, count = reply.rpartition(" ")
            reply = f"{head} {int(count) + 1}"
        return reply
    _rooms_command_wrapper(dut, wrap)


def _rooms_endpoint(dut: Any, forget: Callable[[Any, dict], bool]) -> None:
    import dut_commands

    async def rooms(ws: Any) -> None:
        await dut.ws_manager.connect(ws)
        while (msg := await ws.receive())["type"] != "close":
            await ws.send_text(await dut_commands.room_command(dut.ws_manager, ws, msg["text"]))
        if forget(ws, msg):
            dut.ws_manager.disconnect(ws)
    _route(dut.app, "/ws/rooms").endpoint = rooms


def _fault_stats_keep_closed(dut: Any) -> None:
    _rooms_endpoint(dut, lambda ws, close: close.get("code") == 1006)  # only dropped connections are forgotten


def _fault_stats_keep_dropped(dut: Any) -> None:
    _rooms_endpoint(dut, lambda ws, close: close.get("code") != 1006)


def _fault_burst_drop_one(dut: Any) -> None:
    async def echo(ws: Any) -> None:
        await ws.accept()
        seen = 0
        while (msg := await ws.receive())["type"] != "close":
            seen += 1
            if seen != 500:
                await ws.send_text("echo:" + msg.get("text", ""))
    _route(dut.app, "/ws/echo").endpoint = echo


def _fault_limit_lower(dut: Any) -> None:
    dut.app.max_message_size = dut.max_message_size // 2  # /health still reports the documented limit


def _fault_limit_unenforced(dut: Any) -> None:
    dut.app.max_message_size = dut.max_message_size * 2


def _events_endpoint(dut: Any, chunks: Callable[[int], list[str]]) -> None:
    import viperhttp

    async def events(request: Any) -> Any:
        count = int(request.query_params.get("count", "3"))

        async def stream() -> Any:
            for chunk in chunks(count):
                yield chunk
        return viperhttp.StreamingResponse(stream(), media_type="text/event-stream")
    _route(dut.app, "/events").endpoint = events


def _fault_sse_no_blank_line(dut: Any) -> None:
    _events_endpoint(dut, lambda count: [f"event: tick\nid: {i}\ndata: {json.dumps({'n': i})}\n" for i in range(count)])


def _fault_sse_uncapped(dut: Any) -> None:
    _events_endpoint(dut, lambda count: [f"event: tick\nid: {i}\ndata: {json.dumps({'n': i})}\n\n" for i in range(count)])


def _openapi_filter(dut: Any, edit: Callable[[dict], None]) -> None:
    original = dut.app.openapi

    def openapi() -> dict:
        document = original()
        edit(document)
        return document
    dut.app.openapi = openapi


def _fault_openapi_no_events_query(dut: Any) -> None:
    _openapi_filter(dut, lambda doc: doc["paths"]["/events"]["get"].update(parameters=[]))


def _fault_receive_firmware_shape(dut: Any) -> None:
    import viperhttp.websocket as websocket

    original = websocket.WebSocket.receive

    async def receive(self: Any) -> dict:  # what ViperHTTP firmware's bridge hands out instead of the guide's dicts
        msg = await original(self)
        if msg["type"] == "text":
            return {"type": "message", "opcode": 1, "data": msg["text"].encode(), "text": msg["text"], "final": True}
        if msg["type"] == "bytes":
            return {"type": "message", "opcode": 2, "data": msg["bytes"], "final": True}
        return msg
    websocket.WebSocket.receive = receive


def _fault_openapi_no_protocols(dut: Any) -> None:
    _openapi_filter(dut, lambda doc: [entry.update(protocols=[]) for entry in doc["x-websocket"]])


def _fault_openapi_no_events_path(dut: Any) -> None:
    _openapi_filter(dut, lambda doc: doc["paths"].pop("/events"))


DUT_FAULTS: dict[str, Callable[[Any], None]] = {
    name[len("_fault_"):].replace("_", "-"): fn for name, fn in globals().items() if name.startswith("_fault_")
}


def serve_dut(fault: str) -> None:
    from vhil_serve.cli import load_dut_module

    dut = load_dut_module()
    DUT_FAULTS[fault](dut)
    try:
        dut.main(host="127.0.0.1", port=0)
    except KeyboardInterrupt:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="kind", required=True)
    raw = sub.add_parser("raw")
    raw.add_argument("--accept-invalid-utf8", action="store_true")
    raw.add_argument("--ignore-rsv", action="store_true")
    raw.add_argument("--die-after", type=int, default=None, metavar="N")
    raw.add_argument("--port", type=int, default=0, help="0: a free one (give one to keep a url: target's name across runs)")
    dut = sub.add_parser("dut")
    dut.add_argument("--fault", required=True, choices=sorted(DUT_FAULTS))
    args = parser.parse_args()
    if args.kind == "raw":
        try:
            asyncio.run(RawEchoServer(args.accept_invalid_utf8, args.ignore_rsv, args.die_after, args.port).serve())
        except KeyboardInterrupt:
            pass
    else:
        serve_dut(args.fault)


if __name__ == "__main__":
    sys.exit(main())
