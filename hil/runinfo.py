"""What every report folder says about its run: run.json (who ran what, against which firmware, when, how it
ended) and summary.json (one shape for every suite). Each suite writes both through here, so `vhil report` can
index any folder under reports/ without knowing which command wrote it.

run.json:      {run_id, suite, target, firmware: {impl, version, platform} | null, commit, host, argv,
                started, finished, exit_status}  (finished/exit_status null while the run goes on)
summary.json:  {schema, suite, target, status, holds, counts, numbers, cases, ...suite-specific details}
    status   "running" while it goes, then "complete" or how it ended ("interrupted", "target died", ...)
    holds    the suite's verdict: true / false, null while running
    counts   {outcome: number of cases}
    numbers  {name: number}: the headline numbers the index plots over runs (lower or higher is better is the
             index's knowledge, ci/report.py TRENDS)
    cases    [{id, outcome, report}]: every case with its outcome and the page (relative to the folder) showing it
"""
from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hil.artifacts import atomic_write_json
from hil.errors import SetupError

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
SUMMARY_SCHEMA = 1
SUMMARY_KEYS = ("schema", "suite", "target", "status", "holds", "counts", "numbers", "cases")
RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z")
PROJECT_DIR = Path(__file__).resolve().parent.parent

# Case outcomes of every suite, best first: Autobahn's words, then pytest's. A case whose rank grows regressed.
OUTCOME_RANK = {"OK": 0, "NON-STRICT": 1, "INFORMATIONAL": 2, "UNIMPLEMENTED": 3, "FAILED": 4, "ERROR": 4,
                "passed": 0, "skipped": 3, "failed": 4, "error": 4}
FAILING_OUTCOMES = frozenset(("FAILED", "ERROR", "failed", "error"))


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def project_commit() -> str | None:
    """`git describe --always --dirty` of the checkout the suite runs from; None outside a git checkout."""
    try:
        result = subprocess.run(["git", "-C", str(PROJECT_DIR), "describe", "--always", "--dirty", "--abbrev=12"],
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _run_id(out_dir: Path) -> str | None:
    """The run folder's name for reports/<run-id>/<target>/<suite>, else $VHIL_RUN_ID."""
    parents = out_dir.resolve().parents
    if len(parents) > 1 and RUN_ID_PATTERN.match(parents[1].name):
        return parents[1].name
    return os.environ.get("VHIL_RUN_ID")


class RunInfo:
    """run.json of one report folder, rewritten at start, when the firmware is known, and at the end."""

    def __init__(self, out_dir: Path, suite: str, target_name: str) -> None:
        self.path = Path(out_dir) / RUN_FILE
        self.doc: dict[str, Any] = {
            "run_id": _run_id(Path(out_dir)), "suite": suite, "target": target_name, "firmware": None,
            "commit": project_commit(), "host": socket.gethostname(), "python": platform.python_version(),
            "argv": sys.argv[1:], "started": utc_now(), "finished": None, "exit_status": None,
        }
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, self.doc)

    def identify(self, health: dict[str, Any] | None) -> None:
        """Record the firmware as the target reports it (its /health)."""
        if health and self.doc["firmware"] is None:
            self.doc["firmware"] = {key: health.get(key) for key in ("impl", "version", "platform")}
            self.save()

    @property
    def identified(self) -> bool:
        return self.doc["firmware"] is not None

    def finish(self, exit_status: int) -> None:
        self.doc.update(finished=utc_now(), exit_status=exit_status)
        self.save()


_open_runs: list[RunInfo] = []


def start_run(out_dir: Path, suite: str, target_name: str) -> RunInfo:
    """Write run.json now; `vhil` finishes it with the command's exit status (finish_open_runs).

    A folder holds one suite's run: another suite's summary.json there would be overwritten, so that is refused.
    """
    try:
        owner = json.loads((Path(out_dir) / RUN_FILE).read_text()).get("suite")
    except (OSError, ValueError, AttributeError):
        owner = None
    if owner not in (None, suite):
        raise SetupError(f"{out_dir} already holds a {owner} run: give the {suite} suite its own report folder (--out)")
    record = RunInfo(out_dir, suite, target_name)
    _open_runs.append(record)
    return record


def finish_open_runs(exit_status: int) -> None:
    while _open_runs:
        _open_runs.pop().finish(exit_status)


def write_summary(out_dir: Path, /, *, suite: str, target: dict[str, Any], status: str, holds: bool | None,
                  counts: dict[str, int], numbers: dict[str, float | int | None], cases: list[dict[str, Any]],
                  **details: Any) -> dict[str, Any]:
    """summary.json of one shape for every suite (module docstring); `details` are the suite's own extra keys."""
    clash = set(details) & set(SUMMARY_KEYS)
    if clash:
        raise ValueError(f"suite details may not redefine summary keys {sorted(clash)}")
    doc = {"schema": SUMMARY_SCHEMA, "suite": suite, "target": target, "status": status, "holds": holds,
           "counts": counts,
           "numbers": {k: v for k, v in numbers.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
           "cases": cases, **details}
    atomic_write_json(Path(out_dir) / SUMMARY_FILE, doc)
    return doc


def set_summary_verdict(out_dir: Path, holds: bool) -> None:
    """For a suite judged after its cases ran (the contract suite against its baseline): summary.json's `holds`."""
    path = Path(out_dir) / SUMMARY_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no summary (pytest never started a test): nothing to judge
    doc["holds"] = holds
    atomic_write_json(path, doc)


def summary_problems(doc: Any) -> list[str]:
    """Why `doc` is not a summary.json of the one shape ([] when it is)."""
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    problems = [f"missing {key!r}" for key in SUMMARY_KEYS if key not in doc]
    if problems:
        return problems
    if doc["schema"] != SUMMARY_SCHEMA:
        problems.append(f"schema {doc['schema']!r}, expected {SUMMARY_SCHEMA}")
    if doc["holds"] not in (True, False, None):
        problems.append("holds is not true, false or null")
    if not all(isinstance(v, int) for v in doc["counts"].values()):
        problems.append("counts are not all integers")
    if not all(isinstance(v, (int, float)) for v in doc["numbers"].values()):
        problems.append("numbers are not all numbers")
    for case in doc["cases"]:
        if not isinstance(case, dict) or not isinstance(case.get("id"), str) or not isinstance(case.get("outcome"), str):
            problems.append(f"case {case!r} lacks an id or outcome")
            break
    return problems
