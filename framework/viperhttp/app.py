# The application API: ViperHTTP, Router, route decorators, dispatch of HTTP requests and WebSocket
# connections (OpenAPI: openapi.py; path templates with parameters: templates.py). MicroPython cannot
# introspect function signatures, so a handler is called with its path parameters as keyword arguments, and
# receives the Request first only when its route says `with_request=True`.
import asyncio

from viperhttp.compat import default_max_connections, describe_exception, is_awaitable
from viperhttp.http import (
    HTMLResponse, HTTPException, JSONResponse, Limits, choose_subprotocol, is_upgrade_request, to_response,
)
from viperhttp.protocol import CLOSE_INTERNAL_ERROR, DEFAULT_MAX_MESSAGE_SIZE
from viperhttp.server import DEFAULT_SEND_BUFFER_LIMIT, Server, error_response, write_response
from viperhttp.websocket import WebSocket

IMPLEMENTATION = "ViperHTTP-reference"
VERSION = "0.1.0"

class Route:
    """One route. Options a route leaves at their default are read from the class, so a route object holds only
    what it sets (an app's routes live for its whole life, on a board's heap); `segments` is None for a path
    without parameters, which is matched as a whole string."""

    segments = None
    websocket = False
    protocols = ()
    summary = None
    description = None
    tags = ()
    operation_id = None
    with_request = False
    include_in_schema = True

    def __init__(self, path, methods, endpoint, websocket=False, protocols=None, summary=None,
                 description=None, tags=None, operation_id=None, with_request=False, include_in_schema=True):
        if not path.startswith("/"):
            raise ValueError("path must start with '/': %r" % path)
        self.path = path
        if "{" in path:
            from viperhttp.templates import parse_template  # loaded by the first route with a parameter

            segments = parse_template(path)
            if any(converter for _, converter in segments):
                self.segments = segments
        self.methods = tuple(methods)
        self.endpoint = endpoint
        if websocket:
            self.websocket = True
        if protocols:
            self.protocols = tuple(protocols)
        if summary is not None:
            self.summary = summary
        if description is not None:
            self.description = description
        if tags:
            self.tags = tuple(tags)
        if operation_id is not None:
            self.operation_id = operation_id
        if with_request:
            self.with_request = True
        if not include_in_schema:
            self.include_in_schema = False

    def match(self, path):
        if self.segments is None:
            return {} if path == self.path else None
        from viperhttp.templates import match_path

        return match_path(self.segments, path)


class Router:
    """A group of routes under a prefix, added to an app with `app.include_router(router)`."""

    def __init__(self, prefix="", tags=None):
        self.prefix = prefix.rstrip("/")
        self.tags = list(tags or [])
        self.routes = []

    def add_route(self, path, endpoint, methods, **options):
        self.routes.append(Route(path, methods, endpoint, **options))

    def route(self, path, methods, **options):
        def decorator(endpoint):
            self.add_route(path, endpoint, [m.upper() for m in methods], **options)
            return endpoint
        return decorator

    def get(self, path, **options):
        return self.route(path, ["GET"], **options)

    def post(self, path, **options):
        return self.route(path, ["POST"], **options)

    def put(self, path, **options):
        return self.route(path, ["PUT"], **options)

    def delete(self, path, **options):
        return self.route(path, ["DELETE"], **options)

    def websocket(self, path, protocols=None, **options):
        return self.route(path, ["GET"], websocket=True, protocols=protocols, **options)

    def include_router(self, router, prefix="", tags=None):
        full_prefix = self.prefix + prefix.rstrip("/") + router.prefix
        tags = list(tags or []) + router.tags
        for route in router.routes:  # a copy under the prefix, with the router's tags first
            self.routes.append(Route(
                full_prefix + route.path, route.methods, route.endpoint, route.websocket, route.protocols,
                route.summary, route.description, tags + [t for t in route.tags if t not in tags], route.operation_id,
                route.with_request, route.include_in_schema))


