"""The same bytes give the same requests however they are split across reads: the parser alone (every split
point of known-bad examples) and the real server over a real socket (split requests and handshakes,
sequential keep-alive requests)."""
from __future__ import annotations

import socket
import time
from typing import Iterator

import pytest

from _apps import echo_app
from conftest import serve_in_thread
from sansio import parse_http_stream, split_at
from wsframes import HANDSHAKE, client_frame
from viperhttp.http import ByteBuffer
from viperhttp.protocol import OP_TEXT

# The example: a header line cut in two. Misread, `x-a` swallowed the rest of the head, the body came
# out empty and `hello` was left over as the next request.
SPLIT_HEADER = (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a", b"b\r\nContent-Length: 5\r\nX-Pad: p\r\n\r\nhello")


def test_a_header_line_cut_in_two_is_read_whole() -> None:
    assert parse_http_stream(SPLIT_HEADER) == [
        ("GET", "/health", "HTTP/1.1", [("content-length", "5"), ("host", "x"), ("x-a", "ab"), ("x-pad", "p")],
         b"hello"),
    ]


@pytest.mark.parametrize("stream", [
    b"".join(SPLIT_HEADER),
    HANDSHAKE,
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    b"\r\nGET /c?q=1 HTTP/1.0\r\n\r\n",
    b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["split-header", "handshake", "three-keep-alive", "body-looks-like-a-request"])
def test_every_split_point_and_one_byte_per_read_give_the_same_requests(stream: bytes) -> None:
    whole = parse_http_stream([stream])
    assert whole and whole[-1][0] != "error", whole
    for cut in range(1, len(stream)):
        assert parse_http_stream(split_at(stream, [cut])) == whole, cut
    assert parse_http_stream([stream[i:i + 1] for i in range(len(stream))]) == whole


def _read_line_in(reads: list[bytes], limit: int) -> bytes | str:
    buf = ByteBuffer()
    line = buf.read_line(limit)
    try:
        next(line)
        for data in reads:
            buf.feed(data)
            next(line)
        buf.feed_eof()
        next(line)
    except StopIteration as done:
        return "limit" if done.value is None else done.value
    except EOFError:
        return "eof"
    raise AssertionError("read_line neither returned nor failed")


@pytest.mark.parametrize("length, verdict", [(10, b"x" * 10), (11, "limit")])
def test_line_limit_holds_whether_cr_and_lf_arrive_together_or_apart(length: int, verdict: bytes | str) -> None:
    line = b"x" * length
    assert _read_line_in([line + b"\r\n"], 10) == verdict
    assert _read_line_in([line + b"\r", b"\n"], 10) == verdict
    assert _read_line_in([line, b"\r", b"\n"], 10) == verdict
    assert _read_line_in([bytes((b,)) for b in line + b"\r\n"], 10) == verdict


def test_a_bare_cr_at_the_limit_does_not_extend_it() -> None:
    assert _read_line_in([b"x" * 10 + b"\r", b"y\r\n"], 10) == "limit"


# -- the real server over a real socket ---------------------------------------------------------------------
@pytest.fixture
def echo_port() -> Iterator[int]:
    with serve_in_thread(echo_app()) as port:
        yield port


def read_response(sock: socket.socket, upgrade: bool = False) -> tuple[int, bytes]:
    """One response with a Content-Length body: (status, body); after a 101 (`upgrade`), the body is whatever
    WebSocket bytes came with the head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response: %r" % data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if upgrade:
        return int(head.split(b" ", 2)[1]), body
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        body += chunk
    assert len(body) == length, "bytes after the response: %r" % body[length:]
    return int(head.split(b" ", 2)[1]), body


def nothing_more(sock: socket.socket, wait_s: float = 0.3) -> bool:
    sock.settimeout(wait_s)
    try:
        return sock.recv(65536) == b""  # closed by the server, or...
    except socket.timeout:
        return True  # ...silent: no second response either way


def test_split_request_gets_one_answer_over_a_socket(echo_port: int) -> None:
    with socket.create_connection(("127.0.0.1", echo_port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nX-A: a")
        time.sleep(0.1)
        sock.sendall(b"b\r\nContent-Length: 5\r\nX-Pad: p\r\n\r\nhello")
        assert read_response(sock) == (200, b"hello")
        assert nothing_more(sock)


def test_a_body_that_looks_like_a_request_is_not_executed(echo_port: int) -> None:
    inner = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", echo_port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-")
        time.sleep(0.05)
        sock.sendall(b"Length: %d\r\n\r\n" % len(inner) + inner)
        assert read_response(sock) == (200, inner)
        assert nothing_more(sock)


def test_handshake_split_inside_a_header_name_is_answered(echo_port: int) -> None:
    cut = HANDSHAKE.index(b"Sec-WebSocket-Ver") + len(b"Sec-WebSocket-Ver")
    with socket.create_connection(("127.0.0.1", echo_port), timeout=5) as sock:
        sock.sendall(HANDSHAKE[:cut])
        time.sleep(0.3)
        sock.sendall(HANDSHAKE[cut:])
        started = time.monotonic()
        status, frames = read_response(sock, upgrade=True)
        assert status == 101
        assert time.monotonic() - started < 2  # unfixed, it waited for the 30 s idle timeout
        sock.sendall(client_frame(OP_TEXT, b"hi"))
        while len(frames) < 4:
            frames += sock.recv(64)
        assert frames.startswith(b"\x81\x02hi")


def test_sequential_keep_alive_requests_are_each_answered_at_once(echo_port: int) -> None:
    with socket.create_connection(("127.0.0.1", echo_port), timeout=5) as sock:
        for i in range(3):
            started = time.monotonic()
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock) == (200, b'{"status": "ok"}'), i
            # unfixed, every second request waited for the 30 s idle timeout; the 100 ms figure is measured
            # in benchmarks/robustness_figures.py, not asserted here
            assert time.monotonic() - started < 2, i
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nX-Longer: request\r\n\r\nbody")
        assert read_response(sock) == (200, b"body")

