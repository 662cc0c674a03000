"""The DUT app (framework/dut/main.py) uses only the API the WebSocket guide documents; everything else goes
through `runtime`, the adapter for what the board runs (framework/dut/runtime_*.py). An AST walk of the module:
every attribute it touches on anything but `runtime` and its own objects is guide API or plain Python, every
keyword it passes to the framework is one the guide shows, and it imports nothing else of the framework."""
from __future__ import annotations

import ast

from hil.dut_app import DUT_DIR, DUT_MAIN

ADAPTER = "runtime"
# ../shared/spec/viperhttp-websocket-guide.md: the names it uses, and the keywords it passes to them
GUIDE_ATTRIBUTES = {
    "ViperHTTP", "ConnectionManager", "StreamingResponse",  # viperhttp.*
    "websocket", "get",  # app.* route decorators
    "accept", "receive", "send_text",  # ws.*
    "connect", "disconnect", "join_room", "leave_room", "broadcast_text", "broadcast_json", "stats",  # manager
}
# not shown in the guide's examples, but the binary half of its "Message Format" needs an answer in kind: the
# firmware documents send_bytes next to send_text (docs/hil.md, "ViperHTTP firmware")
DOCUMENTED_ELSEWHERE = {"send_bytes"}
GUIDE_KEYWORDS = {"title", "include_websocket_docs", "protocols", "room", "media_type"}
# plain Python the app uses on its own values (str, dict, json, asyncio, its own classes)
PYTHON_ATTRIBUTES = {"get", "partition", "isdigit", "dumps", "load", "sleep", "__name__"}
OWN_OBJECTS = {ADAPTER, "self", "dut_events", "dut_commands"}  # attributes of these are the adapter's or the app's own
# the guide promises broadcasts deliver, not that they return anything: their value must not be used
NO_RETURN_VALUE = {"broadcast_text", "broadcast_json"}
# the app's own modules for /events and for /ws/rooms' and /ws/inspect's bodies, loaded by the first request
# for them (checked as main.py is)
APP_MODULES = ("main.py", "dut_events.py", "dut_commands.py")
ALLOWED_IMPORTS = {"asyncio", "json", "viperhttp", "viperhttp_bridge", "runtime_reference", "runtime_viperhttp",
                   "dut_events", "dut_commands"}
FRAMEWORK_RECEIVERS = {"viperhttp", "app", "ws", "ws_manager"}


def violations(source: str) -> list[str]:
    """Each use of a name outside the guide's API that does not go through the adapter, as `line: what`."""
    found: list[str] = []
    allowed = GUIDE_ATTRIBUTES | DOCUMENTED_ELSEWHERE | PYTHON_ATTRIBUTES
    tree = ast.parse(source)
    discarded = {id(statement.value.value) for statement in ast.walk(tree)
                 if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Await)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name not in ALLOWED_IMPORTS]
        elif isinstance(node, ast.ImportFrom):
            found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute):
            receiver = node.value.id if isinstance(node.value, ast.Name) else None
            if receiver not in OWN_OBJECTS and node.attr not in allowed:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            if receiver in FRAMEWORK_RECEIVERS:
                found += [f"{node.lineno}: {ast.unparse(node.func)}(..., {k.arg}=...)" for k in node.keywords
                          if k.arg not in GUIDE_KEYWORDS]
            if node.func.attr in NO_RETURN_VALUE and id(node) not in discarded:
                found.append(f"{node.lineno}: the value of {ast.unparse(node.func)}() is used")
    return found


def test_dut_app_uses_only_the_guide_and_the_adapter() -> None:
    for module in APP_MODULES:
        assert violations((DUT_DIR / module).read_text()) == [], module


def test_every_adapter_offers_what_the_app_asks_of_it() -> None:
    used = {node.attr for module in APP_MODULES for node in ast.walk(ast.parse((DUT_DIR / module).read_text()))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == ADAPTER}
    assert used, "main.py no longer uses the adapter"
    for adapter in sorted(DUT_DIR.glob("runtime_*.py")):
        body = ast.parse(adapter.read_text()).body
        defined = {n.name for n in body if isinstance(n, ast.FunctionDef)}
        defined |= {alias.asname or alias.name for n in body if isinstance(n, ast.ImportFrom) for alias in n.names}
        assert used <= defined, f"{adapter.name} lacks {sorted(used - defined)}"


def test_the_check_catches_what_the_guide_does_not_document() -> None:
    source = DUT_MAIN.read_text()
    broken = {
        "ws.query_params": source.replace("runtime.ws_query(ws)", "ws.query_params"),
        "with_request": source.replace('@app.websocket("/ws/echo")', '@app.get("/x", with_request=True)'),
        "framework internals": source.replace("import viperhttp\n", "import viperhttp\nfrom viperhttp.compat import MICROPYTHON\n"),
        "return value of broadcast": source.replace("await ws_manager.broadcast_json(",
                                                    "members = await ws_manager.broadcast_json("),
    }
    for what, variant in broken.items():
        assert variant != source, f"the {what} variant did not change main.py: update this test"
        assert violations(variant), f"a DUT app using {what} passed the check"
