# The DUT app's rarely used WebSocket bodies (docs/dut-app.md): /ws/rooms' commands and /ws/inspect, imported by
# the first connection to either, so a board no suite asks for them never holds this code. Written against the
# guide alone, as main.py is (tests/test_dut_app_api.py checks both).
import json


async def inspect(ws):
    # Diagnostics for the contract suite: what receive() returned, as type names and keys, never payloads.
    await ws.accept()
    while True:
        msg = await ws.receive()
        if msg.get("type") == "close":
            break
        shape = {"python_type": type(msg).__name__}
        if isinstance(msg, dict):
            shape["keys"] = dict((str(key), type(msg[key]).__name__) for key in msg)
            shape["type"] = msg.get("type")
        await ws.send_text(json.dumps(shape))


async def room_command(ws_manager, ws, command):
    """The reply to one /ws/rooms command from `ws` (docs/dut-app.md)."""
    verb, _, rest = command.partition(" ")
    if verb == "pub":
        room, sep, payload = rest.partition(" ")
        if not room or not sep:
            return "err usage: pub ROOM PAYLOAD"
        # the guide promises no return value from broadcast_text: the members are counted by stats(), taken
        # with the broadcast (nothing can join or leave in between: there is no await between the two)
        members = ws_manager.stats()["rooms"].get(room, 0)
        await ws_manager.broadcast_text(payload, room=room)
        return "ok pub %s %d" % (room, members)
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
