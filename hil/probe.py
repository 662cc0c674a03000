"""Reaching a target: is it answering (fail fast with the URL named instead of letting a suite time out case by
case), a JSON GET on its routes, and a free port to listen on."""
from __future__ import annotations

import json
import socket
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from hil.errors import SetupError

# What every server under test prints once it accepts connections (the DUT app, the peers, the mpy bridge):
# group 1 the base URL, group 2 the port.
READY_LINE_PATTERN = r"listening on (http://[^\s/:]+:(\d+))"
PROBE_TIMEOUT_S = 10.0
SUITE_START_PROBE_TIMEOUT_S = 8.0  # a suite's unreachable-target error must come within 10 s of its start
JSON_GET_TIMEOUT_S = 5.0
HEALTH_TIMEOUT_S = 3.0  # /health for a report's facts: worth a short wait only


def wait_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Wait until a TCP connection to the URL's host and port succeeds; SetupError naming the URL otherwise."""
    parts = urlsplit(url)
    default_port = 443 if parts.scheme in ("https", "wss") else 80
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
                return
        except OSError as exc:
            last_error = exc
            time.sleep(0.2)
    raise SetupError(f"target unreachable: {url} did not accept a connection within {timeout:g} s ({last_error})")


def get_json(url: str, timeout: float = JSON_GET_TIMEOUT_S) -> Any:
    """The decoded body of a GET on a JSON route. OSError when it fails (urllib.error.HTTPError for a non-2xx
    status, URLError when nothing answers), ValueError when the body is not JSON."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def get_json_object_or_none(url: str, timeout: float = JSON_GET_TIMEOUT_S) -> dict[str, Any] | None:
    """A JSON object from a GET, None when the route does not answer with one (for facts a report can go without)."""
    try:
        data = get_json(url, timeout)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the OS picks it; someone may take it before it is bound again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
