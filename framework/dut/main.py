# The DUT app: the one application every target runs (main.py on MicroPython, `vhil serve` on CPython).
# Its routes and behaviour are specified in docs/dut-app.md; suites rely on nothing else.
import asyncio
import json
import sys

import viperhttp
from viperhttp.compat import MICROPYTHON, memory_info

CONFIG_FILE = "dut_config.json"
DEFAULT_PORT = 80 if MICROPYTHON else 8765
MAX_MESSAGE_SIZE = 64 * 1024 if MICROPYTHON else 16 * 1024 * 1024
SSE_MAX_EVENTS = 1000

app = viperhttp.ViperHTTP(
    title="ViperHTTP DUT",
    version=viperhttp.VERSION,
    description="The application every ViperHTTP HIL target runs",
    include_websocket_docs=True,
    max_message_size=MAX_MESSAGE_SIZE,
)
ws_manager = viperhttp.ConnectionManager()


@app.websocket("/ws/echo", summary="Echo text as echo:TEXT, binary unchanged")
async def ws_echo(ws):
    await ws.accept()
    while True:
        msg = await ws.receive()
        if msg.get("type") == "close":
            break
        if msg["type"] == "bytes":
            await ws.send_bytes(msg["bytes"])
        else:
            await ws.send_text("echo:" + msg.get("text", ""))


async def _echo_unchanged(ws):
    await ws.accept()
    while True:
        msg = await ws.receive()
        if msg["type"] == "close":
            break
        if msg["type"] == "bytes":
            await ws.send_bytes(msg["bytes"])
        else:
            await ws.send_text(msg["text"])


@app.websocket("/ws/autobahn", summary="Plain echo for the Autobahn testsuite")
async def ws_autobahn(ws):
    await _echo_unchanged(ws)


@app.websocket("/ws/mqtt", protocols=["mqtt", "mqttv5"], summary="Sub-protocol negotiation; plain echo")
async def ws_mqtt(ws):
    await _echo_unchanged(ws)


@app.websocket("/ws/chat", summary="Join ?room=NAME and broadcast each message to it as JSON")
async def ws_chat(ws):
    room = ws.query_params.get("room", "general")
    await ws_manager.connect(ws, room=room)
    try:
        while True:
            msg = await ws.receive()
            if msg.get("type") == "close":
                break
            await ws_manager.broadcast_json({"user": "anon", "text": msg.get("text", "")}, room=room)
    finally:
        ws_manager.disconnect(ws)


@app.websocket("/ws/rooms", summary="Text commands: join ROOM, leave ROOM, pub ROOM PAYLOAD, stats")
async def ws_rooms(ws):
    await ws_manager.connect(ws)
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "close":
                break
            if msg["type"] != "text":
                await ws.send_text("err commands are text messages")
                continue
            await ws.send_text(await _room_command(ws, msg["text"]))
    finally:
        ws_manager.disconnect(ws)


async def _room_command(ws, command):
    verb, _, rest = command.partition(" ")
    if verb == "pub":
        room, sep, payload = rest.partition(" ")
        if not room or not sep:
            return "err usage: pub ROOM PAYLOAD"
        count = await ws_manager.broadcast_text(payload, room=room)
        return "ok pub %s %d" % (room, count)
    if verb in ("join", "leave"):
        if not rest or " " in rest:
            return "err usage: %s ROOM" % verb
        if verb == "join":
            ws_manager.join_room(ws, rest)
        else:
            ws_manager.leave_room(ws, rest)
        return "ok %s %s" % (verb, rest)
    if verb == "stats":
        return "ok stats " + json.dumps(ws_manager.stats())
    return "err unknown command %r" % verb


@app.get("/health")
async def health():
    return {
        "status": "ok",
        "impl": viperhttp.IMPLEMENTATION,
        "version": viperhttp.VERSION,
        "platform": sys.platform,
        "max_message_size": MAX_MESSAGE_SIZE,
    }


@app.get("/stats")
async def stats():
    result = ws_manager.stats()
    result["mem_free"], result["mem_alloc"] = memory_info()
    return result


class TickEvents:
    """`count` SSE events, `interval_ms` apart. A class, not an async generator: MicroPython has none."""

    def __init__(self, count, interval_ms):
        self.n = 0
        self.count = count
        self.interval_ms = interval_ms

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.n >= self.count:
            raise StopAsyncIteration
        if self.n:
            await asyncio.sleep(self.interval_ms / 1000)
        self.n += 1
        return {"event": "tick", "id": str(self.n - 1), "data": json.dumps({"n": self.n - 1})}


@app.get("/events", with_request=True, summary="Server-Sent Events: ?count=N&interval_ms=MS ticks")
async def events(request):
    try:
        count = min(int(request.query_params.get("count", "3")), SSE_MAX_EVENTS)
        interval_ms = max(0, int(request.query_params.get("interval_ms", "100")))
    except ValueError:
        raise viperhttp.HTTPException(422, "count and interval_ms must be integers")
    return viperhttp.StreamingResponse(TickEvents(count, interval_ms), media_type="text/event-stream")


def _load_config():
    try:
        with open(CONFIG_FILE) as handle:
            return json.load(handle)
    except OSError:
        return {}


def _connect_wifi(ssid, password):
    """Join Wi-Fi on a board and return its address (never prints the password)."""
    import network
    import time

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(ssid, password)
        for _ in range(200):
            if wlan.isconnected():
                break
            time.sleep_ms(100)
    if not wlan.isconnected():
        raise OSError("Wi-Fi: could not join " + ssid)
    return wlan.ifconfig()[0]


def main(host=None, port=None):
    config = _load_config()
    advertise = None
    if config.get("wifi_ssid"):
        advertise = _connect_wifi(config["wifi_ssid"], config.get("wifi_password", ""))
    if host is None:
        host = config.get("host", "0.0.0.0")
    if port is None:
        port = int(config.get("port", DEFAULT_PORT))
    app.run(host=host, port=port, advertise_host=advertise)


if __name__ == "__main__":
    main()
