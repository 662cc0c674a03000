"""`vhil`: one console script; each package registers its own subcommands.

Exit status convention for every subcommand: 0 the run held, 1 it did not (regression, failed verdict,
console event), 2 usage or setup error (one line on stderr naming what was wrong and what to do).
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import Sequence

from hil.errors import SetupError
from hil.lock import LOCK_TIMEOUT_ENV
from hil.runinfo import finish_open_runs

# Each module has register(subparsers) adding its subcommands; a subcommand's handler is args.func(args) -> int.
SUBCOMMAND_MODULES = ("vhil_serve.cli", "conformance.cli", "hil.commands", "hil.bench", "hil.farm.cli", "loadtest.cli",
                      "ci.matrix", "ci.report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vhil", description="ViperHTTP hardware-in-the-loop test and conformance suite")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    # SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so targets stop and partial reports get written.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "lock_timeout", None) is not None:
        # the environment carries it to whatever acquires the board: targets, suites, matrix cells, pytest
        os.environ[LOCK_TIMEOUT_ENV] = f"{args.lock_timeout:g}"
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    # a shell starts background jobs with SIGINT ignored; Ctrl-C (or a CI runner's SIGINT) must still stop us
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 1  # an unexpected exception (its traceback follows) is a failed run in the run's run.json
    try:
        code = int(args.func(args) or 0)
    except SetupError as exc:
        print(f"vhil {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"vhil {args.command}: interrupted", file=sys.stderr)
        code = 130
    finally:
        finish_open_runs(code)  # every report folder this command started records how it ended
    return code


if __name__ == "__main__":
    sys.exit(main())
