# CPython's forms of compat's primitives, never imported on MicroPython (whose heap would hold their code for
# nothing): C-speed unmasking, the codec's incremental UTF-8 decoder, a connection cap from the open-files limit,
# a listening server that takes bursts of connections.
import asyncio
import codecs

from viperhttp.utf8 import GATHER, Utf8Validator

_utf8_incremental = codecs.getincrementaldecoder("utf-8")
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
    if n >= TRANSLATE_MIN:
        # every 4th byte shares a mask byte: four C-speed translations instead of one big-integer round trip
        out = bytearray(data)
        for lane in range(4):
            out[lane::4] = data[lane::4].translate(_xor_table(mask[lane]))
        return bytes(out)
    key = (mask * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class TextDecoder:
    """utf8.TextDecoder's contract with the codec's incremental decoder doing the work. The codec defers judgement
    on an unfinished sequence (a lone `ED A0` for instance), so the few pending bytes it holds are checked by the
    validator, which fails as soon as they cannot be UTF-8."""

    def __init__(self):
        self._validator = Utf8Validator()
        self._decoder = _utf8_incremental("strict")
        self._parts = []
        self._runs = []

    def feed(self, data):
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError:
            raise ValueError("invalid UTF-8")
        parts = self._parts
        parts.append(text)
        if len(parts) >= GATHER:
            self._runs.append("".join(parts))
            self._parts = []
        pending = self._decoder.getstate()[0]
        if pending:
            self._validator.reset()
            if not self._validator.feed(pending):
                raise ValueError("invalid UTF-8")

    def finish(self):
        parts = self._runs + self._parts
        self._runs, self._parts = [], []
        try:
            parts.append(self._decoder.decode(b"", True))
        except UnicodeDecodeError:
            raise ValueError("message ends inside a UTF-8 sequence")
        finally:
            self._decoder.reset()
        return "".join(parts)


# asyncio accepts up to its `backlog` waiting connections in one loop turn and sets them up in the next, about
# 0.15 ms each (100 by default: turns of 15-19 ms while 500 clients connect at once, every other connection
# waiting), and that backlog is also the listen queue's length, so most of such a burst was dropped until its
# handshake was retried a second later. The server accepts fewer per turn from a longer queue.
ACCEPTS_PER_TURN = 16
LISTEN_BACKLOG = 1024


async def start_server(handle, host, port):
    """The listening asyncio server, and the port it bound (port 0 picks one)."""
    server = await asyncio.start_server(handle, host, port, backlog=ACCEPTS_PER_TURN)
    for listening in server.sockets:
        with listening.dup() as sock:  # the same socket: its queue is made longer, asyncio's accepts stay few
            sock.listen(LISTEN_BACKLOG)
    return server, server.sockets[0].getsockname()[1]


def default_max_connections():
    """What the open-files limit allows with a margin, at most 4096."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 1000
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(1, min(4096, soft - 64))


if hasattr(asyncio, "timeout"):  # Python 3.11+

    async def read_within(reader, size, timeout_s):
        """reader.read(size), or asyncio.TimeoutError after `timeout_s`: a timer on the running task, where
        wait_for would wrap every read in a task of its own."""
        async with asyncio.timeout(timeout_s):
            return await reader.read(size)

else:

    def read_within(reader, size, timeout_s):
        return asyncio.wait_for(reader.read(size), timeout_s)
