"""Frame encoding and the close payload (RFC 6455 5.2, 5.5.1, 7.4). Runs on CPython (pytest) and inside the
MicroPython VM (tests/test_core_in_vm.py): unittest only, nothing either runtime lacks."""
import unittest

from viperhttp.protocol import (
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    ProtocolError,
    check_close,
    encode_close,
    encode_frame,
    parse_close,
)
from wsframes import parse_server_frames


class EncodeFrame(unittest.TestCase):
    def test_every_length_form_round_trips(self):
        for size in (0, 1, 125, 126, 4096, 4097, 65535, 65536, 70000):
            payload = bytes(i & 0xFF for i in range(size))
            encoded = b"".join(encode_frame(OP_BINARY, payload))
            self.assertEqual(parse_server_frames(encoded), [(OP_BINARY, True, payload)], "size %d" % size)

    def test_header_uses_the_shortest_length_form(self):
        self.assertEqual(len(b"".join(encode_frame(OP_TEXT, b"x" * 125))), 2 + 125)
        self.assertEqual(len(b"".join(encode_frame(OP_TEXT, b"x" * 126))), 4 + 126)
        self.assertEqual(len(b"".join(encode_frame(OP_TEXT, b"x" * 65536))), 10 + 65536)

    def test_fin_bit_and_opcode(self):
        self.assertEqual(encode_frame(OP_TEXT, b"a", fin=False)[0][0], OP_TEXT)
        self.assertEqual(encode_frame(OP_CLOSE, b"")[0][0], 0x80 | OP_CLOSE)

    def test_large_payload_is_not_copied_behind_its_header(self):
        payload = b"y" * 10000
        chunks = encode_frame(OP_BINARY, payload)
        self.assertEqual(len(chunks), 2)
        self.assertIs(chunks[1], payload)


ALLOWED_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999)
NEVER_SENT_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535)


class ClosePayload(unittest.TestCase):
    def assert_rejected(self, close_code, check, *args):
        with self.assertRaises(ProtocolError) as caught:
            check(*args)
        self.assertEqual(caught.exception.code, close_code, args)

    def test_codes_allowed_on_the_wire(self):
        for code in ALLOWED_CODES:
            check_close(code)
            self.assertEqual(parse_close(code.to_bytes(2, "big")), (code, ""))

    def test_codes_never_sent_are_a_protocol_error(self):
        for code in NEVER_SENT_CODES:
            self.assert_rejected(1002, check_close, code)
            self.assert_rejected(1002, parse_close, code.to_bytes(2, "big") + b"why")

    def test_encode_then_parse_round_trips(self):
        for code, reason in ((1000, ""), (1001, "bye"), (4999, "caf\u00e9 \u2603"), (3000, "r" * 123)):
            self.assertEqual(parse_close(encode_close(code, reason)), (code, reason))

    def test_empty_payload_is_no_status(self):
        self.assertEqual(parse_close(b""), (1005, ""))

    def test_one_byte_payload_is_a_protocol_error(self):
        self.assert_rejected(1002, parse_close, b"\x03")

    def test_reason_not_utf8_is_invalid_data(self):
        for reason in (b"\xff", b"ok\xc3", b"\xed\xa0\x80"):  # a stray byte, a cut sequence, a surrogate
            self.assert_rejected(1007, parse_close, b"\x03\xe8" + reason)

    def test_close_payload_is_code_then_reason_cut_to_the_control_limit(self):
        self.assertEqual(encode_close(1000, "bye"), b"\x03\xe8bye")
        self.assertEqual(encode_close(None), b"")
        self.assertEqual(len(encode_close(1000, "r" * 300)), 125)

    def test_a_reason_cut_to_the_limit_stays_utf8(self):
        for prefix in ("", "r", "rr", "rrr"):  # the cut falls inside a 2-, 3- or 4-byte character, or after it
            for char in ("\u00e9", "\u20ac", "\U0001f600"):
                payload = encode_close(1001, prefix + char * 100)
                self.assertTrue(len(payload) <= 125)
                code, reason = parse_close(payload)  # raises 1007 if the cut split a character
                self.assertEqual((code, reason), (1001, (prefix + char * 100)[:len(reason)]))
