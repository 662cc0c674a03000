"""The one writer of the robustness suite's reports: summary.json (the conformance suite's shape plus `figures`,
`limits` and `checks`) and JUnit XML, each written atomically after every check, and the verdict it prints."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from conformance import outputs as conformance_outputs
from conformance.baseline import Baseline, Verdict
from conformance.results import NOT_RUN, CaseResult
from conformance.robustness.checks import CHECKS, CheckResult, Limits
from hil.artifacts import JUnitCase, write_junit
from hil.runinfo import write_summary

JUNIT_FILE = conformance_outputs.JUNIT_FILE


def figures(done: list[CheckResult]) -> dict[str, Any]:
    """The figures of the checks run so far in one flat mapping, in check order; None where the target did not
    give one (a check that failed before measuring it, memory the target does not report)."""
    declared = {check.name: check.figures for check in CHECKS}
    return {name: result.figures.get(name) for result in done for name in declared.get(result.name, ())}


def junit_cases(results: list[CaseResult], verdict: Verdict, baseline: Baseline | None) -> list[JUnitCase]:
    regressed = {change.case_id for change in verdict.regressions}
    cases = []
    for result in results:
        case = JUnitCase(name=result.case_id, classname=f"robustness.{result.section}",
                         seconds=(result.duration_ms or 0) / 1000.0, system_out=result.result_text)
        if result.case_id in regressed:
            case.failure = f"{result.case_id}: {result.result_text}"
            case.details = f"property: {result.description}\nseen: {result.result_text}"
        elif result.outcome == NOT_RUN:
            case.skipped = "not run: the run ended before this check"
        elif result.outcome != "OK" and baseline is not None:
            reason = baseline.reasons.get(result.case_id, "no reason given")
            case.system_out = f"FAILED, accepted by baseline {baseline.path}: {reason}\n{result.result_text}"
        cases.append(case)
    return cases


def write_reports(out_dir: Path, results: list[CaseResult], verdict: Verdict, baseline: Baseline | None,
                  done: list[CheckResult], *, status: str, target: dict[str, Any], target_health: dict[str, Any] | None,
                  limits: Limits, wall_time_s: float, url: str, argv: list[str], harness_version: str) -> None:
    summary = conformance_outputs.summary(
        results, verdict, baseline, status=status, engine="robustness", engine_version=harness_version,
        agent=(target_health or {}).get("impl"), target=target, target_health=target_health,
        wall_time_s=wall_time_s, selected=len(results), url=url, argv=argv, suite="robustness")
    summary["figures"] = figures(done)
    summary["numbers"].update(summary["figures"])  # the index plots them over runs (write_summary keeps numbers only)
    for case in summary["cases"]:
        case["report"] = JUNIT_FILE  # a check's property and what was seen are in its JUnit test case
    summary["limits"] = asdict(limits)
    summary["checks"] = [{"name": r.name, "property": r.prop, "passed": r.passed, "message": r.message,
                          "seconds": round(r.seconds, 3)} for r in done]
    write_junit(out_dir / JUNIT_FILE, f"robustness {target.get('name')}", junit_cases(results, verdict, baseline),
                wall_time_s)
    write_summary(out_dir, **summary)


def print_verdict(console: Console, verdict: Verdict, baseline: Baseline | None, out_dir: Path) -> int:
    """The closing lines and the exit status."""
    against = f"baseline {baseline.path}" if baseline else "no baseline"
    for change in verdict.improvements:
        console.print(f"[green]improved[/green] {change.case_id}: {change.was} -> {change.now} (update {against})",
                      highlight=False)
    console.print(f"reports: {out_dir}", highlight=False)
    if verdict.not_run:
        console.print(f"[red]{len(verdict.not_run)} checks not run[/red] (first: {verdict.not_run[0]})", highlight=False)
        return 1
    if verdict.regressions:
        console.print(f"[red]FAILED[/red] against {against}: " + ", ".join(c.case_id for c in verdict.regressions),
                      highlight=False)
        return 1
    console.print(f"[green]holds[/green] against {against}", highlight=False)
    return 0
