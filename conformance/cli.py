"""`vhil conformance`, `vhil contract` and `vhil robustness` (registered into the `vhil` dispatcher)."""
from __future__ import annotations

import argparse
from pathlib import Path

from hil.lock import add_lock_timeout_option
from hil.targets import TARGET_HELP
from conformance.engines import ENGINES


def _conformance(args: argparse.Namespace) -> int:
    from conformance.runner import ConformanceOptions, run_conformance

    return run_conformance(ConformanceOptions(
        target=args.target, boards=args.boards, engine=args.engine, cases=tuple(args.cases or ()),
        exclude=tuple(args.exclude or ()), parallel=args.parallel, baseline=args.baseline,
        no_baseline=args.no_baseline, update_baseline=args.update_baseline, out=args.out,
        wstest_cmd=args.wstest_cmd, timeout_s=args.timeout))


def _contract(args: argparse.Namespace) -> int:
    from conformance.contract_runner import run_contract

    return run_contract(args.target, out=args.out, boards=args.boards, pytest_args=args.pytest_args or [],
                        baseline_path=args.baseline, no_baseline=args.no_baseline, update_baseline=args.update_baseline)


def _robustness(args: argparse.Namespace) -> int:
    from conformance.robustness.runner import run_robustness

    return run_robustness(args.target, out=args.out, boards=args.boards, baseline_path=args.baseline,
                          no_baseline=args.no_baseline)


def _add_target_options(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("--target", required=True, metavar="TARGET", help=TARGET_HELP)
    parser.add_argument("--boards", type=Path, default=None, metavar="FILE", help="board inventory")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR", help=out_help)
    add_lock_timeout_option(parser)


def _add_baseline_options(parser: argparse.ArgumentParser, accepted: str, default_path: str, without: str,
                          updatable: bool) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--baseline", type=Path, default=None, metavar="FILE",
                       help=f"{accepted} (default: {default_path} when present)")
    group.add_argument("--no-baseline", action="store_true", help=f"judge without a baseline: {without}")
    if updatable:
        parser.add_argument("--update-baseline", action="store_true", help="write this run's outcomes as the baseline")


def register(subparsers: argparse._SubParsersAction) -> None:
    conformance = subparsers.add_parser(
        "conformance", help="run the Autobahn cases against a target and judge them against its baseline",
        description="Run the Autobahn|Testsuite cases against TARGET's /ws/autobahn. Exit 0 when no case is worse "
                    "than the baseline, 1 when one is (or the run did not complete), 2 for a usage or setup error.")
    _add_target_options(conformance, "report folder (default: reports/<run-id>/<target>/conformance)")
    conformance.add_argument("--engine", choices=ENGINES, default="kosoku",
                             help="kosoku (default, Python API) or wstest (autobahn-testsuite fuzzingclient)")
    conformance.add_argument("--cases", nargs="+", action="extend", metavar="GLOB",
                             help="case ids or globs to run, e.g. 1.1.1 '9.*' (default: all)")
    conformance.add_argument("--exclude", nargs="+", action="extend", metavar="GLOB", help="case ids or globs to leave out")
    conformance.add_argument("--parallel", type=int, default=1, metavar="N",
                             help="cases run at once (section 9 always runs one at a time)")
    _add_baseline_options(conformance, "accepted outcomes", "conformance/baselines/<target>.json", "any FAILED/ERROR fails",
                          updatable=True)
    conformance.add_argument("--wstest-cmd", default=None, metavar="CMD",
                             help="how to run wstest, e.g. 'docker run --rm --network host -v $PWD:$PWD -w $PWD "
                                  "crossbario/autobahn-testsuite wstest' ({spec} is replaced by the spec path)")
    conformance.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                             help="outer budget for the whole run (default by target kind: host 900, url 1800, others 3600)")
    conformance.set_defaults(func=_conformance)

    contract = subparsers.add_parser(
        "contract", help="run the ViperHTTP API contract suite against a target",
        description="Run conformance/contract (pytest) against TARGET; JUnit and an HTML page go to --out. "
                    "Exit 0 when no contract test is worse than the target's baseline (every test passes without one), "
                    "1 when one is, 2 for a usage or setup error.")
    _add_target_options(contract, "report folder (default: reports/<run-id>/<target>/contract)")
    _add_baseline_options(contract, "accepted outcomes", "conformance/baselines/contract/<target>.json",
                          "any failed test fails", updatable=True)
    contract.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARG", help="extra pytest arguments after --, e.g. -- -k rooms")
    contract.set_defaults(func=_contract)

    robustness = subparsers.add_parser(
        "robustness", help="run the robustness checks (split reads, keep-alive, drip, idle cap, resets, ping flood, "
                           "schemathesis) against a target",
        description="Run the robustness checks (docs/robustness.md) against TARGET's DUT app. Exit 0 when every "
                    "property holds or fails only as its baseline accepts, 1 when one fails or is worse than the "
                    "baseline, 2 for a usage or setup error.")
    _add_target_options(robustness, "report folder (default: reports/<run-id>/<target>/robustness)")
    _add_baseline_options(robustness, "accepted failures", "conformance/baselines/robustness/<target>.json",
                          "any failed check fails", updatable=False)
    robustness.set_defaults(func=_robustness)
