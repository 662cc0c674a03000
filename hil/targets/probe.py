"""Ports: is the target answering (fail fast with the URL named instead of letting a suite time out case by case),
and a free one to listen on."""
from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from hil.errors import SetupError

PROBE_TIMEOUT_S = 10.0


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


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the OS picks it; someone may take it before it is bound again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
