"""The real DUT app on the reference framework with one robustness defect put back, for tests/test_robustness.py.

    python tests/_servers_robustness.py split-read
        ByteBuffer.read_line as it was before issue 13: its scan position is an absolute offset that feed()'s
        compaction moves, so a line arriving in two reads is read wrongly (headers swallowed, a body left over
        as a second request, a WebSocket handshake never answered).

Prints `listening on http://127.0.0.1:PORT` once it accepts connections.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from collections.abc import Callable

HERE = Path(__file__).resolve()


def _read_line_split_bug(self: Any, limit: int) -> Any:
    scanned = self._pos
    while True:
        end = bytes(self._buf[scanned:]).find(b"\r\n")
        if end >= 0:
            end += scanned
            if end - self._pos > limit:
                return None
            line = bytes(self._buf[self._pos:end])
            self._pos = end + 2
            return line
        if len(self._buf) - self._pos > limit:
            return None
        if self.eof:
            raise EOFError("connection closed inside a line")
        scanned = max(self._pos, len(self._buf) - 1)  # absolute: wrong once feed() compacts the buffer
        yield


def _fault_split_read() -> None:
    from viperhttp.http import ByteBuffer

    ByteBuffer.read_line = _read_line_split_bug  # type: ignore[method-assign]


FAULTS: dict[str, Callable[[], None]] = {"split-read": _fault_split_read}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fault", choices=sorted(FAULTS))
    args = parser.parse_args()
    FAULTS[args.fault]()
    from vhil_serve.cli import load_dut_module

    try:
        load_dut_module().main(host="127.0.0.1", port=0)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
