"""`vhil contract`: the contract suite (pytest, in this process) against one target; JUnit, summary.json and a short
HTML page (contract.html, written by the vhil plugin's report: hil/pytest_report.py).

Each contract test is a case judged against the target's baseline like `vhil conformance` judges Autobahn cases
(conformance/baseline.py): `conformance/baselines/contract/<target>.json` accepts known deviations, each with
its reason in "reasons"; the report still lists every accepted deviation as known.
Exit status: 0 no test is worse than the baseline (without one: every test passed), 1 one is, 2 usage or setup
error (bad target, unreachable target, nothing collected, bad baseline) or an interrupted run.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.baseline import (
    BASELINES_DIR,
    Baseline,
    compare,
    load_baseline,
    write_baseline,
)
from conformance.results import ERROR, FAILED, OK, CaseResult
from hil.artifacts import default_out_dir, target_slug
from hil.errors import SetupError
from hil.runinfo import set_summary_verdict
from hil.targets import resolve_target

CONTRACT_DIR = Path(__file__).resolve().parent / "contract"
CONTRACT_BASELINES_DIR = BASELINES_DIR / "contract"
_OUTCOME = {"passed": OK, "failed": FAILED, "error": ERROR}  # skipped tests are not judged
JUNIT_FILE = "contract-junit.xml"
SUITE = "contract"  # its report folder holds contract.html, summary.json and run.json (hil/pytest_report.py)


def _case_rows(junit_path: Path) -> list[tuple[str, str, float, str]]:
    """(test id, outcome, seconds, message) per test case of a JUnit file."""
    rows = []
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                text_lines = (element.text or "").strip().splitlines()
                message = element.get("message") or (text_lines[-1] if text_lines else "")
                break
        rows.append((f"{case.get('classname')}::{case.get('name')}", outcome, float(case.get("time") or 0), message or ""))
    return rows


def case_id(test_id: str, target_name: str) -> str:
    """`test_echo.py::test_x[bytes]` from the JUnit id `conformance.contract.test_echo::test_x[TARGET-bytes]`: the
    same case whatever the target, so one baseline format serves every target."""
    module, _, name = test_id.partition("::")
    name = name.replace(f"[{target_name}-", "[").replace(f"[{target_name}]", "")
    return f"{module.rsplit('.', 1)[-1]}.py::{name}"


def contract_baseline_path(target_name: str) -> Path:
    return CONTRACT_BASELINES_DIR / f"{target_slug(target_name)}.json"


def judged_cases(rows: list[tuple[str, str, float, str]], target_name: str) -> list[CaseResult]:
    return [CaseResult(case_id=case_id(test, target_name), behavior=_OUTCOME[outcome], behavior_close=OK)
            for test, outcome, _seconds, _message in rows if outcome in _OUTCOME]


def firmware_facts(junit_path: Path) -> dict[str, str]:
    """The firmware under test, as the suite recorded it (firmware_* JUnit properties)."""
    return {prop.get("name", "")[len("firmware_"):]: prop.get("value", "")
            for prop in ET.parse(junit_path).getroot().iter("property")
            if prop.get("name", "").startswith("firmware_")}


def _baseline(target_name: str, path: Path | None, no_baseline: bool, update: bool) -> tuple[Baseline | None, Path]:
    if path is not None and no_baseline:
        raise SetupError("--baseline and --no-baseline contradict each other: give one")
    path = path or contract_baseline_path(target_name)
    if no_baseline or (not path.exists() and (update or path == contract_baseline_path(target_name))):
        return None, path
    return load_baseline(path), path


def run_contract(target_name: str, out: Path | None = None, boards: Path | None = None,
                 pytest_args: list[str] | None = None, baseline_path: Path | None = None, no_baseline: bool = False,
                 update_baseline: bool = False) -> int:
    resolve_target(target_name, boards)  # a bad name is a one-line setup error before pytest starts
    baseline, baseline_path = _baseline(target_name, baseline_path, no_baseline, update_baseline)
    out_dir = Path(out) if out else default_out_dir(target_name, SUITE)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = out_dir / f".{JUNIT_FILE}.partial"
    # --report-dir=DIR in one word: pytest's early parse takes a separate existing DIR for a test path, and a test
    # path outside the project keeps pyproject's `-p no:labgrid` from being read
    args = [str(CONTRACT_DIR), "--target", target_name, "--junitxml", str(scratch), "--target-logs",
            str(out_dir / "target"), f"--report-dir={out_dir}", f"--report-suite={SUITE}", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", "--rootdir", str(CONTRACT_DIR.parent.parent),
            *(["--boards", str(boards)] if boards else []), *(pytest_args or [])]
    status = int(pytest.main(args))
    rows: list[tuple[str, str, float, str]] = []
    if scratch.exists():
        os.replace(scratch, out_dir / JUNIT_FILE)
        rows = _case_rows(out_dir / JUNIT_FILE)
        firmware = firmware_facts(out_dir / JUNIT_FILE)
        if firmware:
            print(f"contract {target_name}: firmware under test: {firmware.get('kind')} {firmware.get('version')!r} "
                  f"on {firmware.get('board')}")
    if status == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise SetupError(f"no contract test collected from {CONTRACT_DIR} with {' '.join(pytest_args or [])!r}")
    if status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return 2
    code = _judge(target_name, rows, baseline, baseline_path, update_baseline)
    set_summary_verdict(out_dir, holds=code == 0)  # judged against the baseline, not pytest's exit status
    return code


def _judge(target_name: str, rows: list[tuple[str, str, float, str]], baseline: Baseline | None, baseline_path: Path,
           update: bool) -> int:
    """Print one line per failed test (a regression, or a known deviation with the baseline's reason) and the
    verdict; 0 when no test is worse than the baseline."""
    results = judged_cases(rows, target_name)
    messages = {case_id(test, target_name): message for test, _o, _s, message in rows}
    verdict = compare(results, baseline)
    regressed = {change.case_id for change in verdict.regressions}
    for result in results:
        if result.outcome == OK:
            continue
        message = messages.get(result.case_id, "").strip().splitlines()
        if result.case_id in regressed:
            print(f"contract {target_name}: {result.outcome}: {result.case_id}: {message[0] if message else ''}")
        else:
            reason = baseline.reasons.get(result.case_id, "no reason given") if baseline else ""
            print(f"contract {target_name}: known deviation (accepted by {baseline_path}): {result.case_id}: {reason}")
    for change in verdict.improvements:
        print(f"contract {target_name}: improved: {change.case_id} {change.was} -> {change.now} (update the baseline)")
    if update:
        write_baseline(baseline_path, target_name, "contract", results, baseline)
        print(f"contract {target_name}: baseline written: {baseline_path}")
        return 0
    passed = sum(1 for r in results if r.outcome == OK)
    against = f"baseline {baseline_path}" if baseline else "no baseline"
    print(f"contract {target_name}: {passed} passed, {len(results) - passed} failed ({len(regressed)} worse than "
          f"{against}): {'holds' if verdict.holds else 'does not hold'}")
    return 0 if verdict.holds else 1
