# MicroPython side of the Node bridge (runs inside the VM, never on CPython). Node owns the TCP sockets; each
# connection becomes one BridgeStream that serves as both the reader and the writer asyncio's streams would
# give `Server.handle_connection`. Bytes cross the boundary by address: Python hands Node the address of a
# buffer (uctypes.addressof) and Node copies to or from the VM's linear memory, while Python is paused in that
# call, so the garbage collector (which never moves objects) cannot invalidate it.
import asyncio
import gc
import sys
import time

import uctypes

import bridge_js  # registered by bridge.mjs: copy_into, write, congested, drained, closed, pause, resume, end, destroy

# Stop reading the socket while this much received data waits in the VM; a board's TCP window does the same.
RECEIVE_HIGH_WATER = 256 * 1024

_server = None


class BridgeStream:
    def __init__(self, conn_id, host, port):
        self.conn_id = conn_id
        self.peername = (host, port)
        self.transport = self  # server._abort_stream looks for `writer.transport.abort()` (CPython's shape)
        self._chunks = []
        self._buffered = 0
        self._eof = False
        self._closed = False
        self._paused = False
        self._readable = asyncio.Event()

    # -- called by Node -------------------------------------------------------------------------------------
    def feed(self, size):
        """Node has `size` received bytes for us: allocate, let Node copy them in, wake the reader."""
        chunk = bytearray(size)
        bridge_js.copy_into(self.conn_id, uctypes.addressof(chunk))
        self._chunks.append(chunk)
        self._buffered += size
        self._readable.set()
        if self._buffered > RECEIVE_HIGH_WATER and not self._paused:
            self._paused = True
            bridge_js.pause(self.conn_id)

    def feed_eof(self):
        self._eof = True
        self._readable.set()

    def connection_lost(self):
        self._closed = True
        self.feed_eof()

    # -- the reader -----------------------------------------------------------------------------------------
    async def read(self, n=-1):
        while not self._chunks and not self._eof:
            self._readable.clear()
            await self._readable.wait()
        if not self._chunks:
            return b""
        chunk = self._chunks[0]
        if 0 <= n < len(chunk):
            self._chunks[0] = chunk[n:]
            chunk = chunk[:n]
        else:
            self._chunks.pop(0)
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= RECEIVE_HIGH_WATER // 2 and not self._closed:
            self._paused = False
            bridge_js.resume(self.conn_id)
        return bytes(chunk)

    # -- the writer -----------------------------------------------------------------------------------------
    def write(self, data):
        if self._closed or not data:
            return
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)  # addressof needs a contiguous buffer
        bridge_js.write(self.conn_id, uctypes.addressof(data), len(data))

    async def drain(self):
        # Ask Node now rather than trusting write()'s verdict: a write the kernel took at once has already
        # left Node's buffer, and Node only delivers its "drain" event when the VM next yields to JavaScript,
        # which a busy VM may not do for a while (a board's asyncio, likewise, polls its sockets every round).
        while not self._closed and bridge_js.congested(self.conn_id):
            await bridge_js.drained(self.conn_id)
        if self._closed:
            raise OSError(104, "connection reset")  # what a closed socket's drain raises on a board (ECONNRESET)

    def get_extra_info(self, name, default=None):
        return self.peername if name == "peername" else default

    def close(self):
        if not self._closed:
            bridge_js.end(self.conn_id)  # flush what is queued, send FIN, then close

    async def wait_closed(self):
        if not self._closed:
            await bridge_js.closed(self.conn_id)

    def abort(self):
        if not self._closed:
            bridge_js.destroy(self.conn_id)


def serve(app_module_name):
    """Import the DUT app module (its `app` object) and build the one Server every connection goes through.
    Returns a line for the log: the runtime, and what importing the framework and app cost."""
    global _server
    gc.collect()
    heap_before, started = gc.mem_alloc(), time.ticks_ms()
    from viperhttp.compat import memory_info
    from viperhttp.server import Server

    _server = Server(__import__(app_module_name).app)
    import_ms = time.ticks_diff(time.ticks_ms(), started)
    free, allocated = memory_info()
    return "MicroPython %s on %s (%s); app import %d ms, %d bytes of heap; mem_free %d mem_alloc %d" % (
        ".".join(str(v) for v in sys.implementation.version[:3]), sys.platform, sys.implementation._machine,
        import_ms, allocated - heap_before, free, allocated)


def open_connection(conn_id, host, port):
    """A new TCP connection: its stream, and a task running the framework's connection handler on it."""
    stream = BridgeStream(conn_id, host, port)
    asyncio.create_task(_handle(stream))
    return stream


async def _handle(stream):
    try:
        await _server.handle_connection(stream, stream)
    except Exception as exc:  # handle_connection catches its own; anything here is a bridge bug: say so
        sys.print_exception(exc)
        stream.abort()
    finally:
        stream.close()  # no socket outlives its handler (a no-op once the framework closed it)
