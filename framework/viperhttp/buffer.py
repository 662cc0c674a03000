# Incoming bytes for the sans-I/O parsers. Parsers are generators: they `yield` when they need more bytes and
# the owner feeds more and resumes them, so a parser never blocks and never touches a socket.


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
        return self._take(self._pos + n)

    def read_some(self, limit):
        """Between 1 and `limit` bytes: whatever has arrived."""
        while len(self._buf) == self._pos:
            if self.eof:
                raise EOFError("connection closed inside a frame")
            yield
        return self._take(min(len(self._buf), self._pos + limit))

    def _take(self, end):
        """The unread bytes up to `end`, consumed; once nothing is left unread the storage goes too, so an idle
        connection holds no copy of its last message."""
        data = bytes(memoryview(self._buf)[self._pos:end])  # one copy, not a slice and then a copy
        if end == len(self._buf):
            self._buf = bytearray()
            self._pos = 0
        else:
            self._pos = end
        return data

    def read_line(self, limit):
        """A line without its CRLF; LimitExceeded when none ends within `limit` bytes.

        The same bytes give the same lines however they are split across feeds: the scan resumes where it
        stopped, counted from the unread start (feed() may move that start to 0), and a line of exactly `limit`
        bytes is accepted whether its CR arrives with its LF or before it."""
        scanned = 0  # bytes after the unread start already searched for a CRLF
        while True:
            start = self._pos
            # bytes(...) because MicroPython's bytearray has no find(); headers are small
            end = bytes(self._buf[start + scanned:]).find(b"\r\n")
            if end >= 0:
                end += scanned
                if end > limit:
                    raise LimitExceeded()
                line = bytes(self._buf[start:start + end])
                self._pos = start + end + 2
                return line
            waiting = len(self._buf) - start
            if waiting > limit + 1 or (waiting == limit + 1 and self._buf[-1] != 0x0D):
                raise LimitExceeded()  # no CRLF can end this line within the limit any more
            if self.eof:
                raise EOFError("connection closed inside a line")
            scanned = waiting - 1 if waiting else 0  # a CR at the end may pair with the next LF
            yield
