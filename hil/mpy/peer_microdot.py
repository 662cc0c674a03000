# The memory benchmark's peer (runs inside the VM as `main`, never on CPython): Microdot 2.x serving the echo
# the DUT app's /ws/autobahn serves (text and binary back unchanged, up to the DUT's MicroPython limit of
# 64 KiB), with Microdot's core, WebSocket and SSE modules imported as an app using them would.
import hashlib
import sys

if not hasattr(hashlib, "sha1"):

    class _HashlibWithSha1:
        """This VM's hashlib has no SHA-1 (a board's has), and Microdot's handshake needs it: lend it the
        reference framework's pure-Python one (viperhttp/sha1.py, staged alone), loaded by the first handshake
        as the reference loads it."""

        def __getattr__(self, name):
            if name == "sha1":
                from viperhttp_sha1 import sha1

                return sha1
            return getattr(hashlib, name)

    sys.modules["hashlib"] = _HashlibWithSha1()

# This VM freezes micropython-lib's `inspect`, which a board's firmware does not; with it Microdot takes its
# CPython path (sync handlers in a thread pool, asyncio.get_running_loop) and every request fails. Hide it while
# Microdot is imported, so Microdot runs as on a board.
sys.modules["inspect"] = None
from microdot import Microdot
from microdot.sse import with_sse  # noqa: F401 (imported for its cost, as an app serving events would)
from microdot.websocket import WebSocket, with_websocket

del sys.modules["inspect"]

WebSocket.max_message_length = 64 * 1024

app = Microdot()


@app.route("/ws/autobahn")
@with_websocket
async def echo(request, ws):
    while True:
        await ws.send(await ws.receive())
