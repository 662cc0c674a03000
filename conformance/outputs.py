"""What a conformance run writes and prints: summary.json, results.json, JUnit XML, the per-section table."""
from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any, Iterable

import websockets
from rich.console import Console
from rich.table import Table

from hil.artifacts import JUnitCase, atomic_write_json, write_junit
from hil.runinfo import FAILING_OUTCOMES, write_summary
from conformance.baseline import Baseline, Change, Verdict
from conformance.results import (ERROR, FAILED, NOT_RUN, OK, OUTCOMES, UNIMPLEMENTED, CaseResult, counts_by_section,
                                 totals)

RESULTS_FILE = "results.json"
JUNIT_FILE = "junit.xml"
AUTOBAHN_DIR = "autobahn"  # the Autobahn report layout (index.json, index.html, per-case JSON/HTML)


def section_names() -> dict[str, str]:
    """Autobahn's section titles (from kosoku's report assets when it is installed)."""
    try:
        from kosoku._report_assets import CaseCategories
    except ImportError:
        return {}
    return dict(CaseCategories)


def _plain(text: str, limit: int = 120) -> str:
    """Autobahn descriptions carry HTML (<b>, <br>); the terminal gets one plain line."""
    flat = " ".join(re.sub(r"<[^>]+>", " ", text).split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def _describe_change(change: Change) -> str:
    was = change.was if change.was is not None else "no baseline"
    return f"{change.case_id}: {was} -> {change.now}"


def summary(results: list[CaseResult], verdict: Verdict, baseline: Baseline | None, *, status: str, engine: str,
            engine_version: str, agent: str | None, target: dict[str, Any], target_health: dict[str, Any] | None,
            wall_time_s: float, selected: int, url: str, argv: list[str], suite: str = "conformance") -> dict[str, Any]:
    counts = totals(results)
    return {
        "suite": suite,
        "status": status,  # running, complete, interrupted, target died, timed out
        "holds": None if status == "running" else verdict.holds and status == "complete",
        "counts": counts,
        "numbers": {"wall_time_s": round(wall_time_s, 3), "ok_cases": counts.get(OK, 0),
                    "failed_cases": sum(n for outcome, n in counts.items() if outcome in FAILING_OUTCOMES)},
        "cases": [{"id": r.case_id, "outcome": r.outcome, "report": case_page(r)} for r in results],
        "engine": {"name": engine, "version": engine_version},
        "harness": {"python": platform.python_version(), "websockets": websockets.__version__},
        "target": target,
        "target_health": target_health,
        "agent": agent,
        "url": url,
        "argv": argv,
        "wall_time_s": round(wall_time_s, 3),
        "selected": selected,
        "totals": counts,
        "sections": counts_by_section(results),
        "baseline": str(baseline.path) if baseline and baseline.path else None,
        "regressions": [_describe_change(c) for c in verdict.regressions],
        "improvements": [_describe_change(c) for c in verdict.improvements],
        "tolerated_flips": [_describe_change(c) for c in verdict.flips],
        "not_run": len(verdict.not_run),
    }


def case_page(result: CaseResult) -> str | None:
    """The case's page in the Autobahn report folder (the engines write <agent>_case_<id>.html next to its JSON)."""
    if not result.report_file:
        return None
    return f"{AUTOBAHN_DIR}/{Path(result.report_file).with_suffix('.html').as_posix()}"


def junit_cases(results: Iterable[CaseResult], verdict: Verdict, baseline: Baseline | None) -> list[JUnitCase]:
    """One test case per Autobahn case; a failure is a case worse than its accepted outcome."""
    regressed = {change.case_id: change for change in verdict.regressions}
    cases = []
    for result in results:
        case = JUnitCase(name=result.case_id, classname=f"autobahn.section{result.section}",
                         seconds=(result.duration_ms or 0) / 1000.0,
                         system_out=f"{result.description}\n\n{result.what_was_seen()}".strip())
        change = regressed.get(result.case_id)
        if change is not None:
            accepted = change.was or "OK, NON-STRICT, INFORMATIONAL or UNIMPLEMENTED (no baseline)"
            case.failure = f"{result.case_id} {result.outcome}, accepted: {accepted}"
            case.details = f"expected: {result.expectation}\nseen: {result.what_was_seen()}"
        elif result.outcome == NOT_RUN:
            case.skipped = "not run: the run ended before this case"
        elif result.outcome == UNIMPLEMENTED:
            case.skipped = "UNIMPLEMENTED (accepted)"
        elif result.outcome in (FAILED, ERROR):
            case.system_out = f"{result.outcome}, accepted by baseline {baseline.path if baseline else ''}\n{case.system_out}"
        cases.append(case)
    return cases


def write_outputs(out_dir: Path, results: list[CaseResult], verdict: Verdict, baseline: Baseline | None,
                  summary_doc: dict[str, Any]) -> None:
    """All machine-readable outputs, each atomically; called after every batch and at the end."""
    atomic_write_json(out_dir / RESULTS_FILE, [result.to_json() for result in results])
    write_junit(out_dir / JUNIT_FILE, f"autobahn {summary_doc['target'].get('name')}",
                junit_cases(results, verdict, baseline), summary_doc["wall_time_s"])
    write_summary(out_dir, **summary_doc)


def section_table(results: list[CaseResult]) -> Table:
    counts = counts_by_section(results)
    present = [o for o in OUTCOMES if any(o in per for per in counts.values())]
    names = section_names()
    table = Table(title="Autobahn outcomes per section")
    table.add_column("section")
    for outcome in present:
        table.add_column(outcome, justify="right")
    for section, per in counts.items():
        table.add_row(f"{section} {names.get(section, '')}".strip(), *[str(per.get(o, "")) for o in present])
    table.add_row("total", *[str(sum(per.get(o, 0) for per in counts.values())) for o in present], style="bold")
    return table


def print_report(console: Console, results: list[CaseResult], verdict: Verdict, by_id: dict[str, CaseResult],
                 out_dir: Path) -> None:
    console.print(section_table(results))
    for change in verdict.regressions:
        result = by_id[change.case_id]
        console.print(f"[red]REGRESSION[/red] {_describe_change(change)} - {_plain(result.description)}\n    {result.what_was_seen()}",
                      highlight=False)
    for change in verdict.improvements:
        console.print(f"[green]improved[/green] {_describe_change(change)}", highlight=False)
    for change in verdict.flips:
        console.print(f"[yellow]flip (tolerated, target not strict)[/yellow] {_describe_change(change)}", highlight=False)
    if verdict.not_run:
        console.print(f"[red]{len(verdict.not_run)} cases not run[/red] (first: {verdict.not_run[0]})", highlight=False)
    console.print(f"reports: {out_dir}", highlight=False)
