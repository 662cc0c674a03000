# MicroPython side of the Node bridge (runs inside the VM, never on CPython). Node owns the TCP sockets; each
# connection becomes one BridgeStream that serves as both the reader and the writer asyncio's streams would
# give `Server.handle_connection`. Bytes cross the boundary by address: Python hands Node the address of a
# buffer (uctypes.addressof) and Node copies to or from the VM's linear memory, while Python is paused in that
# call, so the garbage collector (which never moves objects) cannot invalidate it.
#
# The app module's `app` is served with its own connection handler when it has one (Microdot's
# `handle_request`, for the memory benchmark's peer), else with viperhttp's Server. `control(command)` answers
# the bridge's control port (heap figures for `vhil bench memory`).
#
# asyncio, binascii and json are imported here, before any app, because a board's firmware has them built in
# (in C, or frozen): an app's import figure then counts the app and its framework only. On this VM binascii is
# micropython-lib's pure-Python module and would otherwise count 1.2 KB against whichever app imports it first.
import asyncio
import binascii  # noqa: F401
import gc
import json  # noqa: F401
import sys
import time

import bridge_js  # registered by bridge.mjs: copy_into, write, buffered, congested, drained, closed, pause, resume, end, destroy
import uctypes

# Stop reading the socket while this much received data waits in the VM, as a board's TCP window (lwIP's is a
# few KiB) stops its client: data the framework has not asked for must not pile up in the VM's heap. At 256 KiB a
# client whose pongs the framework had stopped sending (it pauses reading) still filled the heap by 4 MiB.
RECEIVE_HIGH_WATER = 16 * 1024

_app = None  # the served app object
_handler = None  # async (reader, writer) -> None: the served app's connection handler
_heap_before_import = None  # live heap just before the app was imported
_peak = None  # highest live heap seen at the I/O points while a peak measurement runs, else None


class BridgeStream:
    # A connection's state starts as these class-level defaults and becomes the stream's own only where it
    # changes: an idle connection's stream then costs about what a board's asyncio stream does (Stream, socket,
    # poll entry), so the memory benchmark's per-connection figure is the framework's plus a board-like share.
    _chunks = None  # received bytearrays the reader has not taken, the first from self._offset on
    _offset = 0
    _buffered = 0
    _eof = False
    _closed = False
    _paused = False

    def __init__(self, conn_id, host, port):
        self.conn_id = conn_id
        self.peername = (host, port)
        self._readable = asyncio.Event()

    @property
    def transport(self):
        # the server looks for `writer.transport` (CPython asyncio's shape): abort(), get_write_buffer_size()
        return self

    # -- called by Node -------------------------------------------------------------------------------------
    def feed(self, size):
        """Node has `size` received bytes for us: allocate, let Node copy them in, wake the reader."""
        chunk = bytearray(size)
        bridge_js.copy_into(self.conn_id, uctypes.addressof(chunk))
        if self._chunks is None:
            self._chunks = [chunk]
        else:
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
        # the first chunk is consumed from an offset: slicing off what was read would copy the rest at every read
        chunk, start = self._chunks[0], self._offset
        if 0 <= n < len(chunk) - start:
            data = bytes(memoryview(chunk)[start:start + n])
            self._offset += n
        else:
            data = bytes(memoryview(chunk)[start:]) if start else bytes(chunk)
            self._chunks.pop(0)
            if not self._chunks:
                self._chunks = None
            self._offset = 0
        self._buffered -= len(data)
        if self._paused and self._buffered <= RECEIVE_HIGH_WATER // 2 and not self._closed:
            self._paused = False
            bridge_js.resume(self.conn_id)
        if _peak is not None:
            _sample_peak()
        return data

    async def readexactly(self, n):
        parts = []
        while n:
            part = await self.read(n)
            if not part:
                raise EOFError("connection closed")
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    async def readline(self):
        line = b""
        while not line.endswith(b"\n"):
            while not self._chunks and not self._eof:
                self._readable.clear()
                await self._readable.wait()
            if not self._chunks:
                break
            end = bytes(memoryview(self._chunks[0])[self._offset:]).find(b"\n")
            line += await self.read(end + 1 if end >= 0 else -1)
        return line

    # -- the writer -----------------------------------------------------------------------------------------
    def write(self, data):
        if self._closed or not data:
            return
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)  # addressof needs a contiguous buffer
        bridge_js.write(self.conn_id, uctypes.addressof(data), len(data))
        if _peak is not None:
            _sample_peak()

    async def awrite(self, data):  # MicroPython's stream API, which Microdot uses
        self.write(data)
        await self.drain()

    async def drain(self):
        # Ask Node now rather than trusting write()'s verdict: a write the kernel took at once has already
        # left Node's buffer, and Node only delivers its "drain" event when the VM next yields to JavaScript,
        # which a busy VM may not do for a while (a board's asyncio, likewise, polls its sockets every round).
        while not self._closed and bridge_js.congested(self.conn_id):
            await bridge_js.drained(self.conn_id)
        if self._closed:
            raise OSError(104, "connection reset")  # what a closed socket's drain raises on a board (ECONNRESET)

    def get_write_buffer_size(self):
        # what asyncio's transport (`writer.transport`) tells: bytes written but not yet taken by the kernel
        return 0 if self._closed else bridge_js.buffered(self.conn_id)

    def get_extra_info(self, name, default=None):
        return self.peername if name == "peername" else default

    def close(self):
        if not self._closed:
            bridge_js.end(self.conn_id)  # flush what is queued, send FIN, then close

    async def wait_closed(self):
        if not self._closed:
            await bridge_js.closed(self.conn_id)

    async def aclose(self):
        self.close()
        await self.wait_closed()

    def abort(self):
        if not self._closed:
            bridge_js.destroy(self.conn_id)


