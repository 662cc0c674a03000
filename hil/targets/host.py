"""`host`: the DUT app on the reference framework (or a peer implementation) in a local process."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from hil.errors import SetupError
from hil.targets.base import NETWORK, Target
from hil.probe import READY_LINE_PATTERN
from hil.process import ManagedProcess

IMPLEMENTATIONS = ("reference", "websockets")
START_TIMEOUT_S = 20.0


@dataclass
class HostTarget(Target):
    kind: str = "host"
    capabilities: frozenset[str] = frozenset({NETWORK})
    impl: str = "reference"
    process: ManagedProcess | None = None

    def start(self) -> None:
        if self.impl not in IMPLEMENTATIONS:
            raise SetupError(f"unknown implementation {self.impl!r} in target {self.name!r}: use one of {', '.join(IMPLEMENTATIONS)}")
        log = self.log_dir / "server.log" if self.log_dir else None
        argv = [sys.executable, "-m", "vhil_serve", "--host", "127.0.0.1", "--port", "0", "--impl", self.impl]
        self.process = ManagedProcess(argv, log_path=log)
        try:
            match = self.process.wait_for_line(READY_LINE_PATTERN, START_TIMEOUT_S)
        except (TimeoutError, ProcessLookupError) as exc:
            output = self.process.output().strip().splitlines()[-5:]
            self.stop()
            raise SetupError(f"target {self.name}: `vhil serve` did not become ready ({exc}); last output: {' | '.join(output)}") from None
        self.base_url = match.group(1)
        self.details.update(impl=self.impl, pid=self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def make_host_target(name: str, boards_path: object = None) -> HostTarget:
    impl = name.split(":", 1)[1] if ":" in name else "reference"
    if impl not in IMPLEMENTATIONS:
        raise SetupError(f"unknown implementation in target {name!r}: use host or host:{' / host:'.join(IMPLEMENTATIONS)}")
    return HostTarget(name=name, impl=impl)
