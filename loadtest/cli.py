"""`vhil load`: a broadcast load scenario, headless, against a target; exit 0 verdict holds, 1 it does not, 2 setup.

Writes to --out (default reports/<run-id>/<target>/load): summary.json (rewritten at every phase, final with the
verdict), locust_stats.csv / locust_stats_history.csv / locust_failures.csv / locust_exceptions.csv, report.html
(locust's report with the verdict on top), latency_over_time.png and, for stepup, latency_vs_subscribers.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from loadtest.scenarios import LoadOptions

SCENARIO_HELP = "fanout | rooms | churn | slow-consumer | stepup"


def register(subparsers: argparse._SubParsersAction) -> None:
    from hil.lock import add_lock_timeout_option
    from hil.targets import TARGET_HELP
    from loadtest.scenarios import SCENARIOS, LoadOptions

    defaults = LoadOptions(scenario="fanout")
    parser = subparsers.add_parser("load", help="broadcast load scenario with exact delivery accounting (locust)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help=TARGET_HELP)
    add_lock_timeout_option(parser)
    parser.add_argument("--scenario", required=True, choices=SCENARIOS, metavar="SCENARIO", help=SCENARIO_HELP)
    parser.add_argument("--users", type=int, default=defaults.users,
                        help=f"room members (stepup: the most it tries; churn: stable + churning) (default {defaults.users})")
    parser.add_argument("--publishers", type=int, default=defaults.publishers, help=f"publishing connections (default {defaults.publishers})")
    parser.add_argument("--rate", type=float, default=defaults.rate,
                        help=f"broadcasts per second, all publishers together, staggered (default {defaults.rate:g})")
    parser.add_argument("--rooms", type=int, default=None, help="rooms (default 4 for rooms, else 1)")
    parser.add_argument("--duration", type=float, default=defaults.duration,
                        help=f"publish window in seconds (stepup: split over its steps) (default {defaults.duration:g})")
    parser.add_argument("--p95-ms", type=float, default=defaults.p95_ms, help=f"p95 fan-out latency limit (default {defaults.p95_ms:g})")
    parser.add_argument("--min-delivery", type=float, default=defaults.min_delivery,
                        help="delivered/expected must be at least this; 1 (default) means exact")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="run a locust master with K workers (default 0: one process)")
    parser.add_argument("--local-workers", type=int, default=None,
                        help="of the --workers, how many to start on this machine (default all; see docs/load.md)")
    parser.add_argument("--master-bind", default=defaults.master_bind, help="address the locust master binds (default 127.0.0.1)")
    parser.add_argument("--master-port", type=int, default=defaults.master_port, help="locust master port (default: a free one)")
    parser.add_argument("--boards", type=Path, default=None, help="board inventory for board: targets")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/<run-id>/<target>/load)")
    parser.set_defaults(func=_run)


def _options(args: argparse.Namespace) -> LoadOptions:
    from loadtest.scenarios import LoadOptions

    options = LoadOptions(scenario=args.scenario, users=args.users, publishers=args.publishers, rate=args.rate,
                          rooms=args.rooms, duration=args.duration, p95_ms=args.p95_ms,
                          min_delivery=args.min_delivery, workers=args.workers, local_workers=args.local_workers,
                          master_bind=args.master_bind, master_port=args.master_port)
    options.validate()
    return options


def _run(args: argparse.Namespace) -> int:
    options = _options(args)
    # locust monkey-patches the process with gevent on import: only `vhil load` pays for that, and before any thread
    import locust  # noqa: F401

    from hil.artifacts import default_out_dir
    from hil.runinfo import start_run
    from hil.targets import resolve_target

    target = resolve_target(args.target, args.boards)
    target.require_available()
    out_dir = args.out or default_out_dir(args.target, "load")
    out_dir.mkdir(parents=True, exist_ok=True)
    run_info = start_run(out_dir, "load", target.name)
    target.log_dir = out_dir / "target-logs"
    from loadtest.run import LoadRun

    with target:
        return LoadRun(options, target, out_dir, run_info).execute()
