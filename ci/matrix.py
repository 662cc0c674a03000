"""`vhil matrix`: run suites x targets, each cell in its own process, and write the report index as it goes.

Every cell is the same command a user would type (`vhil conformance --target host --out ...`), so a cell's
report folder is exactly what that command writes; the matrix only adds its exit status, wall time and log.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from hil.artifacts import REPORTS_ROOT, atomic_write_json, new_run_id, target_slug
from hil.errors import SetupError
from hil.targets import resolve_target

SUITES = ("conformance", "contract", "hil", "load", "robustness")
ANY_BOARD = "board:*"  # --targets 'board:*': the board cells, each run on any free board of the inventory
BOARD_SUITES = ("hil", "contract")  # the board cells when --suites is not given
# suite -> how its cell runs: the vhil subcommand (or pytest for the HIL suite), before --target/--out
_SUITE_COMMANDS = {
    "conformance": ["-m", "hil.cli", "conformance"],
    "contract": ["-m", "hil.cli", "contract"],
    "load": ["-m", "hil.cli", "load"],
    "robustness": ["-m", "hil.cli", "robustness"],
    "hil": ["-m", "pytest", str(Path(__file__).resolve().parent.parent / "hil" / "tests"), "-q", "-p", "no:cacheprovider"],
}


@dataclass(frozen=True)
class Cell:
    target: str
    suite: str
    args: tuple[str, ...] = ()
    timeout_s: float = 900.0


# The embedded defaults: every target that can run on a developer machine or a CI box without hardware.
# Targets that are unavailable here (no QEMU, no Node) show up in the index as unavailable, with the reason.
DEFAULT_CELLS = (
    Cell("host", "conformance"),
    Cell("host", "contract"),
    Cell("host", "load", ("--scenario", "fanout", "--users", "100", "--duration", "10"), 300),
    Cell("host", "robustness", (), 300),
    Cell("sim", "hil", (), 600),
    Cell("sim", "contract", (), 600),
    Cell("sim", "conformance", (), 900),
    Cell("sim", "robustness", (), 600),
    Cell("qemu-microbit", "hil", (), 600),
    Cell("mpy", "contract", (), 600),
    Cell("mpy", "conformance", ("--cases", "1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"), 1200),
    Cell("mpy", "robustness", (), 900),
)


@dataclass
class CellResult:
    target: str
    suite: str
    status: str  # pass | fail | error | timeout | unavailable | interrupted
    exit_code: int | None
    seconds: float
    out_dir: str
    log: str
    reason: str = ""
    command: list[str] = field(default_factory=list)
    board: str = ""  # a sharded cell (target board:*): the board that ran it


def cell_command(cell: Cell, out_dir: Path, boards: Path | None) -> list[str]:
    command = [sys.executable, *_SUITE_COMMANDS[cell.suite], "--target", cell.target]
    if boards is not None:
        command += ["--boards", str(boards)]
    if cell.suite == "hil":
        command += ["--junitxml", str(out_dir / "junit.xml"), "--target-logs", str(out_dir / "logs"),
                    f"--report-dir={out_dir}"]  # one word: see conformance/contract_runner.py
    else:
        command += ["--out", str(out_dir)]
    return command + list(cell.args)


_running: "set[subprocess.Popen[bytes]]" = set()  # cells running now (several at once when sharded over boards)


def run_cell(cell: Cell, run_dir: Path, boards: Path | None, console: Console, show_status: bool = True) -> CellResult:
    out_dir = run_dir / target_slug(cell.target) / cell.suite
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "cell.log"
    try:
        availability = resolve_target(cell.target, boards).availability()
    except SetupError as exc:
        return CellResult(cell.target, cell.suite, "error", None, 0.0, str(out_dir), str(log), str(exc))
    if not availability.ok:
        return CellResult(cell.target, cell.suite, "unavailable", None, 0.0, str(out_dir), str(log), availability.reason)
    command = cell_command(cell, out_dir, boards)
    env = dict(os.environ, VHIL_RUN_ID=run_dir.name, PYTHONUNBUFFERED="1")
    started = time.monotonic()
    spinner = console.status(f"{cell.target} / {cell.suite} ...") if show_status else contextlib.nullcontext()
    with open(log, "w", encoding="utf-8") as log_file, spinner:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
        _running.add(process)
        try:
            code = process.wait(cell.timeout_s)
            status = {0: "pass", 1: "fail"}.get(code, "error")
            reason = "" if code in (0, 1) else _last_line(log)
        except subprocess.TimeoutExpired:
            _stop(process)
            code, status, reason = None, "timeout", f"no result within {cell.timeout_s:g} s"
        except KeyboardInterrupt:
            _stop(process)
            code, status, reason = None, "interrupted", "Ctrl-C"
            raise
        finally:
            _running.discard(process)
            seconds = time.monotonic() - started
    return CellResult(cell.target, cell.suite, status, code, round(seconds, 2), str(out_dir), str(log), reason, command)


def stop_running() -> None:
    """Stop every cell still running (Ctrl-C during a sharded run: its cells run in other threads)."""
    for process in list(_running):
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT first (the cell writes its partial report and stops its target), then SIGKILL."""
    import signal

    for sig, wait in ((signal.SIGINT, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            process.wait(wait)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def select_cells(targets: list[str] | None, suites: list[str] | None) -> list[Cell]:
    cells = [c for c in DEFAULT_CELLS if (not targets or c.target in targets) and (not suites or c.suite in suites)]
    # a target named on the command line but absent from the defaults gets every suite that fits it
    for name in targets or []:
        if not any(c.target == name for c in DEFAULT_CELLS):
            cells += [Cell(name, suite) for suite in (suites or ("conformance", "contract", "hil", "robustness"))]
    return cells


def run_matrix(cells: list[Cell], reports_root: Path, boards: Path | None, console: Console,
               pool: list[str] | None = None) -> tuple[Path, list[CellResult]]:
    from ci.report import write_index

    run_dir = reports_root / new_run_id()
    run_dir.mkdir(parents=True)
    results: list[CellResult] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def save(finished: bool) -> None:
        atomic_write_json(run_dir / "matrix.json", {"run_id": run_dir.name, "started": started, "finished": finished,
                                                    "cells": [asdict(r) for r in results]})
        write_index(reports_root)

    if pool:  # board:* cells, concurrently, each on a free board of the pool
        from hil.farm.shard import run_sharded

        outcomes = run_sharded(cells, pool, lambda cell: run_cell(cell, run_dir, boards, console, show_status=False),
                               stop_running)
    else:
        outcomes = (run_cell(cell, run_dir, boards, console) for cell in cells)
    try:
        for number, result in enumerate(outcomes, 1):
            results.append(result)
            on = f" on {result.board}" if result.board else ""
            console.print(f"[{number}/{len(cells)}] {result.target:<16} {result.suite:<12} {_styled(result.status)}"
                          f"  {result.seconds:6.1f} s  {result.reason}{on}")
            save(finished=False)
    finally:
        save(finished=True)
    return run_dir, results


def _styled(status: str) -> str:
    color = {"pass": "green", "fail": "red", "error": "red", "timeout": "red", "unavailable": "yellow"}.get(status, "white")
    return f"[{color}]{status:<11}[/{color}]"


def _run(args: argparse.Namespace) -> int:
    console = Console()
    for suite in args.suites or []:
        if suite not in SUITES:
            raise SetupError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    boards = Path(args.boards) if args.boards else None
    pool = None
    if args.labels or (args.targets and ANY_BOARD in args.targets):
        if args.targets and set(args.targets) != {ANY_BOARD}:
            raise SetupError(f"--targets {ANY_BOARD} (or --labels) shards cells over boards: name no other target with it")
        from hil.farm.shard import board_pool
        from hil.inventory import load_inventory

        pool = board_pool(load_inventory(boards), args.labels or [])
        cells = select_cells([ANY_BOARD], args.suites or list(BOARD_SUITES))
    else:
        cells = select_cells(args.targets, args.suites)
    if not cells:
        raise SetupError("no cell matches those --targets/--suites; run `vhil matrix --help` for the defaults")
    run_dir, results = run_matrix(cells, Path(args.reports), boards, console, pool)
    console.print(f"reports: {run_dir}  index: {Path(args.reports) / 'index.html'}")
    return 1 if any(r.status not in ("pass", "unavailable") for r in results) else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = ", ".join(f"{c.target}/{c.suite}" for c in DEFAULT_CELLS)
    parser = subparsers.add_parser("matrix", help="run suites x targets and write the report index",
                                   description=f"{__doc__}\nDefault cells: {defaults}")
    parser.add_argument("--targets", nargs="+", metavar="TARGET", help="only these targets")
    parser.add_argument("--suites", nargs="+", metavar="SUITE", help=f"only these suites ({', '.join(SUITES)})")
    parser.add_argument("--boards", metavar="FILE", help="board inventory for board: targets")
    parser.add_argument("--labels", nargs="+", metavar="LABEL",
                        help=f"shard the board cells over the boards carrying these labels (implies --targets '{ANY_BOARD}')")
    parser.add_argument("--reports", default=str(REPORTS_ROOT), metavar="DIR", help="reports root (default reports/)")
    parser.set_defaults(func=_run)
