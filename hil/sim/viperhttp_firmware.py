"""The simulated board's ViperHTTP firmware: the built-in modules `viperhttp`, `viperhttp_ws` and
`viperhttp_bridge` as ViperHTTP firmware documents them, for `sim:viperhttp` (docs/hil.md).

It injects firmware we cannot run here, so it reproduces the firmware's documented Python API and behaviour
and nothing more (issue 8's fact list):
- `viperhttp.ViperHTTP()` (or `viperhttp.active_app()`); route decorators take the documented OpenAPI kwargs and
  `query=` (a typed query spec); handlers get path and query parameters as keyword arguments;
  `viperhttp.current_request()` is the request being handled; `viperhttp.HTTPException(status_code, detail)`.
- `ws.receive()` returns `{"type": "message", "opcode": 1|2, "data": bytes, "text": str (text only),
  "final": bool}`, and `{"type": "close", "code": N}`; each connection's receive queue holds 8 messages and a
  message arriving while 8 wait is dropped silently. The WebSocket has `.request` (the handshake request) and
  `accept(subprotocol=None)`, `send_text`, `send_bytes`, `send_json`, `close`; no `query_params`, `path`, `headers`.
- `ConnectionManager` lives in `viperhttp_ws`, which installs it as `viperhttp.ConnectionManager` when imported;
  `broadcast_text`/`broadcast_json` return nothing; a member whose send fails is disconnected.
- `viperhttp_bridge.run(app, port=PORT, wifi=False)` serves until the board resets.

The wire protocol underneath (HTTP parsing, WebSocket framing, OpenAPI) is the reference framework's sans-I/O
core: how the real firmware behaves on the wire is what Autobahn and the contract suite measure.
Modules are built-in the way MicroPython's frozen modules are: a package of the same name on the board's
filesystem comes first on sys.path and shadows them.
"""
from __future__ import annotations

import asyncio
import importlib
import importlib.abc
import importlib.machinery
import inspect
import json
import pkgutil
import sys
import types
from pathlib import Path
from typing import Any, Callable

from viperhttp import app as core_app
from viperhttp import http as core_http
from viperhttp.http import HTTPException as CoreHTTPException
from viperhttp.http import choose_subprotocol
from viperhttp.openapi import openapi_path
from viperhttp.protocol import OP_BINARY, OP_TEXT, encode_frame
from viperhttp.server import Server, error_response, write_response
from viperhttp.websocket import WebSocket as CoreWebSocket

FIRMWARE_VERSION = "v1.23.0-viperhttp-sim on 2026-12-02"  # what os.uname().version says on this board
SERVER_HEADER = "ViperHTTP-firmware-sim/1.23.0"
RECEIVE_QUEUE_DEPTH = 8
MAX_MESSAGE_SIZE = 64 * 1024  # the limit this simulated build enforces (sim:viperhttp's dut_config states it)
BIND_HOST = "127.0.0.1"  # the simulated board's only network is the host's loopback
_ROUTE_OPTIONS = ("summary", "description", "tags", "operation_id", "include_in_schema")
_OPENAPI_ONLY = ("responses", "name", "request_body", "deprecated", "deps")

_state: dict[str, Any] = {"app": None, "request": None}


class HTTPException(CoreHTTPException):
    def __init__(self, status_code: int = 500, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, detail, headers)


def current_request() -> Any:
    return _state["request"]


def active_app() -> Any:
    return _state["app"]


def _cast(spec: Any, text: str) -> Any:
    kind = spec if isinstance(spec, type) else str
    if kind is bool:
        return text.lower() in ("1", "true", "yes", "on")
    return kind(text)


