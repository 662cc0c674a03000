"""A WebSocket client built for receive throughput (RFC 6455, client side, no extensions).

A per-frame `recv()` caps what one locust process can receive well below the broadcast rates a load run needs
(docs/load.md, "Generator capacity"); this client reads the socket in large chunks and parses every complete frame
in the buffer at once. Pings are answered, a close is answered and reported, fragmented messages
are reassembled. Plain blocking sockets: under locust they are gevent's (monkey-patched), elsewhere ordinary ones.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from typing import Iterable
from urllib.parse import urlsplit

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
READ_CHUNK = 256 * 1024
MAX_HANDSHAKE_BYTES = 16 * 1024


class WebSocketError(Exception):
    """Handshake refused or protocol violation by the server."""


class ConnectionClosedByServer(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed by server (code {code})")
        self.code = code


def mask_payload(data: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte key, done as one big-integer operation (fast in CPython for any size)."""
    n = len(data)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return header + key + mask_payload(payload, key)


class FastWebSocket:
    """One client connection. `receive()` returns every complete message that one socket read made available."""

    def __init__(self, url: str, timeout: float = 10.0, rcvbuf: int | None = None,
                 subprotocols: Iterable[str] = ()) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws":
            raise WebSocketError(f"only ws:// URLs are supported, got {url!r}")
        self.url = url
        self.closed = False
        self.close_code: int | None = None
        self._buf = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the advertised window stays small (a slow client)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            self.sock = sock
            self.subprotocol = self._handshake(host, port, parts.path or "/", parts.query, list(subprotocols))
        except BaseException:
            sock.close()
            raise

    def _handshake(self, host: str, port: int, path: str, query: str, subprotocols: list[str]) -> str | None:
        key = base64.b64encode(os.urandom(16))
        target = path + ("?" + query if query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13"]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WebSocketError(f"{self.url}: connection closed during the handshake")
            self._buf += chunk
            if len(self._buf) > MAX_HANDSHAKE_BYTES:
                raise WebSocketError(f"{self.url}: handshake response too large")
        head, _, rest = bytes(self._buf).partition(b"\r\n\r\n")
        self._buf = bytearray(rest)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        if status_line.split(" ", 2)[1:2] != ["101"]:
            raise WebSocketError(f"{self.url}: handshake refused: {status_line}")
        headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
        expected = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise WebSocketError(f"{self.url}: bad Sec-WebSocket-Accept")
        return headers.get("sec-websocket-protocol")

    # --- sending ----------------------------------------------------------------------------------------------
    def send_text(self, text: str) -> None:
        self.sock.sendall(encode_frame(OP_TEXT, text.encode()))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(encode_frame(OP_BINARY, data))

    def close(self, code: int = 1000) -> None:
        """Send a close frame (if still open) and release the socket; does not wait for the server's answer."""
        if not self.closed:
            self.closed = True
            try:
                self.sock.sendall(encode_frame(OP_CLOSE, struct.pack("!H", code)))
            except OSError:
                pass
        self.sock.close()

    # --- receiving --------------------------------------------------------------------------------------------
    def receive(self) -> list[tuple[int, bytes]]:
        """Block for one socket read; return every complete data message in the buffer as (opcode, payload).

        Raises ConnectionClosedByServer on a close frame or EOF (after returning nothing further), socket.timeout
        when the read timed out (the caller decides whether to keep waiting).
        """
        if self.closed:
            raise ConnectionClosedByServer(self.close_code)
        chunk = self.sock.recv(READ_CHUNK)
        if not chunk:
            self.closed = True
            raise ConnectionClosedByServer(self.close_code)
        buf = self._buf
        buf += chunk
        messages: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, header = b1 & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                length, header = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if b1 & 0x80:
                raise WebSocketError(f"{self.url}: server sent a masked frame")
            frame_end = pos + header + length
            if frame_end > end:
                break
            payload = bytes(buf[pos + header:frame_end])
            pos = frame_end
            opcode = b0 & 0x0F
            if opcode >= OP_CLOSE:
                self._control(opcode, payload)
                if self.closed:
                    break
            elif b0 & 0x80 and opcode:
                messages.append((opcode, payload))
            else:  # a fragment: first (opcode set, FIN clear), middle or last (continuation)
                if opcode:
                    self._fragment_opcode = opcode
                self._fragments.append(payload)
                if b0 & 0x80:
                    messages.append((self._fragment_opcode, b"".join(self._fragments)))
                    self._fragments = []
        del buf[:pos]
        if self.closed and not messages:
            raise ConnectionClosedByServer(self.close_code)
        return messages

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self.sock.sendall(encode_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            try:
                self.sock.sendall(encode_frame(OP_CLOSE, payload[:2]))
            except OSError:
                pass
            self.closed = True
