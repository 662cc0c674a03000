"""The sans-I/O WebSocket protocol (RFC 6455 5-7): messages in, events and bytes out, and every violation's exact
close code. Runs on CPython and inside the MicroPython VM (where unmasking and UTF-8 take their own paths)."""
import unittest

from viperhttp.compat import ConnectionError, unmask_bytes  # MicroPython has no builtin one
from viperhttp.protocol import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    BINARY,
    CLOSE,
    CLOSED,
    CLOSING,
    TEXT,
    WebSocketProtocol,
)
from wsframes import client_frame, close_payload, feed, sent


# name -> (frames, close code); each frame is what a broken or hostile client might send
MALFORMED = {
    "reserved bit": ([client_frame(OP_TEXT, b"x", rsv=4)], 1002),
    "unknown opcode": ([client_frame(0x3, b"")], 1002),
    "unmasked frame": ([client_frame(OP_TEXT, b"x", masked=False)], 1002),
    "fragmented ping": ([client_frame(OP_PING, b"", fin=False)], 1002),
    "ping over 125 bytes": ([client_frame(OP_PING, b"p" * 126)], 1002),
    "continuation without a message": ([client_frame(OP_CONTINUATION, b"x")], 1002),
    "new message inside a fragmented one": ([client_frame(OP_TEXT, b"a", fin=False), client_frame(OP_TEXT, b"b")], 1002),
    "64-bit length with the top bit set": ([bytes((0x82, 0xFF)) + b"\x80" + bytes(7) + bytes(4)], 1002),
    "close payload of one byte": ([client_frame(OP_CLOSE, b"\x03")], 1002),
    "close code 1005 on the wire": ([client_frame(OP_CLOSE, close_payload(1005))], 1002),
    "close code 999": ([client_frame(OP_CLOSE, close_payload(999))], 1002),
    "close reason not UTF-8": ([client_frame(OP_CLOSE, close_payload(1000, b"\xed\xa0\x80"))], 1007),
    "invalid UTF-8 in text": ([client_frame(OP_TEXT, b"ok\xff")], 1007),
    "text ending inside a sequence": ([client_frame(OP_TEXT, b"\xe2\x82")], 1007),
    "UTF-8 surrogate across fragments": ([client_frame(OP_TEXT, b"\xed", fin=False),
                                          client_frame(OP_CONTINUATION, b"\xa0\x80")], 1007),
    "message over the limit": ([client_frame(OP_BINARY, b"b" * 1025)], 1009),
    "fragments adding up past the limit": ([client_frame(OP_BINARY, b"b" * 1000, fin=False),
                                            client_frame(OP_CONTINUATION, b"b" * 30)], 1009),
}


class Messages(unittest.TestCase):
    def test_text_and_binary_of_every_length_form(self):
        for size in (0, 125, 126, 65535, 65536, 70000):
            protocol = WebSocketProtocol()
            text = "x" * size
            data = bytes(i & 0xFF for i in range(size))
            events = feed(protocol, client_frame(OP_TEXT, text.encode()), client_frame(OP_BINARY, data))
            self.assertEqual(events, [(TEXT, text), (BINARY, data)], "size %d" % size)

    def test_sixteen_bit_length_form_for_a_short_payload(self):
        self.assertEqual(feed(WebSocketProtocol(), client_frame(OP_TEXT, b"hi", length_bytes=2)), [(TEXT, "hi")])

    def test_fragmented_message_with_a_ping_between_is_assembled_and_the_ping_answered(self):
        protocol = WebSocketProtocol()
        word = "κόσ".encode()
        events = feed(protocol, client_frame(OP_TEXT, word[:3], fin=False), client_frame(OP_PING, b"p"),
                      client_frame(OP_CONTINUATION, word[3:], fin=False), client_frame(OP_CONTINUATION, b"!"))
        self.assertEqual(events, [(TEXT, "κόσ!")])
        self.assertEqual(sent(protocol), [(OP_PONG, True, b"p")])

    def test_bytes_arriving_one_at_a_time_parse_the_same(self):
        protocol = WebSocketProtocol()
        data = client_frame(OP_TEXT, "κόσμε".encode()) + client_frame(OP_BINARY, b"\x00" * 300)
        events = []
        for i in range(len(data)):
            events.extend(feed(protocol, data[i:i + 1]))
        self.assertEqual(events, [(TEXT, "κόσμε"), (BINARY, b"\x00" * 300)])

    def test_one_message_per_take_so_replies_keep_the_clients_order(self):
        protocol = WebSocketProtocol()
        protocol.receive_data(client_frame(OP_TEXT, b"one") + client_frame(OP_PING, b"p") + client_frame(OP_TEXT, b"two"))
        self.assertEqual(protocol.events_received(), [(TEXT, "one")])
        self.assertEqual(sent(protocol), [])  # the ping after "one" is not answered before "one" is taken
        protocol.receive_data(b"")
        self.assertEqual(protocol.events_received(), [(TEXT, "two")])
        self.assertEqual(sent(protocol), [(OP_PONG, True, b"p")])

    def test_sending(self):
        protocol = WebSocketProtocol()
        protocol.send_text("h\u00e9")
        protocol.send_binary(b"\x01\x02")
        protocol.send_ping(b"x")
        self.assertEqual(sent(protocol), [(OP_TEXT, True, "h\u00e9".encode()), (OP_BINARY, True, b"\x01\x02"),
                                          (OP_PING, True, b"x")])


