"""The report folder of a pytest-run suite (the HIL suite, the contract suite): run.json, summary.json and
SUITE.html, written as the tests go. The vhil pytest plugin drives it for `--report-dir DIR`.

Each test is one case of summary.json: its node id, its outcome (passed, failed, error, skipped) and a link to its
row on SUITE.html. Numbers a test records with `record_property` (boot_to_ready_s, deploy_s, mem_free_...) become
the summary's headline numbers, so the index plots them over runs.
"""
from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

import pytest

from hil.artifacts import atomic_write_text
from hil.redact import redact
from hil.runinfo import start_run, write_summary
from hil.probe import get_json_object_or_none

PAGE_COLOURS = {"passed": "#e3f4e6", "failed": "#fbe1df", "error": "#fbe1df", "skipped": "#eeeeee"}


def case_anchor(test_id: str) -> str:
    """An HTML id for a test id (node ids hold `/`, `::`, `[`...)."""
    return "case-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", test_id).strip("-")


class PytestSuiteReport:
    def __init__(self, config: pytest.Config, out_dir: Path, suite: str) -> None:
        self.out_dir, self.suite = out_dir, suite
        self.page = f"{suite}.html"
        out_dir.mkdir(parents=True, exist_ok=True)
        targets = config.getoption("--target") or ["host"]
        self.target_name = ", ".join(targets)
        self.record = start_run(out_dir, suite, self.target_name)
        self.target_description: dict[str, Any] = {"name": self.target_name}
        self.cases: dict[str, dict[str, Any]] = {}  # test id -> {outcome, seconds, message}
        self.numbers: dict[str, float] = {}
        self.started = time.monotonic()

    # --- collecting ---------------------------------------------------------------------------------------------
    def test_called(self, item: pytest.Item) -> None:
        target = getattr(item, "funcargs", {}).get("target")
        if target is not None:
            self.target_description = target.describe()
            if not self.record.identified and target.base_url:
                self.record.identify(get_json_object_or_none(target.http_url("/health")))

    def add(self, report: pytest.TestReport) -> None:
        case = self.cases.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0, "message": ""})
        case["seconds"] = round(case["seconds"] + report.duration, 3)
        for name, value in report.user_properties:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.numbers.setdefault(name, value)
        if report.skipped and case["outcome"] == "passed":
            case["outcome"], case["message"] = "skipped", _message(report)
        elif report.failed:
            if report.when == "call":
                case["outcome"] = "failed"
            elif case["outcome"] != "failed":
                case["outcome"] = "error"  # a fixture broke in setup or teardown
            case["message"] = _message(report)
        if report.when == "teardown":
            self.write("running")

    def finish(self, exitstatus: int) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        self.write("interrupted" if interrupted else "complete", holds=exitstatus == pytest.ExitCode.OK)
        self.record.finish(exitstatus)

    # --- writing ------------------------------------------------------------------------------------------------
    def write(self, status: str, holds: bool | None = None) -> None:
        counts: dict[str, int] = {}
        for case in self.cases.values():
            counts[case["outcome"]] = counts.get(case["outcome"], 0) + 1
        atomic_write_text(self.out_dir / self.page, self.html(counts, status))
        write_summary(self.out_dir, suite=self.suite, target=self.target_description, status=status, holds=holds,
                      counts=counts, numbers={"wall_time_s": round(time.monotonic() - self.started, 3), **self.numbers},
                      cases=[{"id": test_id, "outcome": case["outcome"], "report": f"{self.page}#{case_anchor(test_id)}"}
                             for test_id, case in self.cases.items()])

    def html(self, counts: dict[str, int], status: str) -> str:
        rows = "\n".join(
            f'<tr id="{case_anchor(test_id)}" style="background:{PAGE_COLOURS[case["outcome"]]}">'
            f'<td>{html.escape(test_id)}</td><td>{case["outcome"]}</td><td>{case["seconds"]:.2f}</td>'
            f'<td><pre>{html.escape(case["message"])}</pre></td></tr>' for test_id, case in self.cases.items())
        numbers = ", ".join(f"{name} {value}" for name, value in self.numbers.items())
        title = f"{self.suite}: {self.target_name}"
        return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                "<style>body{font-family:system-ui,sans-serif;margin:1.5em}td,th{padding:3px 8px;vertical-align:top;"
                "text-align:left}pre{margin:0;white-space:pre-wrap;max-width:70em}tr:target{outline:3px solid #1f6feb}"
                "</style></head><body>"
                f"<h1>{html.escape(title)}</h1><p>{status}: "
                f"{', '.join(f'{n} {o}' for o, n in counts.items()) or 'no test finished yet'}</p>"
                + (f"<p>{html.escape(numbers)}</p>" if numbers else "")
                + f"<table><tr><th>test</th><th>outcome</th><th>s</th><th>message</th></tr>\n{rows}\n</table></body></html>\n")


def _message(report: pytest.TestReport) -> str:
    """What a reader needs first: the skip reason, or the failure's last lines (secrets redacted)."""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(report.longrepr) if report.longrepr is not None else ""
    message = str(getattr(crash, "message", "") or text)
    return redact(message)[-2000:]
