"""The sans-I/O WebSocket core, unit by unit: every malformed input class gets its exact close code."""
from __future__ import annotations

import pytest

from viperhttp import compat, compat_cpython, utf8
from viperhttp import protocol as protocol_module
from viperhttp.protocol import (
    BINARY, CLOSE, CLOSED, CLOSING, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, OPEN, TEXT,
    WebSocketProtocol, encode_frame,
)
from wsframes import client_frame, close_payload, feed, sent


def closed_with(protocol: WebSocketProtocol, code: int) -> None:
    frames = sent(protocol)
    assert frames[-1][0] == OP_CLOSE
    assert int.from_bytes(frames[-1][2][:2], "big") == code
    assert protocol.state == CLOSED and protocol.failed


# -- well-formed traffic ------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300_000])
def test_text_and_binary_messages_of_every_length_form(size: int) -> None:
    protocol = WebSocketProtocol()
    text = "x" * size
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    events = feed(protocol, client_frame(OP_TEXT, text.encode()), client_frame(OP_BINARY, data))
    assert events == [(TEXT, text), (BINARY, data)]


def test_sixteen_bit_length_form_for_a_short_payload_is_accepted() -> None:
    events = feed(WebSocketProtocol(), client_frame(OP_TEXT, b"hi", length_bytes=8))
    assert events == [(TEXT, "hi")]


def test_fragmented_message_with_interleaved_ping_is_assembled_and_ping_answered_first() -> None:
    protocol = WebSocketProtocol()
    events = feed(protocol, client_frame(OP_TEXT, "κόσ".encode()[:3], fin=False), client_frame(OP_PING, b"p"),
                  client_frame(OP_CONTINUATION, "κόσ".encode()[3:], fin=False), client_frame(OP_CONTINUATION, b"!"))
    assert events == [(TEXT, "κόσ!")]
    assert sent(protocol) == [(OP_PONG, True, b"p")]


def test_bytes_arriving_one_at_a_time_parse_the_same() -> None:
    protocol = WebSocketProtocol()
    stream = client_frame(OP_TEXT, b"hello") + client_frame(OP_BINARY, b"\x00\x01" * 100)
    events: list[tuple] = []
    for i in range(len(stream)):
        protocol.receive_data(stream[i:i + 1])
        events += protocol.events_received()
    protocol.receive_data(b"")
    events += protocol.events_received()
    assert events == [(TEXT, "hello"), (BINARY, b"\x00\x01" * 100)]


def test_ping_answered_with_same_payload_and_unsolicited_pong_ignored() -> None:
    protocol = WebSocketProtocol()
    assert feed(protocol, client_frame(OP_PONG, b"unsolicited"), client_frame(OP_PING, b"x" * 125)) == []
    assert sent(protocol) == [(OP_PONG, True, b"x" * 125)]


def test_parsing_pauses_after_each_message_so_replies_keep_frame_order() -> None:
    protocol = WebSocketProtocol()
    protocol.receive_data(client_frame(OP_TEXT, b"first") + client_frame(OP_TEXT, b"bad", rsv=1))
    assert protocol.events_received() == [(TEXT, "first")]
    assert protocol.data_to_send() == []  # the failure is not seen before the application replies
    protocol.send_text("echo")
    protocol.receive_data(b"")
    frames = sent(protocol)
    assert [f[0] for f in frames] == [OP_TEXT, OP_CLOSE]


# -- close handshake ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999])
def test_valid_close_codes_are_echoed(code: int) -> None:
    protocol = WebSocketProtocol()
    assert feed(protocol, client_frame(OP_CLOSE, close_payload(code, b"bye"))) == [(CLOSE, code, "bye")]
    frames = sent(protocol)
    assert frames == [(OP_CLOSE, True, code.to_bytes(2, "big"))]
    assert protocol.state == CLOSED and not protocol.failed


def test_close_without_code_reports_1005_and_is_answered_1000() -> None:
    protocol = WebSocketProtocol()
    assert feed(protocol, client_frame(OP_CLOSE)) == [(CLOSE, 1005, "")]
    assert sent(protocol) == [(OP_CLOSE, True, (1000).to_bytes(2, "big"))]


def test_server_initiated_close_waits_for_the_client_and_discards_data_meanwhile() -> None:
    protocol = WebSocketProtocol()
    protocol.send_close(1001, "going")
    assert protocol.state == CLOSING
    assert sent(protocol) == [(OP_CLOSE, True, (1001).to_bytes(2, "big") + b"going")]
    events = feed(protocol, client_frame(OP_TEXT, b"late"), client_frame(OP_CLOSE, close_payload(1001)))
    assert events == []
    assert protocol.state == CLOSED and sent(protocol) == []


