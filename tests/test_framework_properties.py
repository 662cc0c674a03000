"""Properties: the same bytes give the same result however they are split across reads, down to one byte per
read. For the HTTP parser and the WebSocket protocol alone (sans-I/O), and for the real server over a real
TCP connection (responses, handshakes, WebSocket replies and close codes byte for byte)."""
from __future__ import annotations

import asyncio
import socket
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from _apps import echo_app
from sansio import parse_http_stream, run_websocket_stream
from strategies import bounded, client_frames, http_stream, reads_of
from wsframes import HANDSHAKE
from viperhttp.server import Server

@bounded(150)
@given(st.data())
def test_http_parser_gives_the_same_requests_however_the_stream_is_split(data: Any) -> None:
    stream = data.draw(http_stream(mutate=True))
    assert parse_http_stream(data.draw(reads_of(stream))) == parse_http_stream([stream])


@bounded(150)
@given(st.data())
def test_websocket_protocol_gives_the_same_events_replies_and_close_code_however_split(data: Any) -> None:
    stream = data.draw(client_frames())
    assert run_websocket_stream(data.draw(reads_of(stream)), 200) == run_websocket_stream([stream], 200)


# -- the real server over a real TCP connection --------------------------------------------------------------
APP = echo_app(max_message_size=200)


async def _exchange(reads: list[bytes]) -> bytes:
    """Everything the server sends back when the client sends `reads` one after another (each read by the
    server before the next is sent), then ends its side of the connection. Once the server has closed (after
    a closing handshake, say), the client stops sending: bytes after that are not part of any answer, and
    whether they meet a reset depends only on when they are sent."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=accepted)
    handler = asyncio.create_task(Server(APP).handle_connection(reader, writer))
    received = []

    async def receive() -> None:
        try:
            while True:
                data = await loop.sock_recv(client, 65536)
                if not data:
                    return
                received.append(data)
        except ConnectionResetError:
            return

    receiving = asyncio.create_task(receive())
    try:
        for data in reads:
            if handler.done():
                break
            try:
                await loop.sock_sendall(client, data)
            except (BrokenPipeError, ConnectionResetError):
                break
            for _ in range(4):  # the server's read of this piece happens within a few turns of the loop
                await asyncio.sleep(0)
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        await asyncio.wait_for(receiving, 10)
        await asyncio.wait_for(handler, 10)
    finally:
        client.close()
    return b"".join(received)


@bounded(60, fuzz_share=0.1)
@given(st.data())
def test_server_answers_requests_and_handshakes_the_same_however_split(data: Any) -> None:
    stream = data.draw(st.one_of(http_stream(mutate=True), st.sampled_from([HANDSHAKE])))
    if stream.startswith(HANDSHAKE):
        stream += data.draw(client_frames())
    reads = data.draw(reads_of(stream))
    whole = asyncio.run(_exchange([stream]))
    assert asyncio.run(_exchange(reads)) == whole

