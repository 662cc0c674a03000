# The asyncio glue: the only module that touches streams. It moves bytes between asyncio streams and the
# sans-I/O parsers, and owns each connection's send buffer (see Transport).
import asyncio

from viperhttp.compat import (
    MICROPYTHON, abort_stream, ConnectionError, describe_exception, end_stream_output, read_within,
    start_server, stream_backlog, stream_peer_gone, ticks_diff, ticks_ms,
)
from viperhttp.http import (
    ByteBuffer, HTTPException, JSONResponse, StreamingResponse, check_request, parse_request_head, read_body, response_head,
)

READ_SIZE = 65536
KEEP_ALIVE_IDLE_S = 30  # a connection silent this long between requests is closed quietly
# After the server decides to close (an error, `Connection: close`), it reads and discards what the client
# still sends for at most this long, so those unread bytes do not turn the close into a reset that destroys
# the response on its way to the client.
LINGER_S = 1
DEFAULT_SEND_BUFFER_LIMIT = 16 * 1024 if MICROPYTHON else 1024 * 1024
# A connection over its send-buffer limit is too slow only once its writer has been stuck this long (a burst
# of broadcasts can pass the limit before the writer gets a turn) or its buffer reaches the hard cap.
SLOW_WRITER_GRACE_MS = 1000
HARD_CAP_FACTOR = 4
# A connection's deadlines (head, body, keep-alive idle) are up to DEADLINE_SPREAD of their length shorter, by
# the order connections were accepted (DEADLINE_SLOTS steps), so clients that started together (a flood of slow
# clients) reach them one every few milliseconds instead of all in one loop turn: expiring one (a 408, a linger,
# a close) costs about 0.3 ms, so 500 at once hold the loop for 150 ms. The configured length stays the longest
# a client is given.
DEADLINE_SPREAD = 0.1
DEADLINE_SLOTS = 500


