"""Hypothesis strategies for the framework's property and fuzz tests: HTTP request streams (well-formed,
slightly wrong and mutated), WebSocket client byte streams, and ways to split a byte string into reads."""
from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from sansio import split_at
from wsframes import client_frame

# `tox -e fuzz` sets this: that many examples per test, from a new random seed each run.
FUZZ_EXAMPLES = int(os.environ.get("VHIL_FUZZ_EXAMPLES", "0"))


def bounded(examples: int, fuzz_share: float = 1.0) -> settings:
    """`examples` deterministic examples (what `tox -e tests` runs), or `fuzz_share` of FUZZ_EXAMPLES random
    ones (a share below 1 for tests whose examples cost more, such as a TCP connection each)."""
    fuzz_examples = max(1, int(FUZZ_EXAMPLES * fuzz_share)) if FUZZ_EXAMPLES else 0
    return settings(max_examples=fuzz_examples or examples, derandomize=not FUZZ_EXAMPLES, deadline=None,
                    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Bytes that have a meaning somewhere in a request head, so mutations hit the parser's decisions.
SPECIAL_BYTES = b"\r\n\x00\t :;,+-_/?%#\x7f\x80\xc3\xff0123456789"

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
PATH_CHARS = "abcxyz0129-._~/%?=&+"


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], in_ten: int = 9) -> st.SearchStrategy[Any]:
    """`common` in `in_ten` draws out of ten, else `rare`: most requests must get past the request line for
    the properties to reach the headers and bodies."""
    return st.integers(0, 9).flatmap(lambda n: common if n < in_ten else rare)


known_names = st.sampled_from(["Host", "Content-Length", "Connection", "Upgrade", "Transfer-Encoding",
                               "Sec-WebSocket-Key", "Sec-WebSocket-Version", "X-A", "host", "CONTENT-LENGTH"])
known_values = st.sampled_from(["x", "5", "0", "+5", "5_0", "\u0665", "5, 5", "5, 6", "close", "keep-alive",
                                "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", "", " padded ",
                                "chunked", "a\x00b", "\xe9"])
headers = mostly(st.tuples(st.text(TCHARS, min_size=1, max_size=10), st.text(PRINTABLE, max_size=24)),
                 st.tuples(st.one_of(known_names, st.text(min_size=1, max_size=6)),
                           st.one_of(known_values, st.text(max_size=24))), 8)
targets = mostly(st.one_of(st.sampled_from(["/health", "/echo", "/ws/echo", "/", "*", "/a%20b?x=1&y=%zz", "/%ff"]),
                           st.text(PATH_CHARS, max_size=24).map(lambda t: "/" + t)),
                 st.text(min_size=1, max_size=24))
methods = mostly(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"]),
                 st.one_of(st.just("get"), st.text(max_size=6)))
versions = mostly(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]),
                  st.sampled_from(["HTTP/2.0", "HTTP/1.2", "HTTP/1.1 x", "http/1.1"]))


@st.composite
def http_request(draw: Any) -> bytes:
    method, target, version = draw(methods), draw(targets), draw(versions)
    fields = draw(st.lists(headers, max_size=6))
    body = draw(st.binary(max_size=40))
    if body or draw(st.booleans()):
        length = draw(mostly(st.just(str(len(body))), known_values))
        fields.insert(draw(st.integers(0, len(fields))), ("Content-Length", length))
    if version == "HTTP/1.1" and draw(st.integers(0, 9)) < 9:
        fields.insert(0, ("Host", "x"))  # most requests are valid enough to reach the body
    head = "%s %s %s\r\n" % (method, target, version) + "".join("%s: %s\r\n" % f for f in fields) + "\r\n"
    return head.encode("utf-8", "surrogatepass") + body


@st.composite
def mutated(draw: Any, base: bytes) -> bytes:
    """`base` with a few bytes replaced, inserted or deleted, often with a byte the parser cares about."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, len(data)))
        byte = draw(st.one_of(st.sampled_from(list(SPECIAL_BYTES)), st.integers(0, 255)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "insert" or not data or where == len(data):
            data.insert(where, byte)
        elif action == "replace":
            data[where] = byte
        else:
            del data[where]
    return bytes(data)


@st.composite
def http_stream(draw: Any, mutate: bool = False) -> bytes:
    """One to three requests on one connection, sometimes preceded by empty lines, sometimes mutated."""
    stream = draw(st.sampled_from([b"", b"\r\n"])) + b"".join(draw(st.lists(http_request(), min_size=1, max_size=3)))
    if mutate and draw(st.integers(0, 3)) == 0:
        stream = draw(mutated(stream))
    return stream


def utf8_text(max_size: int = 12) -> st.SearchStrategy[bytes]:
    return st.text(max_size=max_size).map(lambda t: t.encode("utf-8", "surrogatepass"))


@st.composite
def client_frames(draw: Any) -> bytes:
    """A client byte stream: data messages (some fragmented), pings, pongs, a close, and the odd broken frame."""
    out = []
    mask = b"\x37\xfa\x21\x3d"
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["text", "binary", "fragmented", "ping", "pong", "close", "broken"]))
        if kind in ("text", "binary"):
            payload = draw(utf8_text() if kind == "text" else st.binary(max_size=140))
            out.append(client_frame(1 if kind == "text" else 2, payload, mask=mask))
        elif kind == "fragmented":
            parts = draw(st.lists(utf8_text(4), min_size=2, max_size=4))
            for i, part in enumerate(parts):
                if draw(st.integers(0, 3)) == 0:
                    out.append(client_frame(9, b"p", mask=mask))  # a ping between fragments is allowed
                out.append(client_frame(1 if i == 0 else 0, part, fin=i == len(parts) - 1, mask=mask))
        elif kind in ("ping", "pong"):
            out.append(client_frame(9 if kind == "ping" else 10, draw(st.binary(max_size=20)), mask=mask))
        elif kind == "close":
            code = draw(st.sampled_from([None, 1000, 1001, 1005, 999, 3000, 4999, 5000]))
            payload = b"" if code is None else code.to_bytes(2, "big") + draw(st.sampled_from([b"", b"bye", b"\xff"]))
            out.append(client_frame(8, payload, mask=mask))
        else:
            out.append(client_frame(draw(st.integers(0, 15)), draw(st.binary(max_size=130)),
                                    fin=draw(st.booleans()), rsv=draw(st.sampled_from([0, 0, 1, 4])),
                                    masked=draw(st.booleans()), length_bytes=draw(st.sampled_from([None, 2, 8])),
                                    mask=mask))
    return b"".join(out)


@st.composite
def reads_of(draw: Any, data: bytes) -> list[bytes]:
    """`data` as a list of reads: cut at random offsets, or one byte per read."""
    if len(data) > 1 and draw(st.integers(0, 4)) == 0:
        return [data[i:i + 1] for i in range(len(data))]
    return split_at(data, draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=12)))
