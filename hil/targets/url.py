"""`url:<ws-url>`: any running server; nothing to start or stop."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from hil.errors import SetupError
from hil.targets.base import NETWORK, Target


@dataclass
class UrlTarget(Target):
    kind: str = "url"
    capabilities: frozenset[str] = frozenset({NETWORK})

    def __post_init__(self) -> None:
        raw = self.name[len("url:"):]
        parts = urlsplit(raw)
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
            raise SetupError(f"target {self.name!r}: expected url:ws://HOST:PORT[/path], e.g. url:ws://127.0.0.1:8765")
        try:
            _ = parts.port  # urlsplit parses the port lazily: a bad one raises only here
        except ValueError:
            raise SetupError(f"target {self.name!r}: the port is not a number") from None
        secure = parts.scheme in ("wss", "https")
        self.base_url = f"{'https' if secure else 'http'}://{parts.netloc}"
        if parts.path not in ("", "/"):
            query = f"?{parts.query}" if parts.query else ""
            self.explicit_ws_url = f"{'wss' if secure else 'ws'}://{parts.netloc}{parts.path}{query}"


def make_url_target(name: str, boards_path: object = None) -> UrlTarget:
    return UrlTarget(name=name)