def serve(app_module_name):
    """Import the app module (its `app` object) and build the one connection handler every connection goes
    through. Returns a line for the log: the runtime, and what importing the app and its framework cost."""
    global _app, _handler, _heap_before_import
    gc.collect()
    _heap_before_import, started = gc.mem_alloc(), time.ticks_ms()
    app = _app = __import__(app_module_name).app
    if hasattr(app, "handle_request"):
        _handler = app.handle_request  # Microdot
    else:
        from viperhttp.server import Server

        _handler = Server(app).handle_connection
    import_ms = time.ticks_diff(time.ticks_ms(), started)
    gc.collect()
    # an upper bound: the import's own call frames may still hold garbage here (see control("import"))
    return "MicroPython %s on %s (%s); app import %d ms, %d bytes of heap; mem_free %d mem_alloc %d" % (
        ".".join(str(v) for v in sys.implementation.version[:3]), sys.platform, sys.implementation._machine,
        import_ms, gc.mem_alloc() - _heap_before_import, gc.mem_free(), gc.mem_alloc())


def control(command):
    """One command from the bridge's control port; returns the reply line.

    heap        live heap bytes (after a collection)
    import      heap taken by importing the app (and its framework) and building its handler: the live heap
                now less the heap before the import. Meaningful before any connection; asked from Node's event
                loop, so no Python frame of the import still holds garbage (the log line's figure may count some)
    peak start  start recording the highest live heap at every read and write; replies the heap now
    peak stop   stop recording; replies the highest live heap seen since `peak start`
    max_connections N   raise the app's cap on connections served at once (viperhttp's `max_connections`,
                10 on MicroPython) to N, so the benchmark can average over more; replies the old cap, or
                `none` for an app without one
    """
    global _peak
    if command == "heap":
        gc.collect()
        return str(gc.mem_alloc())
    if command == "import":
        gc.collect()
        return str(gc.mem_alloc() - _heap_before_import)
    if command == "peak start":
        gc.collect()
        _peak = gc.mem_alloc()
        return str(_peak)
    if command == "peak stop":
        peak, _peak = _peak, None
        return str(peak)
    if command.startswith("max_connections "):
        old = getattr(_app, "max_connections", None)
        if old is None:
            return "none"
        _app.max_connections = int(command.split()[1])
        return str(old)
    return "error unknown command " + repr(command)


def _sample_peak():
    global _peak
    gc.collect()
    allocated = gc.mem_alloc()
    if allocated > _peak:
        _peak = allocated


def open_connection(conn_id, host, port):
    """A new TCP connection: its stream, and a task running the app's connection handler on it. The handler is
    the task itself, as `asyncio.start_server` runs it on a board: no frame of ours per connection. Handlers
    close their own streams (viperhttp's and Microdot's do, whatever happens); an exception one lets escape is
    printed by asyncio's handler for a task nobody awaits."""
    stream = BridgeStream(conn_id, host, port)
    asyncio.create_task(_handler(stream, stream))
    return stream
