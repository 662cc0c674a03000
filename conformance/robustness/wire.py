"""The robustness suite's client side: raw TCP connections whose bytes the suite splits and times itself.

Requests are plain bytes; responses are read with h11 (a strict sans-I/O HTTP/1.1 client) and the WebSocket
handshake and frames come from websockets' sans-I/O ClientProtocol, so the suite judges the target with real,
independent implementations of both protocols while deciding exactly how the bytes reach the wire.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass, field
from collections.abc import Iterable
from urllib.parse import urlsplit

import h11
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.http11 import Response
from websockets.uri import parse_uri

READ_SIZE = 65536


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @classmethod
    def of(cls, base_url: str) -> Endpoint:
        parts = urlsplit(base_url)
        return cls(parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80))

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}:{self.port}{path}"


class Connection:
    """One client TCP connection: asyncio streams plus the socket options the checks need."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout: float, receive_buffer: int | None = None) -> Connection:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # every piece leaves as its own segment
        if receive_buffer is not None:  # set before connecting, so the window the target sees is small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (endpoint.host, endpoint.port)), timeout)
            reader, writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        return cls(reader, writer)

    async def send(self, data: bytes, timeout: float) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), timeout)

    async def send_in_pieces(self, data: bytes, sizes: Iterable[int], gap_s: float, timeout: float) -> None:
        """`data` in pieces of the given sizes (cycled), `gap_s` apart, so each reaches the target in its own read."""
        sizes = list(sizes)
        offset, index = 0, 0
        while offset < len(data):
            size = sizes[index % len(sizes)]
            await self.send(data[offset:offset + size], timeout)
            offset += size
            index += 1
            if offset < len(data):
                await asyncio.sleep(gap_s)

    async def read(self, timeout: float) -> bytes:
        """Whatever arrives next; b"" at end of stream or reset (a reset is how a target ends a connection too)."""
        try:
            return await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0), as a client that crashed or lost power mid-transfer."""
        sock = self.writer.get_extra_info("socket")
        try:
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # already closed (by the target, say): nothing left to reset
        self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()


@dataclass
class Answer:
    """One HTTP response as the client saw it, or why there was none."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None  # "no answer within 5 s", "connection closed without an answer", "malformed: ..."
    seconds: float = 0.0

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no answer"
        body = self.body if len(self.body) <= 60 else self.body[:57] + b"..."
        return f"{self.status} {body!r}" + (f" then {self.error}" if self.error else "")


def request_data(state: h11.Connection, method: str, target: str, headers: list[tuple[str, str]],
                 body: bytes = b"") -> bytes:
    """One request framed by h11's client state machine `state` (which then expects its answer)."""
    all_headers = list(headers) + ([("Content-Length", str(len(body)))] if body else [])
    data = state.send(h11.Request(method=method, target=target, headers=all_headers)) or b""
    if body:
        data += state.send(h11.Data(data=body)) or b""
    return data + (state.send(h11.EndOfMessage()) or b"")


class HttpClient:
    """h11's client state machine over a Connection: any number of sequential requests, each answer read in full."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.h11 = h11.Connection(our_role=h11.CLIENT)

    def request_data(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
        """The bytes of one request; the caller decides how they reach the wire."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        return request_data(self.h11, method, target, headers, body)

    async def exchange(self, method: str, target: str, headers: list[tuple[str, str]], timeout: float) -> Answer:
        """Send one request in one write and read its answer."""
        started = time.monotonic()
        await self.connection.send(self.request_data(method, target, headers), timeout)
        answer = await self.read_answer(timeout)
        answer.seconds = time.monotonic() - started
        return answer

    async def unasked(self, timeout: float) -> bytes:
        """Bytes the target sends after the last answer, within `timeout` (none, from a correct target: another
        answer here means it read a request the client never sent). Closing, or keeping the connection open,
        is the target's choice and not reported: lingering closes make its timing vary."""
        extra, closed = self.h11.trailing_data
        deadline = time.monotonic() + timeout
        while not closed and len(extra) < 200:
            try:
                data = await self.connection.read(max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
            extra += data
            closed = not data
        return bytes(extra)

    async def read_answer(self, timeout: float) -> Answer:
        answer = Answer()
        deadline = time.monotonic() + timeout
        body = bytearray()
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                answer.error = f"malformed response: {exc}"
                return answer
            if event is h11.NEED_DATA:
                remaining = deadline - time.monotonic()
                try:
                    data = await self.connection.read(max(0.0, remaining))
                except asyncio.TimeoutError:
                    answer.error = f"no {'answer' if answer.status is None else 'end of body'} within {timeout:g} s"
                    return answer
                if not data and answer.status is None:
                    answer.error = "connection closed without an answer"
                    return answer
                self.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                answer.status = event.status_code
                answer.headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                answer.body = bytes(body)
                return answer

    @property
    def reusable(self) -> bool:
        """Whether the connection may carry another request (both sides done, neither said close)."""
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE


def opening_handshake(url: str) -> tuple[ClientProtocol, bytes]:
    """A client protocol that has sent its handshake request, and the request's bytes."""
    protocol = ClientProtocol(parse_uri(url), max_size=None)
    protocol.send_request(protocol.connect())
    return protocol, b"".join(protocol.data_to_send())


class WebSocketClient:
    """websockets' sans-I/O client over a Connection, so the handshake and frames can be split or withheld."""

    def __init__(self, connection: Connection, url: str) -> None:
        self.connection = connection
        self.protocol, self.handshake_bytes = opening_handshake(url)

    async def read_handshake(self, timeout: float) -> str | None:
        """None once the target's 101 is accepted; else what went wrong, in words."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.protocol.events_received():
                if isinstance(event, Response):
                    if self.protocol.handshake_exc is not None:
                        return f"handshake rejected: {self.protocol.handshake_exc} (status {event.status_code})"
                    return None
            try:
                data = await self.connection.read(max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return f"no handshake response within {timeout:g} s"
            if not data:
                return "connection closed before the handshake response"
            self.protocol.receive_data(data)

    async def send_frames(self, frames: Iterable[Frame], timeout: float) -> None:
        await self.connection.send(b"".join(frame.serialize(mask=True) for frame in frames), timeout)

    async def receive_frame(self, timeout: float) -> Frame | str:
        """The next data frame from the target, or what happened instead."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.protocol.events_received():
                if isinstance(event, Frame):
                    return event
            try:
                data = await self.connection.read(max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return f"no frame within {timeout:g} s"
            if not data:
                return "connection closed"
            self.protocol.receive_data(data)
