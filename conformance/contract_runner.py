"""`vhil contract`: the contract suite (pytest, in this process) against one target; JUnit + a short HTML page.

Exit status: 0 every contract test passed, 1 one failed, 2 usage or setup error (bad target, unreachable target,
nothing collected) or an interrupted run (pytest reports both as its status 2).
"""
from __future__ import annotations

import html
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.artifacts import atomic_write_text, default_out_dir
from hil.errors import SetupError
from hil.targets import resolve_target

CONTRACT_DIR = Path(__file__).resolve().parent / "contract"
JUNIT_FILE = "contract-junit.xml"
HTML_FILE = "contract.html"


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


def contract_html(target_name: str, rows: list[tuple[str, str, float, str]]) -> str:
    counts = {o: sum(1 for r in rows if r[1] == o) for o in ("passed", "failed", "error", "skipped")}
    colour = {"passed": "#cfc", "failed": "#fcc", "error": "#fcc", "skipped": "#eee"}
    body = "\n".join(
        f"<tr style=\"background:{colour[o]}\"><td>{html.escape(t)}</td><td>{o}</td><td>{s:.2f}</td>"
        f"<td><pre>{html.escape(m)}</pre></td></tr>" for t, o, s, m in rows)
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Contract: {html.escape(target_name)}</title>"
            "<style>body{font-family:sans-serif}td{padding:2px 8px;vertical-align:top}pre{margin:0;white-space:pre-wrap}"
            f"</style></head><body><h1>ViperHTTP API contract: {html.escape(target_name)}</h1><p>{summary}</p>"
            f"<table><tr><th>test</th><th>outcome</th><th>s</th><th>message</th></tr>\n{body}\n</table></body></html>\n")


def run_contract(target_name: str, out: Path | None = None, boards: Path | None = None,
                 pytest_args: list[str] | None = None) -> int:
    resolve_target(target_name, boards)  # a bad name is a one-line setup error before pytest starts
    out_dir = Path(out) if out else default_out_dir(target_name, "conformance")
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = out_dir / f".{JUNIT_FILE}.partial"
    args = [str(CONTRACT_DIR), "--target", target_name, "--junitxml", str(scratch), "--target-logs",
            str(out_dir / "target"), "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", "--rootdir", str(CONTRACT_DIR.parent.parent),
            *(["--boards", str(boards)] if boards else []), *(pytest_args or [])]
    status = int(pytest.main(args))
    if scratch.exists():
        os.replace(scratch, out_dir / JUNIT_FILE)
        atomic_write_text(out_dir / HTML_FILE, contract_html(target_name, _case_rows(out_dir / JUNIT_FILE)))
    if status == pytest.ExitCode.OK:
        return 0
    if status == pytest.ExitCode.TESTS_FAILED:
        return 1
    if status == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise SetupError(f"no contract test collected from {CONTRACT_DIR} with {' '.join(pytest_args or [])!r}")
    return 2
