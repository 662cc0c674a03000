"""Helpers for the contract tests: bounded async runs, WebSocket connections and HTTP requests to the DUT app."""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import urllib.error
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

from hil import probe
from hil.targets import Target

T = TypeVar("T")
# one receive, one handshake, one HTTP request; raise it for slow boards, lower it to fail faster
STEP_TIMEOUT_S = float(os.environ.get("VHIL_CONTRACT_STEP_TIMEOUT_S", "10"))
TEST_TIMEOUT_S = 60.0  # one whole test body


def run(coro_fn: Callable[[], Awaitable[T]], timeout: float = TEST_TIMEOUT_S) -> T:
    """Run one async test body on a fresh event loop, bounded in time."""
    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), timeout)
    return asyncio.run(bounded())


async def recv(ws: ClientConnection, timeout: float = STEP_TIMEOUT_S) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout)


def ws_connect(dut: Target, path: str, **options: Any) -> Any:
    """websockets' connect() to a DUT route, with a bounded handshake and no compression (the DUT has none)."""
    options.setdefault("open_timeout", STEP_TIMEOUT_S)
    options.setdefault("close_timeout", STEP_TIMEOUT_S)
    options.setdefault("compression", None)
    options.setdefault("ping_interval", None)
    return connect(dut.ws_url(path), **options)


def http_get(dut: Target, path: str, timeout: float = STEP_TIMEOUT_S) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, whole body) of a GET; the body is read until the server ends it."""
    parts = urlsplit(dut.http_url(path))
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def get_json(dut: Target, path: str) -> Any:
    try:
        return probe.get_json(dut.http_url(path), STEP_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"GET {path} answered {exc.code}: {exc.read()[:200]!r}") from None


GUIDE = "the WebSocket guide (../shared/spec/viperhttp-websocket-guide.md)"


async def received_shape(dut: Target, payload: str | bytes) -> dict[str, Any]:
    """What the target's ws.receive() returned for `payload`, as the DUT app's /ws/inspect reports it: the
    Python type, each key with its value's type name, and the "type" value (never the payload)."""
    async with ws_connect(dut, "/ws/inspect") as ws:
        await ws.send(payload)
        return json.loads(await recv(ws))


def describe_shape(shape: dict[str, Any]) -> str:
    keys = ", ".join(f"{key!r}: {kind}" for key, kind in sorted(shape.get("keys", {}).items()))
    return f"a {shape.get('python_type')} {{{keys}}} with type {shape.get('type')!r}"


async def assert_binary_echo(dut: Target, reply: str | bytes, payload: bytes) -> None:
    """A binary message must come back binary; when it does not, say what the target's receive() returned."""
    if not isinstance(reply, bytes):
        raise AssertionError(
            f"a binary message was answered with a {type(reply).__name__} message: the DUT app reads receive() "
            f"as {GUIDE} documents it (# Binary message {{\"type\": \"bytes\", \"bytes\": ...}}), and this "
            f"target's receive() returned {describe_shape(await received_shape(dut, payload[:16]))}")