class ViperHTTP(core_app.ViperHTTP):
    def __init__(self, title: str = "ViperHTTP API", version: str = "1.0.0", description: str = "",
                 docs: bool = True, openapi_url: str | None = "/openapi.json", docs_url: str | None = "/docs",
                 include_websocket_docs: bool = True, cache_schema: bool = True, servers: Any = None) -> None:
        super().__init__(title=title, version=version, description=description,
                         include_websocket_docs=include_websocket_docs, openapi_url=openapi_url if docs else None,
                         docs_url=docs_url if docs else None, max_message_size=MAX_MESSAGE_SIZE)
        self.server_header = SERVER_HEADER
        self.query_specs: dict[str, dict[str, Any]] = {}  # path -> typed query spec
        _state["app"] = self

    # -- routes: the firmware's decorator kwargs; handlers take path and query parameters as kwargs --------------
    def route(self, path: str, methods: list[str], query: dict[str, Any] | None = None,
              protocols: Any = None, websocket: bool = False, **options: Any) -> Callable[[Any], Any]:
        unknown = set(options) - set(_ROUTE_OPTIONS) - set(_OPENAPI_ONLY)
        if unknown:
            raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
        kept = {k: v for k, v in options.items() if k in _ROUTE_OPTIONS}

        def decorator(endpoint: Any) -> Any:
            if websocket:
                self.add_route(path, endpoint, ["GET"], websocket=True, protocols=protocols, **kept)
            else:
                self.query_specs[path] = dict(query or {})
                self.add_route(path, _with_query_kwargs(endpoint, query), [m.upper() for m in methods],
                               with_request=True, **kept)
            return endpoint
        return decorator

    def get(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.route(path, ["GET"], **options)

    def post(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.route(path, ["POST"], **options)

    def put(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.route(path, ["PUT"], **options)

    def patch(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.route(path, ["PATCH"], **options)

    def delete(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.route(path, ["DELETE"], **options)

    def websocket(self, path: str, protocols: Any = None, **options: Any) -> Callable[[Any], Any]:
        return self.route(path, ["GET"], protocols=protocols, websocket=True, **options)

    def openapi(self) -> dict[str, Any]:
        document = super().openapi()
        for route in self.routes:
            spec = self.query_specs.get(route.path)
            item = document["paths"].get(openapi_path(route))
            if not spec or item is None:
                continue
            for operation in item.values():
                operation["parameters"] = operation["parameters"] + [
                    {"name": name, "in": "query", "required": False,
                     "schema": {"type": {int: "integer", float: "number", bool: "boolean"}.get(kind, "string")}}
                    for name, kind in spec.items()]
        return document

    def websocket_for(self, route: Any, request: Any, transport: Any, key: str, initial_data: bytes) -> Any:
        core = CoreWebSocket(request, transport, key, choose_subprotocol(request, route.protocols), self.server_header,
                             self.max_message_size, initial_data)
        return FirmwareWebSocket(core, request)

    async def handle_websocket(self, route: Any, ws: Any, transport: Any) -> None:
        core, request = ws._core, ws.request
        try:
            result = route.endpoint(ws, **request.path_params)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - a handler's error closes its connection, as on the board
            self.log(f"websocket {request.path}: handler raised {type(exc).__name__}: {exc}")
            if core.accepted:
                await core.close(1011, "internal error")
        await ws.stop_reader()
        if not core.accepted:
            refusal = error_response(CoreHTTPException(403, "WebSocket connection refused"))
            await write_response(transport.writer, refusal, self.server_header, keep_alive=False)
            await transport.close()
            return
        await core.finish()


def _with_query_kwargs(endpoint: Any, spec: dict[str, Any] | None) -> Any:
    """The core calls this with the request: the handler gets path parameters and the query parameters (those of
    the typed spec when there is one, else those its signature names) as keyword arguments."""
    parameters = inspect.signature(endpoint).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())

    def call(request: Any, **path_params: Any) -> Any:
        _state["request"] = request
        kwargs = dict(path_params)
        for name, text in request.query_params.items():
            if spec:
                if name in spec:
                    try:
                        kwargs[name] = _cast(spec[name], text)
                    except ValueError:
                        raise HTTPException(422, f"query parameter {name}: not a valid {spec[name].__name__}") from None
            elif takes_any or name in parameters:
                kwargs[name] = text
        return endpoint(**kwargs)

    call.__name__ = endpoint.__name__
    return call


class FirmwareWebSocket:
    """The WebSocket a handler gets from the firmware's bridge."""

    def __init__(self, core: CoreWebSocket, request: Any) -> None:
        self.request = request
        self._core = core
        self._queue: list[dict[str, Any]] = []
        self._ready = asyncio.Event()
        self._closed: dict[str, Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.dropped = 0  # the firmware keeps no such count; here for the sim's own tests

    async def accept(self, subprotocol: str | None = None) -> None:
        await self._core.accept(subprotocol)
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        """The bridge reads the connection whatever the handler does; a full queue drops the message."""
        while True:
            message = await self._core.receive()
            if message["type"] == "close":
                self._closed = {"type": "close", "code": message["code"]}
                self._ready.set()
                return
            if len(self._queue) >= RECEIVE_QUEUE_DEPTH:
                self.dropped += 1
                continue
            if message["type"] == "text":
                text = message["text"]
                self._queue.append({"type": "message", "opcode": OP_TEXT, "data": text.encode("utf-8"),
                                    "text": text, "final": True})
            else:
                self._queue.append({"type": "message", "opcode": OP_BINARY, "data": message["bytes"], "final": True})
            self._ready.set()

    async def receive(self) -> dict[str, Any]:
        if self._reader is None:
            raise RuntimeError("call accept() before receive()")
        while not self._queue:
            if self._closed is not None:
                return dict(self._closed)
            self._ready.clear()
            await self._ready.wait()
        return self._queue.pop(0)

    async def send_text(self, text: str) -> None:
        await self._core.send_text(text)

    async def send_bytes(self, data: bytes) -> None:
        await self._core.send_bytes(data)

    async def send_json(self, obj: Any) -> None:
        await self._core.send_text(json.dumps(obj))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.stop_reader()
        await self._core.close(code, reason)

    async def stop_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass


class ConnectionManager:
    """viperhttp_ws.ConnectionManager: rooms and broadcast; broadcasts return nothing."""

    def __init__(self) -> None:
        self._connections: list[FirmwareWebSocket] = []
        self._rooms: dict[str, list[FirmwareWebSocket]] = {}

    async def connect(self, ws: FirmwareWebSocket, room: str | None = None) -> None:
        await ws.accept()
        if ws not in self._connections:
            self._connections.append(ws)
        if room is not None:
            self.join_room(ws, room)

    def disconnect(self, ws: FirmwareWebSocket) -> None:
        if ws in self._connections:
            self._connections.remove(ws)
        for room in list(self._rooms):
            self.leave_room(ws, room)

    def join_room(self, ws: FirmwareWebSocket, room: str) -> None:
        if ws not in self._connections:
            self._connections.append(ws)
        members = self._rooms.setdefault(room, [])
        if ws not in members:
            members.append(ws)

    def leave_room(self, ws: FirmwareWebSocket, room: str) -> None:
        members = self._rooms.get(room, [])
        if ws in members:
            members.remove(ws)
        if not members:
            self._rooms.pop(room, None)

    async def broadcast_text(self, text: str, room: str | None = None) -> None:
        self._broadcast(encode_frame(OP_TEXT, text.encode("utf-8")), room)
        await asyncio.sleep(0)

    async def broadcast_json(self, obj: Any, room: str | None = None) -> None:
        await self.broadcast_text(json.dumps(obj), room)

    def _broadcast(self, frame: Any, room: str | None) -> None:
        members = list(self._connections if room is None else self._rooms.get(room, ()))
        for ws in members:
            if not ws._core.send_frame_nowait(frame):  # a member whose send fails is disconnected
                self.disconnect(ws)
                ws._core.abort()

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self._connections),
                "rooms": {name: len(members) for name, members in self._rooms.items()}}


def bridge_run(app: ViperHTTP, port: int = 8080, wifi: bool = True) -> None:
    """viperhttp_bridge.run: serve `app` until the board resets."""
    if wifi:
        raise OSError("WLAN: the simulated board has no Wi-Fi; join the network in the app and pass wifi=False")

    async def serve() -> None:
        server = Server(app, app.limits)
        await server.start(BIND_HOST, port)
        try:
            while True:
                await asyncio.sleep(3600)
        finally:
            await server.close()

    asyncio.run(serve())


def _populate(module: types.ModuleType) -> None:
    name = module.__name__
    if name == "viperhttp":
        module.__dict__.update(
            ViperHTTP=ViperHTTP, HTTPException=HTTPException, current_request=current_request, active_app=active_app,
            Response=core_http.Response, JSONResponse=core_http.JSONResponse,
            StreamingResponse=core_http.StreamingResponse)
    elif name == "viperhttp_ws":
        import viperhttp  # the board's: the built-in one this finder made

        module.ConnectionManager = ConnectionManager  # type: ignore[attr-defined]
        viperhttp.ConnectionManager = ConnectionManager
    elif name == "viperhttp_bridge":
        module.run = bridge_run  # type: ignore[attr-defined]


MODULES = ("viperhttp", "viperhttp_ws", "viperhttp_bridge")


class BuiltinModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """The firmware's modules, found after the board's filesystem (MicroPython's '.frozen' follows '')."""

    def __init__(self, fs_root: Path) -> None:
        self.fs_root = fs_root

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        if (self.fs_root / fullname).is_dir() or (self.fs_root / f"{fullname}.py").is_file():
            return importlib.machinery.PathFinder.find_spec(fullname, [str(self.fs_root)])
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        _populate(module)


def install(fs_root: Path) -> None:
    """Make the firmware's modules the board's: the reference framework this module is built on stays loaded
    for it, but the name `viperhttp` is the firmware's from now on."""
    # Every module of the reference, those it imports on first use (its OpenAPI document, streamed responses,
    # error phrases, path templates, ...) included, is loaded now and stays registered under its name: once
    # `viperhttp` is the firmware's, they could not be found as its submodules any more.
    import viperhttp

    for info in pkgutil.iter_modules(viperhttp.__path__):
        importlib.import_module("viperhttp." + info.name)
    del sys.modules["viperhttp"]
    sys.meta_path.insert(0, BuiltinModules(fs_root))
