# The DUT app: the one application every target runs (main.py on MicroPython, `vhil serve` on CPython).
# Its routes and behaviour are specified in docs/dut-app.md; suites rely on nothing else.
#
# This module uses only the API that ../shared/spec/viperhttp-websocket-guide.md documents (the contract a
# firmware is certified against). Everything the guide leaves open (starting the server, Wi-Fi, a WebSocket's
# query parameters, HTTP query parameters, free memory, the message size limit) goes through `runtime`, the
# adapter for what this board runs, chosen here by what the firmware offers. tests/test_dut_app_api.py checks
# that nothing else is used. receive() results are read exactly as the guide documents them, so a firmware
# that deviates fails a contract test instead of being silently adapted to.
import json

import viperhttp

try:
    import viperhttp_bridge  # noqa: F401 - built into ViperHTTP firmware, absent with the reference framework
except ImportError:
    import runtime_reference as runtime
else:
    import runtime_viperhttp as runtime

CONFIG_FILE = "dut_config.json"
SSE_MAX_EVENTS = 1000
SSE_MAX_INTERVAL_MS = 60000
SSE_PARAMETERS = (("count", SSE_MAX_EVENTS), ("interval_ms", SSE_MAX_INTERVAL_MS))  # name, largest value


# read here, not in a function: module-level code is let go once the import is done, a function stays
try:
    with open(CONFIG_FILE) as handle:
        config = json.load(handle)
    del handle  # closed: the module need not keep it
except OSError:
    config = {}
app = viperhttp.ViperHTTP(title="ViperHTTP DUT", include_websocket_docs=True)
max_message_size = runtime.configure(app, config)
ws_manager = viperhttp.ConnectionManager()


@app.websocket("/ws/echo")
async def ws_echo(ws):
    await ws.accept()
    while True:
        msg = await ws.receive()
        if msg.get("type") == "close":
            break
        if msg.get("type") == "bytes":
            await ws.send_bytes(msg["bytes"])
        else:
            await ws.send_text("echo:" + msg.get("text", ""))


@app.websocket("/ws/autobahn")
async def ws_autobahn(ws):
    await ws.accept()
    while True:
        msg = await ws.receive()
        if msg.get("type") == "close":
            break
        if msg.get("type") == "bytes":
            await ws.send_bytes(msg["bytes"])
        else:
            await ws.send_text(msg.get("text", ""))


@app.websocket("/ws/mqtt", protocols=["mqtt", "mqttv5"])
async def ws_mqtt(ws):
    await ws_autobahn(ws)  # the same echo, with the sub-protocol negotiated


@app.websocket("/ws/inspect")
async def ws_inspect(ws):
    import dut_commands  # loaded by the first connection that needs it, as for /ws/rooms

    await dut_commands.inspect(ws)


@app.websocket("/ws/chat")
async def ws_chat(ws):
    room = runtime.ws_query(ws).get("room", "general")
    await ws_manager.connect(ws, room=room)
    try:
        while True:
            msg = await ws.receive()
            if msg.get("type") == "close":
                break
            await ws_manager.broadcast_json({"user": "anon", "text": msg.get("text", "")}, room=room)
    finally:
        ws_manager.disconnect(ws)


@app.websocket("/ws/rooms")
async def ws_rooms(ws):
    import dut_commands  # the commands' code, loaded by the first connection to /ws/rooms or /ws/inspect

    await ws_manager.connect(ws)
    try:
        while True:
            msg = await ws.receive()
            if msg.get("type") == "close":
                break
            await ws.send_text(await dut_commands.room_command(ws_manager, ws, msg.get("text", "")))
    finally:
        ws_manager.disconnect(ws)


@app.get("/health")
async def health():
    impl, version, platform = runtime.describe()
    head_timeout_s, max_connections, send_buffer_limit = runtime.limits(app)
    return {"status": "ok", "impl": impl, "version": version, "platform": platform,
            "max_message_size": max_message_size, "request_head_timeout_s": head_timeout_s,
            "max_connections": max_connections, "send_buffer_limit": send_buffer_limit}


@app.get("/stats")
async def stats():
    result = ws_manager.stats()
    result["mem_free"], result["mem_alloc"] = runtime.memory_info()
    return result


@runtime.get_with_query(app, "/events", SSE_PARAMETERS)
async def events(count=None, interval_ms=None):
    import dut_events  # the stream's code, loaded by the first request for events

    return dut_events.event_stream(runtime, count, interval_ms, SSE_MAX_EVENTS, SSE_MAX_INTERVAL_MS)


def main(host=None, port=None):
    runtime.serve(app, config, host, port)


if __name__ == "__main__":
    main()