class ViperHTTP(Router):
    def __init__(self, title="ViperHTTP", version="0.1.0", description="", include_websocket_docs=True,
                 openapi_url="/openapi.json", docs_url="/docs", max_message_size=DEFAULT_MAX_MESSAGE_SIZE,
                 send_buffer_limit=DEFAULT_SEND_BUFFER_LIMIT, limits=None, max_connections=None):
        Router.__init__(self)
        self.title = title
        self.version = version
        self.description = description
        self.include_websocket_docs = include_websocket_docs
        self.max_message_size = max_message_size
        self.send_buffer_limit = send_buffer_limit
        self.limits = limits or Limits()
        self.max_connections = max_connections or default_max_connections()
        self.server_header = IMPLEMENTATION + "/" + VERSION
        self._server = None
        self.openapi_url = openapi_url
        if openapi_url:
            self.add_route(openapi_url, self._openapi_endpoint, ["GET"], include_in_schema=False)
        if docs_url:
            self.add_route(docs_url, self._docs_endpoint, ["GET"], include_in_schema=False)

    # -- dispatch ------------------------------------------------------------------------------------------
    def log(self, line):
        print(line)

    def websocket_route_for(self, request):
        """The WebSocket route this request is for, None for plain HTTP; HTTPException(404) for an upgrade
        request to a path without a WebSocket route."""
        ws_route = None
        http_match = False
        for route in self.routes:
            params = route.match(request.path)
            if params is None:
                continue
            if route.websocket:
                if ws_route is None:
                    ws_route = route
                    request.path_params = params
                    if route.segments is None:
                        request.path = route.path  # equal: the WebSocket keeps the route's string, not a copy
            else:
                http_match = True
        if is_upgrade_request(request):
            if ws_route is None:
                raise HTTPException(404, "no WebSocket route at " + request.path)
            return ws_route
        return None if http_match else ws_route

    async def handle_http(self, request):
        allowed = []
        for route in self.routes:
            if route.websocket:
                continue
            params = route.match(request.path)
            if params is None:
                continue
            methods = route.methods + (("HEAD",) if "GET" in route.methods else ())
            if request.method not in methods:
                allowed.extend(m for m in methods if m not in allowed)
                continue
            request.path_params = params
            try:
                result = route.endpoint(request, **params) if route.with_request else route.endpoint(**params)
                if is_awaitable(result):
                    result = await result
                return to_response(result)
            except HTTPException as exc:
                return error_response(exc)
            except Exception as exc:
                self.log("%s %s: handler raised %s" % (request.method, request.path, describe_exception(exc)))
                return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        if allowed:
            return error_response(HTTPException(405, "Method Not Allowed", {"Allow": ", ".join(allowed)}))
        return error_response(HTTPException(404, "Not Found"))

    def websocket_for(self, route, request, transport, key, initial_data):
        """The WebSocket a route's handler gets for an upgrade request (the server lets go of the request, and
        of the buffer the request was parsed from, once it has this)."""
        return WebSocket(request, transport, key, choose_subprotocol(request, route.protocols), self.server_header,
                         self.max_message_size, initial_data)

    async def handle_websocket(self, route, ws, transport):
        try:
            result = route.endpoint(ws, **ws.path_params)
            if is_awaitable(result):
                await result
        except Exception as exc:
            self.log("websocket %s: handler raised %s" % (ws.path, describe_exception(exc)))
            if ws.accepted:
                await ws.close(CLOSE_INTERNAL_ERROR, "internal error")
        if not ws.accepted:  # the handler refused the connection
            await write_response(transport.writer, error_response(HTTPException(403, "WebSocket connection refused")),
                                 self.server_header, keep_alive=False)
            await transport.close()
            return
        await ws.finish()

    # -- OpenAPI (built by viperhttp.openapi, imported by the first request for it) ----------------------------
    def openapi(self):
        from viperhttp.openapi import openapi_document

        return openapi_document(self)

    async def _openapi_endpoint(self):
        return JSONResponse(self.openapi())

    async def _docs_endpoint(self):
        from viperhttp.openapi import docs_page

        return HTMLResponse(docs_page(self))

    # -- running -------------------------------------------------------------------------------------------
    async def serve(self, host="0.0.0.0", port=80, advertise_host=None):
        """Serve until cancelled; prints `listening on http://HOST:PORT` once connections are accepted."""
        self._server = Server(self, self.limits)
        bound_port = await self._server.start(host, port)
        print("listening on http://%s:%d" % (advertise_host or host, bound_port))
        try:
            while True:
                await asyncio.sleep(3600)
        finally:
            await self._server.close()

    def run(self, host="0.0.0.0", port=80, advertise_host=None):
        asyncio.run(self.serve(host, port, advertise_host))
