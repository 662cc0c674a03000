"""`vhil robustness`: target -> probe -> each check in turn -> baseline verdict -> JUnit + summary.json.

Reports are rewritten after every check, so a run that dies or is interrupted leaves a summary.json and JUnit
file with the checks done so far and the rest NOT RUN. Exit status: 0 held, 1 a property failed or is worse
than the baseline (or the run did not complete), 2 usage or setup error.
"""
from __future__ import annotations

import asyncio
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from conformance.baseline import BASELINES_DIR, Baseline, Verdict, compare, default_baseline_path, load_baseline
from conformance.results import OK, CaseResult, not_run
from conformance.robustness import outputs
from conformance.robustness.checks import (CHECK_TIMEOUT_S, CHECKS, Check, CheckResult, Context, Limits, Outcome,
                                           served_again)
from conformance.robustness.wire import Endpoint
from hil.artifacts import default_out_dir
from hil.errors import SetupError
from hil.targets import resolve_target
from hil.targets.base import NETWORK
from hil.probe import HEALTH_TIMEOUT_S, SUITE_START_PROBE_TIMEOUT_S, get_json_object_or_none, wait_reachable
from hil.runinfo import start_run

ROBUSTNESS_BASELINES_DIR = BASELINES_DIR / "robustness"
SUITE = "robustness"


def case_result(result: CheckResult) -> CaseResult:
    """A check as the baseline module's case: OK or FAILED, with the target's behaviour as the engine's words."""
    return CaseResult(case_id=result.name, description=result.prop, expectation=result.prop,
                      behavior=OK if result.passed else "FAILED", behavior_close="OK",
                      duration_ms=round(result.seconds * 1000, 1), result_text=result.message)


async def _check_then_settle(check: Check, ctx: Context) -> Outcome:
    outcome = await asyncio.wait_for(check.run(ctx), CHECK_TIMEOUT_S)
    await served_again(ctx)
    return outcome


def run_check(check: Check, ctx: Context) -> CheckResult:
    """One check on a fresh event loop, bounded in time; a connection error is the target's doing, so a failure."""
    started = time.monotonic()
    try:
        passed, message, figures = asyncio.run(_check_then_settle(check, ctx))
    except asyncio.TimeoutError:
        passed, message, figures = False, f"did not finish within {CHECK_TIMEOUT_S:g} s", {}
    except (OSError, EOFError) as exc:
        passed, message, figures = False, f"{type(exc).__name__}: {exc}", {}
    except Exception as exc:  # the run goes on to the next check; the message says it was the suite's own error
        passed, message, figures = False, f"the check itself failed ({type(exc).__name__}: {exc}): report it", {}
    return CheckResult(check.name, check.prop, passed, message, time.monotonic() - started, figures)


class Session:
    """One run's check results as they arrive; `write` rewrites the reports."""

    def __init__(self, target_name: str, describe: dict[str, Any], url: str, out_dir: Path,
                 baseline: Baseline | None, health: dict[str, Any] | None, limits: Limits) -> None:
        self.target_name, self.describe, self.url, self.out_dir = target_name, describe, url, out_dir
        self.baseline, self.health, self.limits = baseline, health, limits
        self.done: list[CheckResult] = []
        self.status = "running"
        self.started = time.monotonic()

    def results(self) -> list[CaseResult]:
        finished = {result.name: case_result(result) for result in self.done}
        return [finished.get(check.name) or not_run(check.name, check.prop, check.prop) for check in CHECKS]

    def write(self) -> Verdict:
        results = self.results()
        judged = results if self.status != "running" else [case_result(r) for r in self.done]
        verdict = compare(judged, self.baseline)
        outputs.write_reports(self.out_dir, results, verdict, self.baseline, self.done, status=self.status,
                              target=self.describe, target_health=self.health, limits=self.limits,
                              wall_time_s=time.monotonic() - self.started, url=self.url, argv=sys.argv[1:],
                              harness_version=version("viperhttp-hil"))
        return verdict


def _baseline(target_name: str, path: Path | None, no_baseline: bool) -> Baseline | None:
    if no_baseline:
        return None
    if path is not None:
        return load_baseline(path)  # a named file must exist
    default = default_baseline_path(target_name, ROBUSTNESS_BASELINES_DIR)
    return load_baseline(default) if default.exists() else None


def run_robustness(target_name: str, out: Path | None = None, boards: Path | None = None,
                   baseline_path: Path | None = None, no_baseline: bool = False,
                   console: Console | None = None) -> int:
    console = console or Console()
    if baseline_path is not None and no_baseline:
        raise SetupError("--baseline and --no-baseline contradict each other: give one")
    target = resolve_target(target_name, boards)
    if not target.has(NETWORK):
        raise SetupError(f"target {target.name} has no network endpoint: the robustness suite needs the DUT app over HTTP")
    target.require_available()
    baseline = _baseline(target.name, baseline_path, no_baseline)
    out_dir = Path(out) if out else default_out_dir(target.name, SUITE)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_info = start_run(out_dir, SUITE, target.name)
    target.log_dir = out_dir / "target"

    with target:
        assert target.base_url is not None
        wait_reachable(target.base_url, SUITE_START_PROBE_TIMEOUT_S)
        health = get_json_object_or_none(target.http_url("/health"), HEALTH_TIMEOUT_S)
        run_info.identify(health)
        if health is None:
            raise SetupError(f"target {target.name}: GET {target.http_url('/health')} gave no JSON; "
                             "the robustness suite needs the DUT app (docs/dut-app.md)")
        limits = Limits.from_health(health)
        ctx = Context(target=target, endpoint=Endpoint.of(target.base_url), limits=limits, out_dir=out_dir)
        session = Session(target.name, target.describe(), target.base_url, out_dir, baseline, health, limits)
        session.write()
        console.print(f"robustness: {target.name} at {target.base_url}, {len(CHECKS)} checks", highlight=False)
        try:
            for number, check in enumerate(CHECKS, 1):
                with console.status(f"[{number}/{len(CHECKS)}] {check.name} ..."):
                    result = run_check(check, ctx)
                session.done.append(result)
                session.write()
                mark = "[green]held[/green]" if result.passed else "[red]FAILED[/red]"
                console.print(f"[{number}/{len(CHECKS)}] {check.name:<26} {mark} {result.seconds:5.1f} s  "
                              f"{result.message}", highlight=False)
        except KeyboardInterrupt:
            session.status = "interrupted"
            session.write()
            console.print(f"interrupted: partial reports in {out_dir}", highlight=False)
            raise
        session.status = "complete"
        verdict = session.write()

    console.print(figures_table(session.done))
    return outputs.print_verdict(console, verdict, baseline, out_dir)


def figures_table(done: list[CheckResult]) -> Table:
    table = Table(title="robustness figures")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in outputs.figures(done).items():
        table.add_row(name, "absent" if value is None else str(value))
    return table