class Transport:
    """One connection's byte stream after the HTTP request: reads, and a bounded send buffer.

    Every write goes through `send` (which waits while the buffer is over the limit) or `send_nowait` (which
    refuses instead). While the writer task is idle, bytes go straight to the stream (no task switch per frame,
    which is most of a broadcast's cost); once the stream has a backlog, they queue and the writer task drains
    them in order. That lets a broadcast hand a frame to many members without waiting for any of them, and
    lets a member that stops reading be recognised by its queue passing the limit. It is also the seam other
    byte carriers (a bridge into a MicroPython VM) plug into: anything with read/send/send_nowait/close/abort
    serves the WebSocket layer.
    """

    # The state of a connection whose writes the stream takes at once (most of them, most of the time) is these
    # class-level defaults: a transport holds its own only once it differs, so an idle connection's object stays
    # small. The writer task and its events start with the first backlog.
    send_buffer_limit = DEFAULT_SEND_BUFFER_LIMIT
    closed = False
    _pending = None  # byte strings queued for the writer task
    _pending_bytes = 0
    _write_started = None  # ticks_ms() when the write in progress began
    _busy = False  # the writer task has bytes to write or a backlog to drain: new bytes must queue
    _wake = None
    _drained = None

    def __init__(self, reader, writer, send_buffer_limit=DEFAULT_SEND_BUFFER_LIMIT):
        self.reader = reader
        self.writer = writer
        if send_buffer_limit != DEFAULT_SEND_BUFFER_LIMIT:
            self.send_buffer_limit = send_buffer_limit

    @property
    def client(self):
        try:
            return self.writer.get_extra_info("peername")
        except (AttributeError, OSError):
            return None

    def read(self):
        """An awaitable of the next bytes from the client: b"" at its end of stream, OSError when it reset the
        connection. While the client leaves what we send unread (its pongs, say) and the send buffer is over
        its limit, this waits before reading, so the client's own TCP window stops it; still over the limit
        after KEEP_ALIVE_IDLE_S, the connection is dropped. Each read is at most the limit, so the replies one
        read can cause stay within it too. Not a coroutine: most of the time it is the stream's own read, so a
        connection waiting for the client holds no frame of ours."""
        if self.closed or self._pending_bytes > self.send_buffer_limit:
            return self._read_once_drained()
        return self.reader.read(min(READ_SIZE, self.send_buffer_limit))

    async def _read_once_drained(self):
        started = ticks_ms()
        while self._pending_bytes > self.send_buffer_limit and not self.closed:
            left = KEEP_ALIVE_IDLE_S - ticks_diff(ticks_ms(), started) / 1000
            try:
                if left <= 0:
                    raise asyncio.TimeoutError()
                await asyncio.wait_for(self._drained.wait(), left)
            except asyncio.TimeoutError:
                self.abort()
        return b"" if self.closed else await self.read()

    def send_nowait(self, chunks, force=False):
        """Queue byte strings; False (nothing queued) when the connection is closed or, unless `force` (protocol
        replies such as pongs and close frames), when it is too slow: over its limit with the writer stuck for
        SLOW_WRITER_GRACE_MS, or at HARD_CAP_FACTOR times its limit."""
        if self.closed:
            return False
        if not force and self._pending_bytes > self.send_buffer_limit:
            stuck = self._write_started is not None and ticks_diff(ticks_ms(), self._write_started) > SLOW_WRITER_GRACE_MS
            if stuck or self._pending_bytes > HARD_CAP_FACTOR * self.send_buffer_limit:
                return False
        if stream_peer_gone(self.writer):
            self.abort()  # writing on would only make asyncio log a warning per write
            return False
        if not self._busy:
            try:
                for chunk in chunks:
                    self.writer.write(chunk)
            except OSError:  # MicroPython writes to the socket at once, so a reset peer shows up here
                self.abort()
                return False
            if stream_backlog(self.writer) == 0:
                return True  # all of it handed to the operating system
        else:
            if self._pending is None:
                self._pending = []
            for chunk in chunks:
                self._pending.append(chunk)
                self._pending_bytes += len(chunk)
        self._busy = True
        if self._wake is None:
            self._wake, self._drained = asyncio.Event(), asyncio.Event()
            asyncio.create_task(self._write_loop())
        self._drained.clear()
        self._wake.set()
        return True

    async def send(self, chunks):
        while self._pending_bytes > self.send_buffer_limit and not self.closed:
            await self._drained.wait()
        if self.closed or not self.send_nowait(chunks):
            raise ConnectionError("connection closed")

    async def flush(self):
        while self._busy and not self.closed:
            await self._drained.wait()

    async def _write_loop(self):
        try:
            while not self.closed:
                await self._wake.wait()
                self._wake.clear()
                self._write_started = ticks_ms()
                await self.writer.drain()  # the backlog of bytes written straight to the stream
                while self._pending:
                    if stream_peer_gone(self.writer):
                        raise ConnectionError("connection lost")
                    batch, self._pending = self._pending, None
                    self._pending_bytes = 0
                    # one write per batch: a burst of small frames costs one system call, not one each
                    self.writer.write(batch[0] if len(batch) == 1 else b"".join(batch))
                    await self.writer.drain()
                self._write_started = None
                self._busy = False
                self._drained.set()
        except OSError:
            self.abort()
        finally:
            self._drained.set()

    async def drain_input(self, timeout_s):
        """Read and discard until the client closes or `timeout_s` passes, so closing does not reset the
        connection while unread bytes (that could include our close frame's reply) are in flight."""
        await drain_input(self.reader, timeout_s)

    def abort(self):
        """Drop the connection now (a member too slow to keep up, a dead peer)."""
        if self.closed:
            return
        self.closed = True
        self._pending = None
        self._pending_bytes = 0
        if self._wake is not None:
            self._wake.set()
            self._drained.set()
        abort_stream(self.writer)

    async def close(self):
        if not self.closed:
            await self.flush()
        self.closed = True
        if self._wake is not None:
            self._wake.set()
        await _close_stream(self.writer)


async def drain_input(reader, timeout_s, writer=None):
    """Read and discard until the client's end of stream, for at most `timeout_s` in all. Given the `writer`,
    a linger: close a connection the client may still be sending on, so its unread bytes do not turn our
    close into a reset that destroys the answer on its way: end our side first where the stream can
    (CPython), discard, then close."""
    if writer is not None:
        try:
            end_stream_output(writer)
        except OSError:
            pass
    started = ticks_ms()
    try:
        while True:
            left = timeout_s - ticks_diff(ticks_ms(), started) / 1000
            if left <= 0 or not await read_within(reader, READ_SIZE, left):
                break
    except (OSError, asyncio.TimeoutError):
        pass
    if writer is not None:
        await _close_stream(writer)


