# Incoming bytes for the sans-I/O parsers. Parsers are generators: they `yield` when they need more bytes and
# the owner feeds more and resumes them, so a parser never blocks and never touches a socket.


class NeedMoreData(Exception):
    pass


class LimitExceeded(Exception):
    pass


class ByteBuffer:
    def __init__(self):
        self._buf = bytearray()
        self._pos = 0
        self.eof = False

    def feed(self, data):
        if self._pos and self._pos >= len(self._buf) >> 1:
            # Compact only when at least half is consumed: amortised O(1) per byte even for huge frames.
            self._buf = self._buf[self._pos:]
            self._pos = 0
        self._buf += data

    def feed_eof(self):
        self.eof = True

    def available(self):
        return len(self._buf) - self._pos

    def take_rest(self):
        """Everything not consumed yet (bytes a client sent right after its request, say)."""
        rest = bytes(self._buf[self._pos:])
        self._buf = bytearray()
        self._pos = 0
        return rest

    def read_exact(self, n):
        while len(self._buf) - self._pos < n:
            if self.eof:
                raise EOFError("connection closed inside a frame")
            yield
        start = self._pos
        self._pos = start + n
        return bytes(memoryview(self._buf)[start:self._pos])  # one copy, not a slice and then a copy

    def read_some(self, limit):
        """Between 1 and `limit` bytes: whatever has arrived."""
        while len(self._buf) == self._pos:
            if self.eof:
                raise EOFError("connection closed inside a frame")
            yield
        start = self._pos
        self._pos = min(len(self._buf), start + limit)
        return bytes(memoryview(self._buf)[start:self._pos])

    def read_line(self, limit):
        """A line without its CRLF; LimitExceeded when none ends within `limit` bytes."""
        scanned = self._pos
        while True:
            # bytes(...) because MicroPython's bytearray has no find(); headers are small
            end = bytes(self._buf[scanned:]).find(b"\r\n")
            if end >= 0:
                end += scanned
                if end - self._pos > limit:
                    raise LimitExceeded()
                line = bytes(self._buf[self._pos:end])
                self._pos = end + 2
                return line
            if len(self._buf) - self._pos > limit:
                raise LimitExceeded()
            if self.eof:
                raise EOFError("connection closed inside a line")
            scanned = max(self._pos, len(self._buf) - 1)
            yield
