# Strict, incremental UTF-8 validation (RFC 3629) in pure Python: the TextDecoder MicroPython uses (it has no
# incremental decoder), and the validator CPython's codec-based TextDecoder (compat_cpython) checks its pending
# bytes with.

GATHER = 32


def _utf8_continuation_range(lead):
    """(count of continuation bytes, lowest and highest allowed first continuation byte) for a lead byte,
    or None when the byte cannot start a sequence (RFC 3629: no overlongs, surrogates or code points past U+10FFFF)."""
    if 0xC2 <= lead <= 0xDF:
        return 1, 0x80, 0xBF
    if lead == 0xE0:
        return 2, 0xA0, 0xBF
    if lead == 0xED:
        return 2, 0x80, 0x9F
    if 0xE1 <= lead <= 0xEF:
        return 2, 0x80, 0xBF
    if lead == 0xF0:
        return 3, 0x90, 0xBF
    if lead == 0xF4:
        return 3, 0x80, 0x8F
    if 0xF1 <= lead <= 0xF3:
        return 3, 0x80, 0xBF
    return None


class Utf8Validator:
    """Incremental UTF-8 validation that fails at the first byte that makes the input invalid."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.need = 0
        self.lo = 0x80
        self.hi = 0xBF

    def feed(self, data):
        """False as soon as `data` (continuing what came before) cannot be UTF-8."""
        need, lo, hi = self.need, self.lo, self.hi
        for byte in data:
            if need:
                if byte < lo or byte > hi:
                    return False
                need -= 1
                lo, hi = 0x80, 0xBF
            elif byte >= 0x80:
                expect = _utf8_continuation_range(byte)
                if expect is None:
                    return False
                need, lo, hi = expect
        self.need, self.lo, self.hi = need, lo, hi
        return True

    def complete(self):
        return self.need == 0


class TextDecoder:
    """Decodes a text message fragment by fragment, failing fast (ValueError) on invalid UTF-8: the validator
    checks every byte as it arrives and the whole message is decoded at the end."""

    def __init__(self):
        self._validator = Utf8Validator()
        self._parts = []  # the latest fragments
        self._runs = []  # earlier fragments, joined GATHER at a time: a message in many fragments costs no more

    def feed(self, data):
        if not self._validator.feed(data):
            raise ValueError("invalid UTF-8")
        parts = self._parts
        parts.append(data)
        if len(parts) >= GATHER:
            self._runs.append(b"".join(parts))
            self._parts = []

    def finish(self):
        """The decoded message; ValueError if it ends inside a sequence."""
        parts = self._runs + self._parts
        self._runs, self._parts = [], []
        if not self._validator.complete():
            raise ValueError("message ends inside a UTF-8 sequence")
        self._validator.reset()
        return b"".join(parts).decode("utf-8")
