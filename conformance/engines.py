"""Autobahn engines: kosoku (its Python API, in batches so results arrive as the run goes) and wstest (subprocess).

Both hand back the results model; wstest's through the Autobahn report layout it writes (conformance.autobahn_report).
Neither engine's exit status is trusted: kosoku exits 1 whenever a case is UNIMPLEMENTED, wstest exits 0 whatever
the verdicts; outcomes are judged from the per-case results.
"""
from __future__ import annotations

import asyncio
import fnmatch
import importlib.metadata
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hil.artifacts import atomic_write_json
from hil.errors import SetupError
from conformance.autobahn_report import case_from_report, read_report
from conformance.results import CaseResult, section_of

ENGINES = ("kosoku", "wstest")
SERIAL_SECTIONS = ("9",)  # Limits/Performance: per-case durations are only meaningful one case at a time
BATCH_CASES_PER_WORKER = 4  # a batch holds parallel x this many cases: enough to keep workers busy, small for progress

# Called with each batch of finished cases; returns False to stop the run (the target died).
BatchCallback = Callable[[list[CaseResult]], bool]


@dataclass(frozen=True)
class CaseInfo:
    case_id: str
    description: str
    expectation: str


@dataclass(frozen=True)
class Selection:
    """The cases asked for: the user's globs, and the ids they select where the case catalogue is known."""
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    case_ids: list[str]


@dataclass
class EngineRun:
    """What an engine did: raw material for the Autobahn HTML report plus bookkeeping for summary.json."""
    agent: str | None = None
    stopped_early: str | None = None  # why the run ended before every case ran: "target died", "timed out"
    raw_results: list[Any] = field(default_factory=list)  # kosoku CaseResult objects, for its report writer


def _import_kosoku() -> Any:
    try:
        import kosoku
        import kosoku.cases
    except ImportError as exc:
        raise SetupError(f"kosoku is not installed ({exc}): pip install kosoku, or use --engine wstest") from None
    return kosoku


def case_catalogue() -> dict[str, CaseInfo]:
    """Every Autobahn case kosoku knows, in case order (517 in kosoku 0.1)."""
    kosoku = _import_kosoku()
    return {case_id: CaseInfo(case_id, str(getattr(cls, "DESCRIPTION", "")), str(getattr(cls, "EXPECTATION", "")))
            for case_id, cls in kosoku.cases.CASES.items()}


def select_cases(catalogue: Sequence[str], include: Sequence[str] | None, exclude: Sequence[str] | None) -> list[str]:
    """Case ids matching any --cases glob (all when none) and no --exclude glob; a --cases glob matching nothing is an error."""
    selected = list(catalogue)
    if include:
        for pattern in include:
            if not any(fnmatch.fnmatchcase(case_id, pattern) for case_id in catalogue):
                raise SetupError(f"--cases {pattern!r} matches no Autobahn case: use ids such as 1.1.1 or globs such as '9.*'")
        selected = [c for c in selected if any(fnmatch.fnmatchcase(c, p) for p in include)]
    if exclude:
        selected = [c for c in selected if not any(fnmatch.fnmatchcase(c, p) for p in exclude)]
    if not selected:
        raise SetupError("--exclude removes every selected case: nothing to run")
    return selected


def batches(case_ids: Sequence[str], parallel: int) -> list[tuple[list[str], int]]:
    """Consecutive (case ids, concurrency) batches; section 9 always runs one case at a time."""
    out: list[tuple[list[str], int]] = []
    for case_id in case_ids:
        concurrency = 1 if section_of(case_id) in SERIAL_SECTIONS else parallel
        size = concurrency * BATCH_CASES_PER_WORKER
        if out and out[-1][1] == concurrency and len(out[-1][0]) < size:
            out[-1][0].append(case_id)
        else:
            out.append(([case_id], concurrency))
    return out