class Closing(unittest.TestCase):
    def test_client_close_is_echoed_and_reported(self):
        protocol = WebSocketProtocol()
        events = feed(protocol, client_frame(OP_CLOSE, close_payload(1001, b"bye")))
        self.assertEqual(events, [(CLOSE, 1001, "bye")])
        self.assertEqual(sent(protocol), [(OP_CLOSE, True, close_payload(1001))])
        self.assertEqual(protocol.state, CLOSED)
        self.assertFalse(protocol.failed)

    def test_close_without_a_code_is_answered_with_a_normal_closure(self):
        protocol = WebSocketProtocol()
        self.assertEqual(feed(protocol, client_frame(OP_CLOSE)), [(CLOSE, 1005, "")])
        self.assertEqual(sent(protocol), [(OP_CLOSE, True, close_payload(1000))])

    def test_server_close_then_the_clients_reply(self):
        protocol = WebSocketProtocol()
        protocol.send_close(1000, "done")
        self.assertEqual(protocol.state, CLOSING)
        self.assertEqual(sent(protocol), [(OP_CLOSE, True, close_payload(1000, b"done"))])
        feed(protocol, client_frame(OP_TEXT, b"late"), client_frame(OP_CLOSE, close_payload(1000)))
        self.assertEqual(protocol.state, CLOSED)
        self.assertEqual(sent(protocol), [])  # no second close frame, no echo of data after our close

    def test_end_of_stream_without_a_close_frame_is_1006(self):
        protocol = WebSocketProtocol()
        protocol.receive_data(client_frame(OP_TEXT, b"partial")[:4])
        protocol.receive_eof()
        self.assertEqual(protocol.events_received(), [(CLOSE, 1006, "")])
        self.assertEqual(protocol.state, CLOSED)

    def test_sending_after_close_raises(self):
        protocol = WebSocketProtocol()
        protocol.send_close()
        with self.assertRaises(ConnectionError):
            protocol.send_text("late")

    def test_bytes_after_the_close_handshake_mean_nothing(self):
        protocol = WebSocketProtocol()
        feed(protocol, client_frame(OP_CLOSE, close_payload(1000)))
        sent(protocol)
        protocol.receive_data(client_frame(OP_TEXT, b"after"))
        self.assertEqual((protocol.events_received(), sent(protocol)), ([], []))


class Violations(unittest.TestCase):
    def test_each_violation_fails_the_connection_with_its_code(self):
        for name, (frames, code) in MALFORMED.items():
            protocol = WebSocketProtocol(max_message_size=1024)
            feed(protocol, *frames)
            frames_out = sent(protocol)
            self.assertTrue(frames_out and frames_out[-1][0] == OP_CLOSE, name)
            self.assertEqual(int.from_bytes(frames_out[-1][2][:2], "big"), code, name)
            self.assertEqual(protocol.state, CLOSED, name)
            self.assertTrue(protocol.failed, name)

    def test_invalid_utf8_fails_before_the_rest_of_the_frame_arrives(self):
        protocol = WebSocketProtocol()
        frame = client_frame(OP_TEXT, b"\xff" + b"x" * 1000)
        protocol.receive_data(frame[:20])
        self.assertTrue(protocol.failed)
        self.assertEqual(int.from_bytes(sent(protocol)[-1][2][:2], "big"), 1007)


class Unmasking(unittest.TestCase):
    def test_unmask_matches_a_byte_loop_at_every_offset(self):
        mask = b"\x12\x34\x56\x78"
        for size in (1, 3, 4095, 4096, 4099):
            data = bytes((i * 7) & 0xFF for i in range(size))
            for offset in range(4):
                expected = bytes(b ^ mask[(i + offset) % 4] for i, b in enumerate(data))
                self.assertEqual(unmask_bytes(data, mask, offset), expected, "size %d offset %d" % (size, offset))
        self.assertEqual(unmask_bytes(b"", mask), b"")
