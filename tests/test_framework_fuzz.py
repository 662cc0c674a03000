"""Fuzzing the HTTP request parser (with the handshake check) and the WebSocket protocol: whatever bytes
arrive, split however, nothing but the framework's own errors comes out, what the protocol writes is
well-formed, and no call takes longer than CALL_BOUND_S.

`tox -e tests` runs a bounded, deterministic sample; `tox -e fuzz` sets VHIL_FUZZ_EXAMPLES (and a random
seed each run) to search far wider."""
from __future__ import annotations

import time
from functools import partial
from typing import Any, Callable

from hypothesis import given
from hypothesis import strategies as st

from sansio import parse_http_stream, parse_request, run_websocket_stream
from strategies import bounded, client_frames, http_request, http_stream, mutated, reads_of
from viperhttp.http import ByteBuffer, HTTPException, Limits, check_request
from wsframes import parse_server_frames

FUZZ = bounded(200)
# Generous for inputs of a few KiB (they take well under 10 ms): only a blow-up, quadratic or worse, passes it.
CALL_BOUND_S = 0.5
SMALL_LIMITS = Limits(max_request_line=256, max_header_line=512, max_headers=8, max_body=4096)


def timed(call: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - started
    assert elapsed < CALL_BOUND_S, "one call took %.3f s" % elapsed
    return result


@st.composite
def long_request(draw: Any) -> bytes:
    """A request with one field near or over the (small) limits, to catch work that grows faster than the input."""
    size = draw(st.sampled_from([250, 256, 257, 500, 512, 513, 4000, 4096, 4097]))
    where = draw(st.sampled_from(["target", "value", "body"]))
    if where == "target":
        return b"GET /" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    if where == "value":
        return b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"v" * size + b"\r\n\r\n"
    return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"b" * size


http_inputs = st.one_of(
    http_stream(mutate=True),
    st.binary(max_size=400),
    http_request().flatmap(lambda r: mutated(r)),
    long_request(),
)


@FUZZ
@given(st.data())
def test_http_parser_raises_only_http_errors_in_bounded_time(data: Any) -> None:
    stream = data.draw(http_inputs)
    reads = data.draw(reads_of(stream))
    for limits in (Limits(), SMALL_LIMITS):
        results = timed(partial(parse_http_stream, reads, limits))
        for result in results:
            if result[0] == "error":
                assert 400 <= result[1] <= 505
    # every request that parses gets a verdict from the handshake check: a key or an HTTPException, nothing else
    buf = ByteBuffer()
    buf.feed(stream)
    buf.feed_eof()
    request = None
    try:
        next(parse_request(buf, Limits()))
    except StopIteration as done:
        request = done.value
    except HTTPException:
        pass
    if request is not None:
        try:
            timed(partial(check_request, request))
        except HTTPException:
            pass


ws_inputs = st.one_of(client_frames(), st.binary(max_size=300), client_frames().flatmap(lambda f: mutated(f)))


@FUZZ
@given(st.data())
def test_websocket_protocol_never_raises_and_writes_well_formed_frames(data: Any) -> None:
    stream = data.draw(ws_inputs)
    reads = data.draw(reads_of(stream))
    max_size = data.draw(st.sampled_from([0, 5, 125, 1 << 20]))
    events, output, code = timed(partial(run_websocket_stream, reads, max_size, max_fragments=3))
    frames = parse_server_frames(output)
    assert sum(_frame_size(payload) for _, _, payload in frames) == len(output), "a partial or malformed frame"
    closes = [payload for opcode, _, payload in frames if opcode == 8]
    assert len(closes) <= 1
    if closes and closes[0]:
        sent_code = int.from_bytes(closes[0][:2], "big")
        assert 1000 <= sent_code <= 1003 or 1007 <= sent_code <= 1014 or 3000 <= sent_code <= 4999, sent_code
    assert code is not None  # the stream always ends: by a close frame, a failure or the end of stream (1006)
    assert events[-1][0] == "close" and all(event[0] != "close" for event in events[:-1]), events


def _frame_size(payload: bytes) -> int:
    n = len(payload)
    return 2 + n if n < 126 else 4 + n if n < 0x10000 else 10 + n
