# The one seam between runtimes. Everything else in viperhttp is the same code on CPython and MicroPython;
# here each primitive takes the fastest form the runtime offers, with a pure-Python fallback.
import sys

MICROPYTHON = sys.implementation.name == "micropython"

try:
    ConnectionError = ConnectionError  # the builtin, where the runtime has it
except NameError:  # MicroPython has none: the framework raises OSError itself (a class of ours costs heap)
    ConnectionError = OSError


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


def unmask_loop(data, mask, offset=0):
    """unmask_bytes as a byte loop: MicroPython's form (big-integer XOR would need three payload-sized
    temporaries on a board; this needs one)."""
    n = len(data)
    if not n:
        return b""
    shift = offset & 3
    if shift:
        mask = mask[shift:] + mask[:shift]
    out = bytearray(data)
    for i in range(n):
        out[i] ^= mask[i & 3]
    return bytes(out)


if MICROPYTHON:
    import asyncio  # loaded by the server anyway; read_within runs on every read

    def TextDecoder():
        """utf8.TextDecoder, loaded by the first text message or non-ASCII field: an app that gets neither never
        pays for the validator."""
        from viperhttp.utf8 import TextDecoder as validating_decoder

        return validating_decoder()

    unmask_bytes = unmask_loop

    def default_max_connections():
        """Connections served at once unless the app says otherwise: a board has a handful of sockets."""
        return 10

    def read_within(reader, size, timeout_s):
        """reader.read(size), or asyncio.TimeoutError after `timeout_s`."""
        return asyncio.wait_for(reader.read(size), timeout_s)

    async def start_server(handle, host, port):
        """The listening asyncio server, and its port (MicroPython binds the one it is given)."""
        return await asyncio.start_server(handle, host, port), port

else:
    from viperhttp.compat_cpython import (  # noqa: F401
        TextDecoder, default_max_connections, read_within, start_server, unmask_bytes,
    )


# -- the stream a connection handler is given: asyncio's (CPython) and MicroPython's differ in shape ---------
def stream_peer_gone(writer):
    """Has the stream seen the connection end (CPython's transport knows; elsewhere a write fails)?"""
    transport = getattr(writer, "transport", None)
    is_closing = getattr(transport, "is_closing", None)
    return is_closing is not None and is_closing()


def stream_backlog(writer):
    """Bytes the stream holds that the operating system has not taken; None where the stream cannot tell."""
    transport = getattr(writer, "transport", None)
    if transport is not None and hasattr(transport, "get_write_buffer_size"):
        return transport.get_write_buffer_size()  # CPython
    out_buf = getattr(writer, "out_buf", None)  # MicroPython's asyncio stream
    return None if out_buf is None else len(out_buf)


def abort_stream(writer):
    """Drop the connection at once, discarding what is unsent."""
    transport = getattr(writer, "transport", None)
    if transport is not None:
        transport.abort()  # CPython
        return
    sock = getattr(writer, "s", None)  # MicroPython's stream closes its socket only in wait_closed()
    if sock is not None:
        sock.close()


def end_stream_output(writer):
    """Send our end of stream (half-close) where the stream can (CPython's); elsewhere nothing."""
    if getattr(writer, "can_write_eof", None) is not None and writer.can_write_eof():
        writer.write_eof()


def decode_utf8(data):
    """Strict UTF-8 on both runtimes; ValueError if not. CPython's decoder is strict; MicroPython's lets
    surrogates through, so there anything beyond ASCII (the text is shorter than the bytes) goes to the
    validator too."""
    text = str(data, "utf-8")
    if not MICROPYTHON or len(text) == len(data):
        return text
    decoder = TextDecoder()
    decoder.feed(data)
    return decoder.finish()


def is_awaitable(obj):
    # MicroPython coroutines are generator objects without __await__
    return hasattr(obj, "__await__") or (MICROPYTHON and hasattr(obj, "send") and hasattr(obj, "throw"))


def describe_exception(exc):
    """One line naming the exception; MicroPython and CPython word tracebacks differently."""
    return "%s: %s" % (type(exc).__name__, exc)