async def _close_stream(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except OSError:
        pass


async def write_response(writer, response, server_header, head_only=False, keep_alive=True, reader=None,
                         buf=None):
    """Send a Response or StreamingResponse; returns whether the connection may be kept open. While a
    response streams, `reader` is read into `buf` (a pipelined request), and the client's end of stream or a
    reset ends the stream at once (False) instead of leaving it to a client that has gone."""
    headers = [("Server", server_header)]
    if isinstance(response, StreamingResponse):
        from viperhttp.streaming import write_stream  # loaded by the first streamed response, not before

        return await write_stream(writer, response, headers, head_only, keep_alive, reader, buf, READ_SIZE)
    body = response.body
    headers.append(("Content-Type", response.media_type))
    headers.append(("Content-Length", str(len(body))))
    for item in response.headers.items():
        headers.append(item)
    if not keep_alive:
        headers.append(("Connection", "close"))
    head = response_head(response.status_code, headers)
    if head_only or not body:
        writer.write(head)
    elif len(body) <= 16384:
        writer.write(head + body)  # one segment for the common small response
    else:
        writer.write(head)
        writer.write(body)
    await writer.drain()
    return keep_alive


def error_response(exc):
    response = JSONResponse({"detail": exc.detail}, status_code=exc.status)
    response.headers.update(exc.headers)
    return response


class Server:
    """Accepts connections and hands each request to the app (HTTP) or to a WebSocket route. At most
    `app.max_connections` connections are served at once; one more is answered 503 and closed."""

    def __init__(self, app, limits=None):
        self.app = app
        self.limits = limits or app.limits
        self.connections = 0
        self.accepted = 0
        self.refused = 0
        self._server = None

    async def handle_connection(self, reader, writer):
        if self.connections >= self.app.max_connections:
            self.refused += 1
            try:
                await write_response(writer, error_response(HTTPException(503, "too many connections", {"Retry-After": "1"})),
                                     self.app.server_header, keep_alive=False)
            except OSError:
                pass
            await drain_input(reader, LINGER_S, writer)
            return
        buf = ByteBuffer()
        try:
            peer = writer.get_extra_info("peername")
        except (AttributeError, OSError):
            peer = None
        linger = False
        self.connections += 1
        deadline_scale = 1 - (self.accepted % DEADLINE_SLOTS) * DEADLINE_SPREAD / DEADLINE_SLOTS
        self.accepted += 1
        try:
            while True:
                request = await self._read_request(reader, buf, peer, deadline_scale)
                if request is None:
                    break
                route = self.app.websocket_route_for(request)
                if route is not None:
                    key = check_request(request)  # an HTTPException here is answered below, before any upgrade
                    transport = Transport(reader, writer, self.app.send_buffer_limit)
                    ws = self.app.websocket_for(route, request, transport, key, buf.take_rest())
                    request = buf = peer = None  # for the connection's life: the WebSocket keeps what it needs
                    await self.app.handle_websocket(route, ws, transport)
                    return
                head_only = request.method == "HEAD"
                response = await self.app.handle_http(request)
                if not await write_response(writer, response, self.app.server_header, head_only, request.keep_alive,
                                            reader, buf):
                    linger = True
                    break
        except HTTPException as exc:
            linger = True
            try:
                await write_response(writer, error_response(exc), self.app.server_header, keep_alive=False)
            except OSError:
                linger = False
        except (OSError, asyncio.TimeoutError):
            pass  # the client went away or idled past the keep-alive timeout
        except Exception as exc:  # a bug must not take the server down; say what it was
            self.app.log("connection error: " + describe_exception(exc))
        finally:
            self.connections -= 1
            if linger:
                await drain_input(reader, LINGER_S, writer)
            else:
                await _close_stream(writer)

    async def _read_request(self, reader, buf, peer, deadline_scale):
        """The next request with its body; None when the client ends the connection (or stays silent for
        KEEP_ALIVE_IDLE_S) before starting one; HTTPException(408) when it starts one but has not finished the
        head within the limits' head_timeout_s, or the body within body_timeout_s. Each of these is
        multiplied by `deadline_scale` (see DEADLINE_SPREAD)."""
        limits = self.limits
        timeout_s = limits.head_timeout_s * deadline_scale
        request = None
        try:
            request = await _run_parser(reader, buf, parse_request_head(buf, limits, peer), timeout_s,
                                        KEEP_ALIVE_IDLE_S * deadline_scale)
            if request is not None and request.content_length:
                timeout_s = limits.body_timeout_s * deadline_scale
                await _run_parser(reader, buf, read_body(buf, request), timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(408, "request %s not complete within %.1f s"
                                % ("head" if request is None else "body", timeout_s))
        return request

    async def start(self, host, port):
        self._server, port = await start_server(self.handle_connection, host, port)
        return port

    async def close(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _run_parser(reader, buf, parser, timeout_s, idle_s=0):
    """Feed `parser` reads until it returns, and return what it returns; asyncio.TimeoutError if that takes
    more than `timeout_s`. With `idle_s` (a request head), the time counts from the first byte, and None is
    returned when none comes within `idle_s`."""
    started = None if idle_s and not buf.available() else ticks_ms()
    try:
        next(parser)
        while True:
            if started is None:
                left = idle_s
            else:
                left = timeout_s - ticks_diff(ticks_ms(), started) / 1000
                if left <= 0:
                    raise asyncio.TimeoutError()
            try:
                data = await read_within(reader, READ_SIZE, left)
            except asyncio.TimeoutError:
                if started is None:
                    return None
                raise
            if data:
                if started is None:
                    started = ticks_ms()
                buf.feed(data)
            else:
                buf.feed_eof()
            next(parser)
    except StopIteration as done:
        return done.value
