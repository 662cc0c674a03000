# The DUT app's adapter for the ViperHTTP reference framework (framework/viperhttp): what the guide leaves
# open, done the reference's way. runtime_viperhttp.py has the same functions for ViperHTTP firmware.
import sys

import viperhttp
from viperhttp.compat import MICROPYTHON

from dut_board import listen_address, memory_info  # noqa: F401 - memory_info is part of the adapter

DEFAULT_PORT = 80 if MICROPYTHON else 8765
MAX_MESSAGE_SIZE = 64 * 1024 if MICROPYTHON else 16 * 1024 * 1024


def configure(app, config):
    """Apply the runtime's settings to `app`; the message size limit it enforces (bytes)."""
    app.max_message_size = MAX_MESSAGE_SIZE
    if config.get("max_connections"):  # the board's (or target's) cap on connections served at once
        app.max_connections = int(config["max_connections"])
    return MAX_MESSAGE_SIZE


def limits(app):
    """The limits the framework documents and enforces, for /health: (seconds allowed for a request head,
    connections served at once, bytes a connection may leave unsent before reading pauses)."""
    return app.limits.head_timeout_s, app.max_connections, app.send_buffer_limit


def describe():
    """(implementation, version, platform) for /health."""
    return viperhttp.IMPLEMENTATION, viperhttp.VERSION, sys.platform


def ws_query(ws):
    """The query parameters of a WebSocket's handshake request."""
    return ws.query_params


def get_with_query(app, path, params):
    """Register a GET handler that takes the query parameters `params` ((name, largest value) pairs: integers
    from 0, anything else answered 422) as keyword arguments."""
    def decorator(handler):
        def with_query(request):
            query = request.query_params
            return handler(**dict((name, query[name]) for name, _ in params if name in query))
        try:
            with_query.__name__ = handler.__name__  # OpenAPI names the operation after it
        except AttributeError:
            pass  # MicroPython functions take no attributes
        app.get(path, with_request=True)(with_query)
        # The reference's routes have no query spec yet, so its OpenAPI document is completed for them, by
        # code loaded with the first request for the document (dut_openapi.py).
        build = app.openapi

        def openapi():
            import dut_openapi

            return dut_openapi.declare_query(build(), path, params)
        app.openapi = openapi
        return handler
    return decorator


def http_error(status, detail):
    return viperhttp.HTTPException(status, detail)


def serve(app, config, host=None, port=None):
    host, port, advertise = listen_address(config, host, port, DEFAULT_PORT)
    app.run(host=host, port=port, advertise_host=advertise)
