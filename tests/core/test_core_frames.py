"""Frame encoding and close codes (RFC 6455 5.2, 7.4). Runs on CPython (pytest) and inside the MicroPython VM
(tests/test_core_in_vm.py): unittest only, nothing either runtime lacks."""
import unittest

from viperhttp.protocol import (
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    close_code_is_valid,
    encode_close_payload,
    encode_frame,
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


class CloseCodes(unittest.TestCase):
    def test_codes_allowed_on_the_wire(self):
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999):
            self.assertTrue(close_code_is_valid(code), code)

    def test_codes_never_sent(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535):
            self.assertFalse(close_code_is_valid(code), code)

    def test_close_payload_is_code_then_reason_cut_to_the_control_limit(self):
        self.assertEqual(encode_close_payload(1000, "bye"), b"\x03\xe8bye")
        self.assertEqual(encode_close_payload(None), b"")
        self.assertEqual(len(encode_close_payload(1000, "r" * 300)), 125)
