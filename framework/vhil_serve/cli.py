"""`vhil serve`: run the DUT app on this machine with the reference framework or a peer implementation."""
from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
from types import ModuleType
from typing import Sequence

IMPLEMENTATIONS = ("reference", "websockets")


def load_dut_module() -> ModuleType:
    """framework/dut/main.py as a module (not as __main__), so its app is built but not run."""
    from hil.dut_app import DUT_DIR, DUT_MAIN

    if str(DUT_DIR) not in sys.path:
        sys.path.insert(0, str(DUT_DIR))  # main.py imports its adapter modules from its own folder, as on a board
    spec = importlib.util.spec_from_file_location("vhil_dut_main", DUT_MAIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(host: str, port: int, impl: str) -> None:
    if impl == "reference":
        run = load_dut_module().main
    else:
        from vhil_serve.peer_websockets import run
    # What the imports built lives as long as the process: out of the collector's sight, a full collection
    # walks only what connections hold, which halves its pause while hundreds of connections are open.
    gc.freeze()
    run(host=host, port=port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind; 0 picks a free one (default 8765)")
    parser.add_argument("--impl", choices=IMPLEMENTATIONS, default="reference",
                        help="reference: the ViperHTTP reference framework; websockets: the peer built on the websockets library")


def _run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print(f"vhil serve: error: --port must be 0-65535 (0 picks a free one), got {args.port}", file=sys.stderr)
        return 2
    try:
        serve(args.host, args.port, args.impl)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"vhil serve: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the DUT app locally", description=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=_run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vhil serve", description=__doc__)
    add_arguments(parser)
    return _run(parser.parse_args(argv))
