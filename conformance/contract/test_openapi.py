"""GET /openapi.json: an OpenAPI 3.0 document whose `x-websocket` entries list the DUT app's WebSocket routes
with their sub-protocols."""
from __future__ import annotations

from typing import Any

from conformance.contract.helpers import get_json

WS_ROUTES = {"/ws/echo": [], "/ws/autobahn": [], "/ws/chat": [], "/ws/rooms": [], "/ws/mqtt": ["mqtt", "mqttv5"]}
HTTP_ROUTES = ("/health", "/stats", "/events")


def websocket_entries(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """x-websocket as {path: entry}, whether it is a list of entries with `path` or a mapping keyed by path."""
    raw = document.get("x-websocket")
    assert raw, "no x-websocket entries in /openapi.json"
    if isinstance(raw, dict):
        return raw
    return {entry["path"]: entry for entry in raw}


def test_openapi_lists_websocket_routes_with_protocols(dut):
    document = get_json(dut, "/openapi.json")
    assert str(document.get("openapi", "")).startswith("3.0"), document.get("openapi")
    entries = websocket_entries(document)
    assert {path: entries.get(path, {}).get("protocols") for path in WS_ROUTES} == WS_ROUTES


def test_openapi_lists_http_routes(dut):
    paths = get_json(dut, "/openapi.json").get("paths", {})
    assert all("get" in paths.get(route, {}) for route in HTTP_ROUTES), sorted(paths)
