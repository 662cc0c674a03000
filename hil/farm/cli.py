"""`vhil farm export|release|rehearse`: the suite on a labgrid board farm (docs/farm.md).

Exit status: 0 done (rehearse: every job passed, no overlap, nothing left running), 1 the rehearsal did not hold,
2 bad input or setup (no coordinator, no ser2net, a bad inventory).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hil.artifacts import REPORTS_ROOT, atomic_write_text, new_run_id
from hil.errors import SetupError
from hil.inventory import load_inventory


def register(subparsers: argparse._SubParsersAction) -> None:
    farm = subparsers.add_parser("farm", help="labgrid board farm: export boards, release stale places, rehearse")
    actions = farm.add_subparsers(dest="farm_command", metavar="ACTION", required=True)

    export = actions.add_parser("export", help="exporter config and labgrid-client place commands for the inventory's boards")
    export.add_argument("--boards", type=Path, default=None, metavar="FILE", help="board inventory (boards.toml)")
    export.add_argument("--exporter", default=None, metavar="NAME", help="the exporter's name (default: this host's name)")
    export.add_argument("--out", type=Path, default=Path("farm"), metavar="DIR",
                        help="where exporter.yaml and places.sh go (default ./farm)")
    export.set_defaults(func=cmd_export)

    release = actions.add_parser("release", help="release places (and cancel reservations) whose vhil holder is gone")
    release.add_argument("--stale", action="store_true", required=True,
                         help="only those acquired by this host and user whose holder process is gone")
    release.set_defaults(func=cmd_release)

    rehearse = actions.add_parser("rehearse", help="a labgrid farm on loopback: K simulated boards, J concurrent jobs")
    rehearse.add_argument("--boards", type=int, default=4, metavar="K", help="simulated boards (default 4)")
    rehearse.add_argument("--jobs", type=int, default=8, metavar="J", help="concurrent jobs (default 8)")
    rehearse.add_argument("--quick", action="store_true",
                          help="each job runs the HIL suite's serial tests only (default: the HIL and contract suites)")
    rehearse.add_argument("--job-timeout", type=float, default=900.0, metavar="SECONDS",
                          help="a job (its wait for a board included) is stopped after this (default 900)")
    rehearse.add_argument("--out", type=Path, default=None, metavar="DIR",
                          help="results folder (default reports/<run-id>/farm-rehearsal)")
    rehearse.set_defaults(func=cmd_rehearse)


def cmd_export(args: argparse.Namespace) -> int:
    import socket

    from hil.farm.export import export_boards

    exporter = args.exporter or socket.gethostname()
    result = export_boards(load_inventory(args.boards), exporter)
    if not result.places:
        raise SetupError("no board in the inventory has a local serial port to export: "
                         + ("; ".join(result.skipped) or "the inventory is empty"))
    atomic_write_text(args.out / "exporter.yaml", result.exporter_yaml())
    atomic_write_text(args.out / "places.sh", result.places_script())
    (args.out / "places.sh").chmod(0o755)
    for note in result.skipped:
        print(f"skipped {note}", file=sys.stderr)
    print(f"{args.out / 'exporter.yaml'}: {len(result.places)} boards; run "
          f"`labgrid-exporter -c COORDINATOR -n {exporter} {args.out / 'exporter.yaml'}` on this host")
    print(f"{args.out / 'places.sh'}: creates the places; run it once with LG_COORDINATOR=HOST:PORT")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from hil.farm.places import Coordinator, release_stale

    coordinator = Coordinator()
    try:
        released = release_stale(coordinator)
    finally:
        coordinator.close()
    for lease in released:
        print(f"released {lease.kind} {lease.name} (its holder is gone: {lease.holder})")
    if not released:
        print(f"nothing stale for {coordinator.identity} on {coordinator.address}")
    return 0


def cmd_rehearse(args: argparse.Namespace) -> int:
    from hil.farm.rehearse import run_rehearsal
    from hil.lock import WaitStatus

    out = args.out or REPORTS_ROOT / new_run_id() / "farm-rehearsal"
    status = WaitStatus()
    try:
        result = run_rehearsal(args.boards, args.jobs, "quick" if args.quick else "full", out, args.job_timeout,
                               progress=lambda text: status.show(text, f"rehearse: {text}"))
    finally:
        status.done()
    waits = result.waits
    print(json.dumps({"boards": result.boards, "jobs": result.jobs, "workload": result.workload,
                      "wall_s": result.wall_s, "reservation_wait_s": waits.get("reservation_wait_s"),
                      "lock_wait_s": waits.get("lock_wait_s"), "sessions_per_board": result.sessions_per_board,
                      "overlaps": result.overlaps, "failed_jobs": [j.index for j in result.failed_jobs],
                      "cpu_s": result.cpu_s, "cores": result.cores, "load_avg_1m": result.load_avg_1m,
                      "board_busy_fraction": result.board_busy_fraction,
                      "left_running": result.left_running}, indent=1))
    print(f"{'held' if result.ok else 'FAILED'}: {out / 'rehearsal.json'}, {out / 'rehearsal.png'}")
    for job in result.failed_jobs:
        print(f"job {job.index} failed (exit {job.exit_code}): {job.log}", file=sys.stderr)
    return 0 if result.ok else 1
