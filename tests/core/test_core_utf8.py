"""Strict UTF-8 (RFC 3629), whole and incremental, as compat provides it on each runtime. Runs on CPython and
inside the MicroPython VM, whose own bytes.decode lets surrogates through."""
import unittest

from viperhttp.compat import TextDecoder, decode_utf8
from viperhttp.utf8 import Utf8Validator

VALID = ("", "ascii", "κόσμε", "\u00e9\u4e2d", "\U0001f600", "\U0010ffff", "\ud7ff\ue000")
INVALID = {
    "overlong two-byte": b"\xc0\x80",
    "overlong three-byte": b"\xe0\x80\x80",
    "surrogate": b"\xed\xa0\x80",
    "past U+10FFFF": b"\xf4\x90\x80\x80",
    "lone continuation": b"\x80",
    "truncated sequence": b"\xe2\x82",
    "invalid lead byte": b"\xff",
    "sequence cut by ASCII": b"\xce\x41",
}


class DecodeUtf8(unittest.TestCase):
    def test_valid_text_decodes(self):
        for text in VALID:
            self.assertEqual(decode_utf8(text.encode("utf-8")), text)

    def test_invalid_sequences_are_refused(self):
        for name, data in INVALID.items():
            with self.assertRaises(ValueError, msg=name):
                decode_utf8(b"ok" + data)


class Incremental(unittest.TestCase):
    def test_a_sequence_split_across_fragments_decodes(self):
        data = "κόσμε \U0001f600".encode("utf-8")
        for cut in range(1, len(data)):
            decoder = TextDecoder()
            decoder.feed(data[:cut])
            decoder.feed(data[cut:])
            self.assertEqual(decoder.finish(), "κόσμε \U0001f600", "cut at %d" % cut)

    def test_invalid_input_fails_at_the_first_bad_byte_before_the_message_ends(self):
        decoder = TextDecoder()
        decoder.feed(b"valid ")
        with self.assertRaises(ValueError):
            decoder.feed(b"\xed\xa0")  # a surrogate is certain after two bytes

    def test_a_message_ending_inside_a_sequence_fails_at_finish(self):
        decoder = TextDecoder()
        decoder.feed(b"abc\xe2\x82")
        with self.assertRaises(ValueError):
            decoder.finish()

    def test_decoder_is_reusable_after_finish(self):
        decoder = TextDecoder()
        decoder.feed(b"one")
        self.assertEqual(decoder.finish(), "one")
        decoder.feed(b"two")
        self.assertEqual(decoder.finish(), "two")

    def test_validator_tracks_state_byte_by_byte(self):
        validator = Utf8Validator()
        for byte in "\U0001f600".encode("utf-8"):
            self.assertTrue(validator.feed(bytes((byte,))))
        self.assertTrue(validator.complete())
        self.assertFalse(validator.feed(b"\xf5"))
