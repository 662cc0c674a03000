"""`vhil targets` and `vhil hil exec|deploy|run|monitor|flash` (the interface is fixed: CI scripts use it).

Exit status: 0 done, 1 the board failed (traceback, panic, reset, verification), 2 bad input or setup.
A console event ends `exec`/`run` with one line naming its kind (`panic: Guru Meditation Error ...`), then details.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hil.errors import BoardFailure, SetupError
from hil.lock import add_lock_timeout_option
from hil.redact import redact
from hil.serial.console import ConsoleEventError
from hil.serial.events import BROWNOUT, FATAL_KINDS, PANIC, WATCHDOG
from hil.targets.serial import SerialTarget
from hil.targets import TARGET_HELP, Target, list_targets, resolve_target
from hil.targets.base import FLASH, NETWORK, SERIAL

EXIT_OK, EXIT_FAILED = 0, 1
MONITOR_POLL_S = 0.1


def register(subparsers: argparse._SubParsersAction) -> None:
    targets = subparsers.add_parser("targets", help="list targets: kind, capabilities, available or why not")
    targets.add_argument("--boards", type=Path, default=None, metavar="FILE", help="board inventory (boards.toml)")
    targets.set_defaults(func=cmd_targets)

    hil = subparsers.add_parser("hil", help="drive a serial-attached target: exec, deploy, run, monitor, flash")
    actions = hil.add_subparsers(dest="hil_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--target", required=True, metavar="TARGET", help=TARGET_HELP)
        parser.add_argument("--boards", type=Path, default=None, metavar="FILE", help="board inventory (boards.toml)")
        parser.add_argument("--logs", type=Path, default=None, metavar="DIR", help="write the serial log here")
        add_lock_timeout_option(parser)
        return parser

    exec_parser = action("exec", "run CODE on the board; print what it printed")
    exec_parser.add_argument("code", metavar="CODE")
    exec_parser.add_argument("--timeout", type=float, default=30.0, help="seconds the code may run (default 30)")
    exec_parser.set_defaults(func=cmd_exec)

    deploy = action("deploy", "write files to the board, verified (default: the framework and the DUT app)")
    deploy.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders; folders keep their name")
    deploy.add_argument("--clean", action="store_true",
                        help="first remove a /viperhttp package from the board's filesystem (it would shadow the "
                             "built-in module of a board running ViperHTTP firmware)")
    deploy.set_defaults(func=cmd_deploy)

    run = action("run", "deploy, reset, wait for the DUT app, print its base URL, stay until Ctrl-C "
                        "(mpy and host: start the DUT app, print its base URL, stay until Ctrl-C)")
    run.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    run.set_defaults(func=cmd_run)

    monitor = action("monitor", "show the console with the watchers on")
    monitor.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    monitor.set_defaults(func=cmd_monitor)

    flash = action("flash", "write the inventory's firmware images with esptool")
    flash.set_defaults(func=cmd_flash)


def cmd_targets(args: argparse.Namespace) -> int:
    table = Table(title="vhil targets")
    for column in ("target", "kind", "firmware", "capabilities", "available"):
        table.add_column(column)
    for target in list_targets(args.boards):
        availability = target.availability()
        firmware = target.firmware_kind if isinstance(target, SerialTarget) else "-"
        table.add_row(target.name, target.kind, firmware, ", ".join(sorted(target.capabilities)) or "-",
                      "yes" if availability.ok else f"no: {availability.reason}")
    Console().print(table)
    return EXIT_OK


def _serial_target(args: argparse.Namespace, need: str = SERIAL) -> SerialTarget:
    target = resolve_target(args.target, args.boards)
    if not target.has(need) or not isinstance(target, SerialTarget):
        raise SetupError(f"target {args.target} has no {need} capability ({target.kind}); use sim, qemu-microbit, "
                         "qemu-esp32 or a board:<id> with a port")
    target.require_available()
    target.log_dir = args.logs
    target.start_app = False
    return target


def _event_exit(headline_and_details: str) -> int:
    """The one-line summary naming the event kind, then the details (stderr)."""
    print(redact(headline_and_details), file=sys.stderr)
    return EXIT_FAILED


def _failure_exit(target: Target, exc: BoardFailure) -> int:
    console = getattr(target, "console", None)
    if isinstance(exc, ConsoleEventError) and console is not None:
        console.wait_complete(exc.event)  # the lines after the event's first (a backtrace) belong to its report
    return _event_exit(exc.report())


def cmd_exec(args: argparse.Namespace) -> int:
    target = _serial_target(args)
    try:
        with target:
            result = target.session().exec(args.code, args.timeout)
    except BoardFailure as exc:
        return _failure_exit(target, exc)
    sys.stdout.write(redact(result.output))
    sys.stdout.flush()
    if result.error:
        last = result.error.strip().splitlines()[-1] if result.error.strip() else "traceback"
        return _event_exit(f"traceback: {last}\n{result.error.rstrip()}")
    return EXIT_OK


def _collect(paths: list[Path]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in paths:
        if path.is_file():
            files["/" + path.name] = path.read_bytes()
        elif path.is_dir():
            for source in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                files[f"/{path.name}/{source.relative_to(path).as_posix()}"] = source.read_bytes()
        else:
            raise SetupError(f"{path} does not exist; name files or folders to deploy")
    return files


def cmd_deploy(args: argparse.Namespace) -> int:
    files = _collect(args.paths) if args.paths else None
    target = _serial_target(args)
    if files is None and not target.has(NETWORK):
        raise SetupError(f"target {args.target} cannot serve the DUT app (no network capability): "
                         "name the files to deploy")
    try:
        with target:
            started = time.monotonic()
            deployed = target.deploy(files, progress=lambda path: print(f"deploying {path} ...", file=sys.stderr),
                                     clean=args.clean)
    except BoardFailure as exc:
        return _failure_exit(target, exc)
    for item in deployed:
        print(f"{item.path}\t{item.size} bytes\t{item.digest}\t{item.seconds:.2f} s\tverified")
    print(f"{len(deployed)} files, {sum(d.size for d in deployed)} bytes in {time.monotonic() - started:.2f} s")
    return EXIT_OK


def _watch(target: SerialTarget, duration: float | None, echo: bool, stop_kinds: tuple[str, ...]) -> int:
    """Until Ctrl-C or `duration`: print console output (echo); end (exit 1) at the first event of `stop_kinds`.

    With echo on, every event is also announced on stderr as it is seen.
    """
    assert target.console is not None
    seen = target.console.event_count()
    deadline = time.monotonic() + duration if duration is not None else None
    while deadline is None or time.monotonic() < deadline:
        time.sleep(MONITOR_POLL_S)
        if echo:
            text = target.console.read_available().decode("utf-8", errors="replace")
            if text:
                sys.stdout.write(redact(text.replace("\r\n", "\n")))
                sys.stdout.flush()
        events = target.events_since(seen)
        seen = target.console.event_count()
        for event in events:
            if event.kind in stop_kinds:
                target.console.wait_complete(event)
                return _event_exit(event.report())
            if echo:
                print(f"[vhil] {event.headline()}", file=sys.stderr, flush=True)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    target = resolve_target(args.target, args.boards)
    if target.kind in ("mpy", "host"):
        return _run_local_server(target, args)
    target = _serial_target(args, need=NETWORK)
    try:
        with target:
            target.deploy(progress=lambda path: print(f"deploying {path} ...", file=sys.stderr))
            url = target.run_app()
            print(url, flush=True)
            print(f"DUT app ready on {url}; Ctrl-C to stop", file=sys.stderr)
            return _watch(target, args.duration, echo=False, stop_kinds=FATAL_KINDS)
    except BoardFailure as exc:
        return _failure_exit(target, exc)


def _run_local_server(target: Target, args: argparse.Namespace) -> int:
    """mpy and host: a local process serving the DUT app. Print its base URL and stay up until Ctrl-C or
    --duration; exit 1 if the process dies meanwhile."""
    target.require_available()
    target.log_dir = args.logs
    with target:
        print(target.base_url, flush=True)
        print(f"DUT app ready on {target.base_url}; Ctrl-C to stop", file=sys.stderr, flush=True)
        process = getattr(target, "process", None)  # MpyTarget and HostTarget: a ManagedProcess
        deadline = time.monotonic() + args.duration if args.duration is not None else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(MONITOR_POLL_S)
            if process is not None and not process.alive():
                last = process.output().strip().splitlines()[-3:]
                return _event_exit(f"exited: the {target.kind} server stopped (status {process.proc.returncode}): "
                                   + " | ".join(last))
    return EXIT_OK


def cmd_monitor(args: argparse.Namespace) -> int:
    target = _serial_target(args)
    try:
        target.launch()
        target.open_console()
        # a monitor shows resets and tracebacks and keeps going; a crash ends it
        return _watch(target, args.duration, echo=True, stop_kinds=(PANIC, BROWNOUT, WATCHDOG))
    finally:
        target.stop()


def cmd_flash(args: argparse.Namespace) -> int:
    from hil.targets.flash import flash_board
    from hil.targets.board import BoardTarget

    target = resolve_target(args.target, args.boards)
    if not isinstance(target, BoardTarget) or target.board is None:
        raise SetupError(f"target {args.target} cannot be flashed: only board:<id> targets from the inventory can")
    if not target.has(FLASH):
        reason = "no flash.images in the inventory" if not target.board.images else "no serial port"
        print(f"flash skipped: board {target.board.id} has {reason}")
        return EXIT_OK
    log = args.logs / "esptool.log" if args.logs else None
    target.acquire()
    try:
        board = replace(target.board, port=target.console_url())  # a farm board is flashed through its place
        result = flash_board(board, log)
    finally:
        target.release()
    print(result.output_tail)
    if not result.ok:
        return _event_exit(f"flash: esptool failed or did not verify ({result.verified_regions}/{len(target.board.images)} "
                           f"regions verified)")
    print(f"flashed and verified {result.verified_regions} regions in {result.seconds} s")
    return EXIT_OK
