# The one seam between runtimes. Everything else in viperhttp is the same code on CPython and MicroPython;
# here each primitive takes the fastest form the runtime offers, with a pure-Python fallback.
import sys

MICROPYTHON = sys.implementation.name == "micropython"

try:
    import codecs

    _utf8_incremental = codecs.getincrementaldecoder("utf-8")
except (ImportError, AttributeError):  # MicroPython has no codecs module
    _utf8_incremental = None

try:
    ConnectionError = ConnectionError  # the builtin, where the runtime has it
except NameError:  # MicroPython has none: the framework raises this one, an OSError as on CPython

    class ConnectionError(OSError):
        pass


try:
    from time import ticks_ms, ticks_diff  # MicroPython
except ImportError:
    from time import monotonic as _monotonic

    def ticks_ms():
        return int(_monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


try:
    from hashlib import sha1
except ImportError:  # some MicroPython builds (the WebAssembly port among them) leave SHA-1 out

    def sha1(data=b""):
        from viperhttp.sha1 import sha1 as pure_python  # loaded by the first handshake, only where needed

        return pure_python(data)


_XOR_TABLES = {}  # mask byte -> translation table XOR-ing every byte with it (CPython path, built on demand)
TRANSLATE_MIN = 4096  # below this, big-integer XOR is faster than four strided translations


def _xor_table(key):
    table = _XOR_TABLES.get(key)
    if table is None:
        table = _XOR_TABLES[key] = bytes(b ^ key for b in range(256))
    return table


def unmask_bytes(data, mask, offset=0):
    """XOR `data` with the 4-byte `mask`, as if `data` started `offset` bytes into the masked payload."""
    n = len(data)
    if not n:
        return b""
    shift = offset & 3
    if shift:
        mask = mask[shift:] + mask[:shift]
    if MICROPYTHON:
        # Big-integer XOR would need three payload-sized temporaries on a board; a byte loop needs one.
        out = bytearray(data)
        for i in range(n):
            out[i] ^= mask[i & 3]
        return bytes(out)
    if n >= TRANSLATE_MIN:
        # every 4th byte shares a mask byte: four C-speed translations instead of one big-integer round trip
        out = bytearray(data)
        for lane in range(4):
            out[lane::4] = data[lane::4].translate(_xor_table(mask[lane]))
        return bytes(out)
    key = (mask * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


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


GATHER = 32


class TextDecoder:
    """Decodes a text message fragment by fragment, failing fast (ValueError) on invalid UTF-8.

    On CPython the codec's incremental decoder does the work; it defers judgement on an unfinished sequence
    (a lone `ED A0` for instance), so the few pending bytes it holds are checked by the validator. MicroPython
    has no incremental decoder: the validator checks every byte and the whole message is decoded at the end.
    """

    def __init__(self):
        self._validator = Utf8Validator()
        self._decoder = _utf8_incremental("strict") if _utf8_incremental else None
        self._empty = b"" if self._decoder is None else ""
        self._parts = []  # the latest pieces (str, or bytes on MicroPython)
        self._runs = []  # earlier pieces, joined GATHER at a time: a message in many fragments costs no more

    def _gather(self, piece):
        parts = self._parts
        parts.append(piece)
        if len(parts) >= GATHER:
            self._runs.append(self._empty.join(parts))
            self._parts = []

    def feed(self, data):
        if self._decoder is None:
            if not self._validator.feed(data):
                raise ValueError("invalid UTF-8")
            self._gather(data)
            return
        try:
            self._gather(self._decoder.decode(data))
        except UnicodeDecodeError:
            raise ValueError("invalid UTF-8")
        pending = self._decoder.getstate()[0]
        if pending:
            self._validator.reset()
            if not self._validator.feed(pending):
                raise ValueError("invalid UTF-8")

    def finish(self):
        """The decoded message; ValueError if it ends inside a sequence."""
        parts = self._runs + self._parts
        self._runs, self._parts = [], []
        if self._decoder is None:
            if not self._validator.complete():
                raise ValueError("message ends inside a UTF-8 sequence")
            self._validator.reset()
            return b"".join(parts).decode("utf-8")
        try:
            parts.append(self._decoder.decode(b"", True))
        except UnicodeDecodeError:
            raise ValueError("message ends inside a UTF-8 sequence")
        finally:
            self._decoder.reset()
        return "".join(parts)


def decode_utf8(data):
    """Strict UTF-8 on both runtimes (MicroPython's bytes.decode lets surrogates through); ValueError if not."""
    decoder = TextDecoder()
    decoder.feed(data)
    return decoder.finish()


def is_awaitable(obj):
    # MicroPython coroutines are generator objects without __await__
    return hasattr(obj, "__await__") or (MICROPYTHON and hasattr(obj, "send") and hasattr(obj, "throw"))


def memory_info():
    """(free, allocated) heap bytes after a collection where the runtime tells them (MicroPython), else
    (None, None) at once: CPython's gc has no such figures, so collecting there would cost a full pass for
    nothing."""
    if not MICROPYTHON:
        return None, None
    import gc

    gc.collect()
    return gc.mem_free(), gc.mem_alloc()


def default_max_connections():
    """Connections served at once unless the app says otherwise: 10 on MicroPython (a board has a handful of
    sockets); on CPython what the open-files limit allows with a margin, at most 4096."""
    if MICROPYTHON:
        return 10
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 1000
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(1, min(4096, soft - 64))


def describe_exception(exc):
    """One line naming the exception; MicroPython and CPython word tracebacks differently."""
    return "%s: %s" % (type(exc).__name__, exc)