def test_end_of_stream_without_close_frame_reports_1006() -> None:
    protocol = WebSocketProtocol()
    protocol.receive_data(client_frame(OP_TEXT, b"partial")[:4])
    protocol.receive_eof()
    assert protocol.events_received() == [(CLOSE, 1006, "")]
    assert protocol.state == CLOSED


def test_after_close_further_bytes_are_ignored() -> None:
    protocol = WebSocketProtocol()
    feed(protocol, client_frame(OP_CLOSE, close_payload(1000)))
    protocol.data_to_send()
    assert feed(protocol, client_frame(OP_TEXT, b"ignored"), b"\xff\xff") == []
    assert protocol.data_to_send() == []


# -- each malformed input class and its close code ----------------------------------------------------------
MALFORMED = {
    "reserved bit 1": (client_frame(OP_TEXT, b"x", rsv=4), 1002),
    "reserved bit 2": (client_frame(OP_TEXT, b"x", rsv=2), 1002),
    "reserved bit 3": (client_frame(OP_BINARY, b"x", rsv=1), 1002),
    "unknown data opcode 3": (client_frame(3), 1002),
    "unknown control opcode 0xB": (client_frame(0xB), 1002),
    "unmasked client frame": (client_frame(OP_TEXT, b"x", masked=False), 1002),
    "fragmented ping": (client_frame(OP_PING, b"x", fin=False), 1002),
    "ping payload of 126 bytes": (client_frame(OP_PING, b"x" * 126), 1002),
    "close payload of 126 bytes": (client_frame(OP_CLOSE, close_payload(1000, b"r" * 124)), 1002),
    "continuation without a message": (client_frame(OP_CONTINUATION, b"x"), 1002),
    "new message inside a fragmented one": (client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_TEXT, b"b"), 1002),
    "64-bit length with top bit set": (bytes((0x82, 0xFF)) + (1 << 63).to_bytes(8, "big") + b"mask", 1002),
    "close payload of one byte": (client_frame(OP_CLOSE, b"\x03"), 1002),
    "close code 999": (client_frame(OP_CLOSE, close_payload(999)), 1002),
    "close code 1004": (client_frame(OP_CLOSE, close_payload(1004)), 1002),
    "close code 1005": (client_frame(OP_CLOSE, close_payload(1005)), 1002),
    "close code 1006": (client_frame(OP_CLOSE, close_payload(1006)), 1002),
    "close code 1015": (client_frame(OP_CLOSE, close_payload(1015)), 1002),
    "close code 2999": (client_frame(OP_CLOSE, close_payload(2999)), 1002),
    "close code 5000": (client_frame(OP_CLOSE, close_payload(5000)), 1002),
    "close reason not UTF-8": (client_frame(OP_CLOSE, close_payload(1000, b"\xff")), 1007),
    "invalid UTF-8 text": (client_frame(OP_TEXT, b"ok\xc0\xaf"), 1007),
    "UTF-8 surrogate": (client_frame(OP_TEXT, b"\xed\xa0\x80"), 1007),
    "code point past U+10FFFF": (client_frame(OP_TEXT, b"\xf4\x90\x80\x80"), 1007),
    "text ends inside a sequence": (client_frame(OP_TEXT, b"\xce"), 1007),
    "fragmented text ends inside a sequence": (client_frame(OP_TEXT, b"a\xe2", fin=False) + client_frame(OP_CONTINUATION, b"\x82"), 1007),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_input_fails_with_its_close_code(name: str) -> None:
    frame, code = MALFORMED[name]
    protocol = WebSocketProtocol()
    events = feed(protocol, frame)
    assert events[-1][0] == CLOSE and events[-1][1] == code
    closed_with(protocol, code)


def test_message_over_the_limit_fails_1009_from_the_header_alone() -> None:
    protocol = WebSocketProtocol(max_message_size=1000)
    header_only = client_frame(OP_BINARY, b"\x00" * 1001)[:8]  # header and mask, no payload yet
    protocol.receive_data(header_only)
    assert protocol.events_received() == [(CLOSE, 1009, "message over 1000 bytes")]
    closed_with(protocol, 1009)


def test_fragments_adding_up_past_the_limit_fail_1009() -> None:
    protocol = WebSocketProtocol(max_message_size=1000)
    feed(protocol, client_frame(OP_BINARY, b"\x00" * 600, fin=False), client_frame(OP_CONTINUATION, b"\x00" * 401))
    closed_with(protocol, 1009)


