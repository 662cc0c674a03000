# The DUT app's adapter for ViperHTTP firmware (MicroPython with ViperHTTP's C core and Python bridge built
# in): what the guide leaves open, done the way the firmware documents it. Chosen by main.py when the
# firmware's `viperhttp_bridge` module exists; runtime_reference.py has the same functions.
import sys

try:
    import uos as os  # the board's own os (on MicroPython both names are the same module)
except ImportError:
    import os

import viperhttp
import viperhttp_bridge
import viperhttp_ws  # noqa: F401 - importing it installs viperhttp.ConnectionManager

from dut_board import listen_address, memory_info  # noqa: F401 - memory_info is part of the adapter

DEFAULT_PORT = 80


def configure(app, config):
    """The firmware's message size limit is built in, not set by the app: the one the board's dut_config.json
    states (the inventory or target knows it), else None (the contract suite then skips the limit tests)."""
    global app_limits
    app_limits = tuple(config.get(key) for key in ("request_head_timeout_s", "max_connections", "send_buffer_limit"))
    return config.get("max_message_size")


app_limits = (None, None, None)  # set by configure()


def limits(app):
    """The firmware documents none of these limits: each is what the board's dut_config.json states (its
    inventory knows the build), else None, never a guess."""
    return app_limits


def describe():
    """(implementation, version, platform) for /health: the firmware's own version string."""
    return "ViperHTTP-firmware", os.uname().version, sys.platform


def ws_query(ws):
    """The firmware's WebSocket has no query_params: they are on its handshake request."""
    return ws.request.query_params


def get_with_query(app, path, params):
    """The firmware passes query parameters as keyword arguments; `query=` declares them (and documents
    them in OpenAPI)."""
    def decorator(handler):
        app.get(path, query=dict((name, int) for name, _ in params))(handler)
        return handler
    return decorator


def http_error(status, detail):
    return viperhttp.HTTPException(status_code=status, detail=detail)


def serve(app, config, host=None, port=None):
    host, port, advertise = listen_address(config, host, port, DEFAULT_PORT)
    if not port:
        raise ValueError("ViperHTTP firmware listens on a fixed port: set port in dut_config.json")
    # The bridge prints nothing the runner can wait for and does not return: announce the address first
    # (clients probe until it answers). The firmware binds every interface; `host` only names it.
    print("listening on http://%s:%d" % (advertise or host, port))
    viperhttp_bridge.run(app, port=port, wifi=False)
