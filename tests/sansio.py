"""Drive the framework's sans-I/O parsers the way the server does, from a list of reads, and describe what
they produced as plain data, so the same bytes split in different ways can be compared."""
from __future__ import annotations

from typing import Any, Generator, Iterable

from viperhttp.http import ByteBuffer, HTTPException, Limits, Request, parse_request_head, read_body
from viperhttp.protocol import WebSocketProtocol


def parse_request(buf: ByteBuffer, limits: Limits) -> Generator[None, None, Request | None]:
    """Generator: a request with its body, or None at a clean end of stream between requests; the head, then
    the body, as the server reads them (server.py runs the two with their own deadlines)."""
    request = yield from parse_request_head(buf, limits)
    if request is not None:
        yield from read_body(buf, request)
    return request


def parse_http_stream(reads: Iterable[bytes], limits: Limits | None = None) -> list[tuple[Any, ...]]:
    """Every request parsed from `reads` (then end of stream), as the server's loop parses them: each parser is
    started before the next read arrives. A request is (method, target, version, headers, body); a refusal
    ends the list as ("error", status)."""
    limits = limits or Limits()
    buf = ByteBuffer()
    pending = iter(reads)
    results: list[tuple[Any, ...]] = []
    while True:
        parser = parse_request(buf, limits)
        try:
            next(parser)
            while True:
                data = next(pending, None)
                if data is None:
                    buf.feed_eof()
                elif data:
                    buf.feed(data)
                next(parser)
        except StopIteration as done:
            request = done.value
        except HTTPException as exc:
            results.append(("error", exc.status))
            return results
        if request is None:
            return results
        results.append((request.method, request.target, request.version, sorted(request.headers.items()),
                        request.body))


def run_websocket_stream(reads: Iterable[bytes], max_message_size: int = 1 << 20,
                         **options: Any) -> tuple[list[tuple[Any, ...]], bytes, Any]:
    """Feed `reads` (then end of stream) to a WebSocketProtocol whose application takes every message at once;
    returns (events, every byte it wrote, its close code)."""
    protocol = WebSocketProtocol(max_message_size, **options)
    events: list[tuple[Any, ...]] = []
    output: list[bytes] = []

    def settle() -> None:
        while True:
            output.extend(protocol.data_to_send())
            taken = protocol.events_received()
            if not taken:
                return
            events.extend(taken)
            protocol.receive_data(b"")  # parsing paused until the application took the message

    for data in reads:
        if data:
            protocol.receive_data(data)
            settle()
    protocol.receive_eof()
    settle()
    return events, b"".join(output), protocol.close_code


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at the given offsets (any order, duplicates and out-of-range offsets ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    edges = [0] + points + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]