def test_a_message_exactly_at_the_limit_passes() -> None:
    assert feed(WebSocketProtocol(max_message_size=1000), client_frame(OP_BINARY, b"\x01" * 1000)) == [(BINARY, b"\x01" * 1000)]


def test_invalid_utf8_fails_before_the_rest_of_the_frame_arrives() -> None:
    protocol = WebSocketProtocol()
    frame = client_frame(OP_TEXT, "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"tail" * 1000)
    protocol.receive_data(frame[: 4 + 4 + 10 + 2])  # header, mask, 10 valid bytes and F4 90
    assert protocol.events_received() == [(CLOSE, 1007, "invalid UTF-8 in a text message")]
    closed_with(protocol, 1007)


# -- the portable fallbacks of the runtime seam, exercised on CPython --------------------------------------
@pytest.fixture
def micropython_seam(monkeypatch: pytest.MonkeyPatch):
    """The framework with MicroPython's forms of the runtime seam: the validator's TextDecoder and byte-loop
    unmasking (tests/test_core_in_vm.py runs them on MicroPython itself)."""
    for module in (compat, protocol_module):
        monkeypatch.setattr(module, "TextDecoder", utf8.TextDecoder)
    monkeypatch.setattr(protocol_module, "unmask_bytes", compat.unmask_loop)
    yield compat


@pytest.mark.parametrize("size", [1, 3, compat_cpython.TRANSLATE_MIN - 1, compat_cpython.TRANSLATE_MIN, compat_cpython.TRANSLATE_MIN + 3, 70001])
@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_unmask_paths_agree_with_the_definition(size: int, offset: int) -> None:
    data = bytes((i * 7 + 3) & 0xFF for i in range(size))
    mask = b"\x01\x82\x33\xf4"
    assert compat.unmask_bytes(data, mask, offset) == bytes(b ^ mask[(i + offset) % 4] for i, b in enumerate(data))


def test_fallback_unmask_matches_the_fast_path(micropython_seam) -> None:
    data = bytes(range(256)) * 5 + b"tail"
    expected = bytes(b ^ (b"\x11\x22\x33\x44"[(i + 3) % 4]) for i, b in enumerate(data))
    assert compat.unmask_loop(data, b"\x11\x22\x33\x44", 3) == expected


@pytest.mark.parametrize("name", [n for n in MALFORMED if "UTF-8" in n or "sequence" in n or "U+10FFFF" in n])
def test_fallback_text_decoder_fails_the_same_way(micropython_seam, name: str) -> None:
    frame, code = MALFORMED[name]
    protocol = WebSocketProtocol()
    assert feed(protocol, frame)[-1][1] == code


def test_fallback_decode_rejects_surrogates_in_a_close_reason(micropython_seam) -> None:
    protocol = WebSocketProtocol()
    feed(protocol, client_frame(OP_CLOSE, close_payload(1000, b"\xed\xa0\x80")))
    closed_with(protocol, 1007)


def test_fallback_text_decoder_decodes_valid_fragmented_text(micropython_seam) -> None:
    text = "ASCII, κόσμε, 日本語, 😀"
    raw = text.encode()
    frames = [client_frame(OP_TEXT if i == 0 else OP_CONTINUATION, raw[i:i + 1], fin=i == len(raw) - 1)
              for i in range(len(raw))]
    assert feed(WebSocketProtocol(), *frames) == [(TEXT, text)]


def test_validator_agrees_with_cpython_on_every_two_byte_prefix() -> None:
    for first in range(256):
        for second in range(256):
            data = bytes((first, second))
            validator = utf8.Utf8Validator()
            ok_prefix = validator.feed(data)
            try:
                data.decode("utf-8")
                valid = True
            except UnicodeDecodeError:
                valid = False
            if valid:
                assert ok_prefix and validator.complete(), data
            elif ok_prefix:
                assert not validator.complete(), data  # only an unfinished sequence may pass as a prefix


def test_server_frames_use_the_shortest_length_form() -> None:
    assert encode_frame(OP_TEXT, b"a" * 125)[0][:2] == bytes((0x81, 125))
    assert encode_frame(OP_TEXT, b"a" * 126)[0][:4] == bytes((0x81, 126, 0, 126))
    big = encode_frame(OP_BINARY, b"a" * 65536)
    assert big[0] == bytes((0x82, 127)) + (65536).to_bytes(8, "big") and big[1] == b"a" * 65536


def test_sending_after_close_raises() -> None:
    protocol = WebSocketProtocol()
    protocol.send_close()
    with pytest.raises(ConnectionError):
        protocol.send_text("late")
    assert protocol.state != OPEN