class KosokuEngine:
    name = "kosoku"

    def __init__(self) -> None:
        self.kosoku = _import_kosoku()
        from kosoku import _report  # the report writer `kosoku -o` uses; the API has no public one

        self._report = _report

    def version(self) -> str:
        return importlib.metadata.version("kosoku")

    def _to_result(self, raw: Any) -> CaseResult:
        report_file = self._report._report_filename(raw.agent, raw.case_id, "json")
        return case_from_report(self._report.case_to_dict(raw), {"reportfile": report_file})

    async def _run(self, url: str, case_ids: list[str], parallel: int, deadline: float,
                   on_batch: BatchCallback, run: EngineRun) -> None:
        for batch, concurrency in batches(case_ids, parallel):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                run.stopped_early = "timed out"
                return
            try:
                raw = await asyncio.wait_for(
                    self.kosoku.run_fuzzingclient(url, cases=batch, exclude_cases=None, concurrency=concurrency),
                    timeout=remaining)
            except self.kosoku.FailureError as failure:  # raised whenever a case did not pass; holds every result
                raw = failure.results
            except asyncio.TimeoutError:
                run.stopped_early = "timed out"
                return
            run.raw_results.extend(raw)
            if raw and run.agent is None:
                run.agent = raw[0].agent
            if not on_batch([self._to_result(r) for r in raw]):
                run.stopped_early = "target died"
                return

    def run(self, url: str, selection: Selection, parallel: int, timeout_s: float, out_dir: Path,
            on_batch: BatchCallback, run: EngineRun) -> None:
        """Fill `run` as batches finish (so an interrupted run still has the cases so far)."""
        asyncio.run(self._run(url, selection.case_ids, parallel, time.monotonic() + timeout_s, on_batch, run))

    def write_autobahn_report(self, run: EngineRun, report_dir: Path) -> None:
        """kosoku's own writer (JSON + HTML) into a scratch folder, then each file moved into place atomically."""
        if not run.raw_results:
            return
        report_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=report_dir.parent, prefix=".autobahn-") as scratch:
            self._report.write_reports(run.raw_results, scratch, produce_html=True)
            for entry in os.scandir(scratch):
                os.replace(entry.path, report_dir / entry.name)


def wstest_spec(url: str, agent: str, outdir: Path, cases: Sequence[str] | None,
                exclude: Sequence[str] | None) -> dict[str, Any]:
    """autobahn-testsuite's fuzzingclient spec for one server."""
    return {
        "options": {"failByDrop": False},
        "outdir": str(outdir),
        "servers": [{"agent": agent, "url": url}],
        "cases": list(cases) if cases else ["*"],
        "exclude-cases": list(exclude or []),
        "exclude-agent-cases": {},
    }


class WstestEngine:
    """`wstest -m fuzzingclient -s SPEC`, or a command given with --wstest-cmd (e.g. through Docker).

    The command is split like a shell line; `{spec}` in it is replaced by the spec path, otherwise
    `-m fuzzingclient -s SPEC` is appended. The spec's outdir is the report folder, so the command must see
    the same paths (mount the output folder at the same path in the container).
    """
    name = "wstest"
    AGENT = "vhil-target"

    def __init__(self, command: str | None) -> None:
        self.argv = shlex.split(command) if command else ["wstest"]
        if not self.argv:
            raise SetupError("--wstest-cmd is empty: give a command such as 'wstest' or 'docker run ... wstest'")
        if shutil.which(self.argv[0]) is None:
            raise SetupError(f"{self.argv[0]!r} not found on PATH: install autobahn-testsuite (Python 2) or pass "
                             "--wstest-cmd 'docker run --rm --network host -v $PWD:$PWD -w $PWD crossbario/autobahn-testsuite wstest'")

    def version(self) -> str:
        return " ".join(self.argv)

    def command(self, spec_path: Path) -> list[str]:
        if any("{spec}" in arg for arg in self.argv):
            return [arg.replace("{spec}", str(spec_path)) for arg in self.argv]
        return [*self.argv, "-m", "fuzzingclient", "-s", str(spec_path)]

    def run(self, url: str, selection: Selection, parallel: int, timeout_s: float, out_dir: Path,
            on_batch: BatchCallback, run: EngineRun) -> None:
        # wstest's own case list decides: hand it the user's globs (parallelism is not a wstest option)
        report_dir = (out_dir / "autobahn").resolve()
        spec_path = out_dir.resolve() / "fuzzingclient.json"
        atomic_write_json(spec_path, wstest_spec(url, self.AGENT, report_dir, selection.include, selection.exclude))
        run.agent = self.AGENT
        log_path = out_dir / "wstest.log"
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(self.command(spec_path), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                run.stopped_early = "timed out"
            finally:  # timeout or Ctrl-C: the engine goes with us
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        if run.stopped_early is None:
            _agent, results = read_report(report_dir, self.AGENT)
            on_batch(results)

    def write_autobahn_report(self, run: EngineRun, report_dir: Path) -> None:
        """wstest wrote it itself (spec outdir)."""


def make_engine(name: str, wstest_cmd: str | None) -> KosokuEngine | WstestEngine:
    if name == "kosoku":
        if wstest_cmd:
            raise SetupError("--wstest-cmd applies to --engine wstest only")
        return KosokuEngine()
    if name == "wstest":
        return WstestEngine(wstest_cmd)
    raise SetupError(f"unknown engine {name!r}: use one of {', '.join(ENGINES)}")
