"""The one target abstraction every suite uses.

A target is data plus capabilities. Entering it (context manager) starts or attaches to the device under test;
leaving it releases every process and port it took, whatever happened in between. Suites ask a target for
endpoints (`base_url`, `ws_url`, `serial_url`) and never learn how it was started.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hil.errors import SetupError

SERIAL = "serial"  # a MicroPython console the runner can drive (raw REPL)
NETWORK = "network"  # an HTTP/WebSocket endpoint serving the DUT app
FLASH = "flash"  # firmware can be written (esptool)
CAPABILITIES = (SERIAL, NETWORK, FLASH)


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""  # when not ok: why, and how to get it


@dataclass
class Target:
    """Base class. Subclasses set `kind` and `capabilities` and override `availability`, `start`, `stop`."""

    name: str  # as the user wrote it: host, sim, url:ws://..., board:esp1
    kind: str = "abstract"
    capabilities: frozenset[str] = frozenset()
    base_url: str | None = None  # http://HOST:PORT of the DUT app, once known
    serial_url: str | None = None  # pyserial URL of the console, once known
    explicit_ws_url: str | None = None  # a WebSocket URL the user gave with its own path (url: targets)
    details: dict[str, Any] = field(default_factory=dict)  # facts for reports: versions, ports, pids
    log_dir: Path | None = None  # where the target writes its own logs (server output, serial log); set by the suite

    def availability(self) -> Availability:
        return Availability(True)

    def require_available(self) -> None:
        """SetupError, naming the target, why and how to get it, when it cannot be used on this machine."""
        availability = self.availability()
        if not availability.ok:
            raise SetupError(f"target {self.name} unavailable: {availability.reason}")

    def start(self) -> None:
        """Start or attach. Must leave nothing running if it raises."""

    def stop(self) -> None:
        """Release everything `start` took. Idempotent."""

    def __enter__(self) -> "Target":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def ws_url(self, path: str) -> str:
        """The WebSocket URL of `path` on the DUT app (`path` starts with `/`, may carry a query)."""
        if not self.base_url:
            raise RuntimeError(f"target {self.name} has no network endpoint (is it started?)")
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{path}"

    def http_url(self, path: str) -> str:
        if not self.base_url:
            raise RuntimeError(f"target {self.name} has no network endpoint (is it started?)")
        return self.base_url.rstrip("/") + path

    def describe(self) -> dict[str, Any]:
        """What reports say about the target."""
        return {
            "name": self.name,
            "kind": self.kind,
            "capabilities": sorted(self.capabilities),
            "base_url": self.base_url,
            "serial_url": self.serial_url,
            **self.details,
        }
