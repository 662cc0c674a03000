# Streamed responses: chunked transfer coding and the Server-Sent Events wire format. Imported by the first
# StreamingResponse a handler returns, so an app that never streams never loads it.
import asyncio
import json

from viperhttp.http import response_head


async def write_stream(writer, response, headers, head_only, keep_alive, reader, buf, read_size):
    """server.write_response for a StreamingResponse (its docstring says the rest); the client is read
    `read_size` bytes at a time meanwhile."""
    headers.append(("Content-Type", response.media_type))
    headers.append(("Transfer-Encoding", "chunked"))
    for item in response.headers.items():
        headers.append(item)
    writer.write(response_head(response.status_code, headers))
    await writer.drain()
    if head_only:
        return keep_alive
    sender = asyncio.create_task(_send_stream(writer, response))
    if reader is None:
        await sender
        return keep_alive
    client_left = []
    watcher = asyncio.create_task(_watch_client(reader, buf, sender, client_left, read_size))
    try:
        await sender
    except asyncio.CancelledError:
        if not client_left:
            raise  # the server is being shut down
        return False
    finally:
        if not watcher.done():
            watcher.cancel()
            try:
                await watcher  # gone before the caller reads the next request: a stream allows one reader
            except asyncio.CancelledError:
                pass
    return keep_alive


async def _send_stream(writer, response):
    sse = response.media_type.startswith("text/event-stream")
    items = response.content
    is_async = hasattr(items, "__anext__") or hasattr(items, "__aiter__")
    items = items.__aiter__() if is_async else iter(items)
    while True:
        # by hand rather than `async for`, because MicroPython has no async generators to mirror
        try:
            item = await items.__anext__() if is_async else next(items)
        except (StopAsyncIteration, StopIteration):
            break
        data = format_sse(item) if sse else (item.encode("utf-8") if isinstance(item, str) else bytes(item))
        writer.write(encode_chunk(data))
        await writer.drain()
    writer.write(LAST_CHUNK)
    await writer.drain()


async def _watch_client(reader, buf, sender, client_left, read_size):
    """Read while a response streams. Bytes go to `buf` (up to one read beyond read_size, then reading stops and
    the client's TCP window holds the rest); the client's end of stream or a reset cancels `sender`."""
    try:
        while buf.available() <= read_size:
            data = await reader.read(read_size)
            if not data:
                break
            buf.feed(data)
        else:
            return
    except OSError:
        pass
    client_left.append(True)
    sender.cancel()


def encode_chunk(data):
    if not data:
        return b""  # an empty chunk would end the body
    return ("%x\r\n" % len(data)).encode() + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


def format_sse(item):
    """One Server-Sent Event: a dict with any of event/data/id/retry/comment, or a plain string as data."""
    if not isinstance(item, dict):
        item = {"data": item}
    lines = []
    if "comment" in item:
        for part in str(item["comment"]).split("\n"):
            lines.append(": " + part)
    if "event" in item:
        lines.append("event: " + str(item["event"]))
    if "id" in item:
        lines.append("id: " + str(item["id"]))
    if "retry" in item:
        lines.append("retry: %d" % int(item["retry"]))
    if "data" in item:
        data = item["data"]
        if not isinstance(data, str):
            data = json.dumps(data)
        for part in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            lines.append("data: " + part)
    return ("\n".join(lines) + "\n\n").encode()
