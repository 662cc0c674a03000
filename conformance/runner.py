"""`vhil conformance`: target -> probe -> Autobahn engine -> results -> baseline verdict -> reports.

Reports are rewritten after every batch of cases, so a run that dies, times out or is interrupted leaves a
summary.json and JUnit file describing the cases run so far and marking the rest NOT RUN.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from hil.artifacts import default_out_dir
from hil.errors import SetupError
from hil.runinfo import start_run
from hil.targets import Target, resolve_target
from hil.targets.base import NETWORK
from hil.probe import HEALTH_TIMEOUT_S, SUITE_START_PROBE_TIMEOUT_S, get_json_object_or_none, wait_reachable
from conformance import outputs
from conformance.baseline import Baseline, Verdict, compare, default_baseline_path, load_baseline, write_baseline
from conformance.engines import (CaseInfo, EngineRun, KosokuEngine, Selection, WstestEngine, case_catalogue, make_engine,
                                 select_cases)
from conformance.results import ERROR, NOT_RUN, CaseResult, case_sort_key, not_run

DEATH_PROBE_TIMEOUT_S = 3.0
# Outer budget for a whole run, per target kind: a server that drops empty messages or stalls costs 60-480 s per
# case inside the engine; the reference host finishes the full suite in well under a minute.
DEFAULT_TIMEOUT_S = {"host": 900.0, "url": 1800.0}
OTHER_TARGETS_TIMEOUT_S = 3600.0
PARTIAL_WRITE_INTERVAL_S = 1.0  # reports are rewritten at most this often while cases run (and always at the end)


@dataclass(frozen=True)
class ConformanceOptions:
    target: str
    boards: Path | None = None
    engine: str = "kosoku"
    cases: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    parallel: int = 1
    baseline: Path | None = None
    no_baseline: bool = False
    update_baseline: bool = False
    out: Path | None = None
    wstest_cmd: str | None = None
    timeout_s: float | None = None


def autobahn_url(target: Target) -> str:
    """The user's own path for url: targets that name one, else the DUT app's /ws/autobahn."""
    return target.explicit_ws_url or target.ws_url("/ws/autobahn")


def _reachable(url: str) -> bool:
    try:
        wait_reachable(url, DEATH_PROBE_TIMEOUT_S)
    except SetupError:
        return False
    return True


class ResultsWriter:
    """One run's results as they arrive, written out (summary, reports) at most every PARTIAL_WRITE_INTERVAL_S and
    whenever the run's status changes."""

    def __init__(self, *, target: Target, url: str, out_dir: Path, engine: KosokuEngine | WstestEngine,
                 catalogue: dict[str, CaseInfo], selection: Selection, baseline: Baseline | None,
                 health: dict[str, Any] | None, progress: Progress) -> None:
        self.target, self.url, self.out_dir, self.engine = target, url, out_dir, engine
        self.catalogue, self.selection, self.baseline, self.health = catalogue, selection, baseline, health
        self.progress = progress
        self.task = progress.add_task("Autobahn cases", total=len(selection.case_ids) or None)
        self.by_id: dict[str, CaseResult] = {}
        self.agent: str | None = None
        self.started = time.monotonic()
        self.last_write = 0.0
        self.status = "running"

    def add_batch(self, batch: list[CaseResult]) -> bool:
        """Record finished cases and rewrite the reports; False when the target stopped answering."""
        alive = True
        if any(result.outcome == ERROR for result in batch):
            alive = _reachable(self.url)
        for result in batch:
            if not alive and not result.connected:
                continue  # refused because the target was already gone: reported as NOT RUN, not as its verdict
            self.by_id[result.case_id] = result
        self.progress.update(self.task, advance=len(batch), description=f"Autobahn cases (last {batch[-1].case_id})"
                             if batch else "Autobahn cases")
        if not alive or time.monotonic() - self.last_write >= PARTIAL_WRITE_INTERVAL_S:
            self.write()
        return alive

    def results(self) -> list[CaseResult]:
        """Every selected case, NOT RUN where no result came back."""
        ids = set(self.selection.case_ids) | set(self.by_id)
        out = []
        for case_id in sorted(ids, key=case_sort_key):
            if case_id in self.by_id:
                out.append(self.by_id[case_id])
            else:
                info = self.catalogue.get(case_id)
                out.append(not_run(case_id, info.description, info.expectation) if info else not_run(case_id))
        return out

    def verdict(self, results: list[CaseResult]) -> Verdict:
        return compare(results, self.baseline)

    def write(self) -> tuple[list[CaseResult], Verdict]:
        self.last_write = time.monotonic()
        results = self.results()
        if self.status == "running":  # cases still to come are pending, not NOT RUN
            judged = [r for r in results if r.behavior != NOT_RUN]
        else:
            judged = results
        verdict = self.verdict(judged)
        doc = outputs.summary(
            results, verdict, self.baseline, status=self.status, engine=self.engine.name,
            engine_version=self.engine.version(), agent=self.agent, target=self.target.describe(),
            target_health=self.health, wall_time_s=time.monotonic() - self.started,
            selected=len(self.selection.case_ids), url=self.url, argv=sys.argv[1:])
        outputs.write_outputs(self.out_dir, results, verdict, self.baseline, doc)
        return results, verdict


def _load_baseline(opts: ConformanceOptions, target_name: str) -> tuple[Baseline | None, Path]:
    path = opts.baseline or default_baseline_path(target_name)
    if opts.no_baseline:
        return None, path
    if not path.exists() and (opts.baseline is None or opts.update_baseline):
        return None, path  # nothing accepted yet (a named file is created by --update-baseline)
    return load_baseline(path), path


def run_conformance(opts: ConformanceOptions, console: Console | None = None) -> int:
    console = console or Console()
    if opts.parallel < 1:
        raise SetupError(f"--parallel {opts.parallel}: give 1 or more")
    if opts.baseline is not None and opts.no_baseline:
        raise SetupError("--baseline and --no-baseline contradict each other: give one")
    engine = make_engine(opts.engine, opts.wstest_cmd)
    try:
        catalogue = case_catalogue()
    except SetupError:
        if isinstance(engine, KosokuEngine):
            raise
        catalogue = {}  # wstest alone: its own case list decides, case ids are known once it has run
    case_ids = select_cases(list(catalogue), opts.cases, opts.exclude) if catalogue else []
    selection = Selection(tuple(opts.cases), tuple(opts.exclude), case_ids)

    target = resolve_target(opts.target, opts.boards)
    if not target.has(NETWORK):
        raise SetupError(f"target {target.name} has no network endpoint: conformance needs the DUT app's /ws/autobahn")
    target.require_available()
    baseline, baseline_path = _load_baseline(opts, target.name)
    out_dir = Path(opts.out) if opts.out else default_out_dir(target.name, "conformance")
    out_dir.mkdir(parents=True, exist_ok=True)
    run_info = start_run(out_dir, "conformance", target.name)
    target.log_dir = out_dir / "target"
    timeout_s = opts.timeout_s or DEFAULT_TIMEOUT_S.get(target.kind, OTHER_TARGETS_TIMEOUT_S)

    with target:
        url = autobahn_url(target)
        if url.startswith("wss://") and isinstance(engine, KosokuEngine):
            raise SetupError(f"kosoku cannot test {url}: it has no TLS (wss://); use --engine wstest or a ws:// URL")
        wait_reachable(url, SUITE_START_PROBE_TIMEOUT_S)
        console.print(f"conformance: {target.name} at {url}, engine {engine.name}, "
                      f"{len(case_ids) or 'wstest-selected'} cases, parallel {opts.parallel}", highlight=False)
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console)
        with progress:
            # /health for the report (implementation, version, platform); None where the target has no such route
            health = get_json_object_or_none(target.http_url("/health"), HEALTH_TIMEOUT_S)
            run_info.identify(health)
            session = ResultsWriter(target=target, url=url, out_dir=out_dir, engine=engine, catalogue=catalogue,
                                    selection=selection, baseline=baseline, health=health, progress=progress)
            session.write()
            run = EngineRun()
            try:
                engine.run(url, selection, opts.parallel, timeout_s, out_dir, session.add_batch, run)
            except KeyboardInterrupt:
                session.status = "interrupted"
                session.write()
                engine.write_autobahn_report(run, out_dir / outputs.AUTOBAHN_DIR)
                console.print(f"interrupted: partial reports in {out_dir}", highlight=False)
                raise
            except Exception as exc:  # an engine bug or a report it cannot read: the cases so far stay reported
                session.status = f"engine error: {type(exc).__name__}: {exc}"
                session.write()
                raise
            session.agent = run.agent
            session.status = "complete" if run.stopped_early is None else run.stopped_early
            results, verdict = session.write()
        engine.write_autobahn_report(run, out_dir / outputs.AUTOBAHN_DIR)

    outputs.print_report(console, results, verdict, session.by_id, out_dir)
    if session.status != "complete":
        console.print(f"[red]run {session.status}[/red] at {url}: {len(verdict.not_run)} of {len(results)} cases "
                      f"not run{'; baseline not updated' if opts.update_baseline else ''}", highlight=False)
        return 1
    if opts.update_baseline:
        write_baseline(baseline_path, target.name, engine.name, results, baseline)
        console.print(f"baseline written: {baseline_path}", highlight=False)
        return 0
    if not verdict.holds:
        console.print(f"[red]FAILED[/red]: {len(verdict.regressions)} cases worse than "
                      f"{'the baseline ' + str(baseline_path) if baseline else 'allowed (no baseline)'}: "
                      + ", ".join(c.case_id for c in verdict.regressions[:20])
                      + (" ..." if len(verdict.regressions) > 20 else ""), highlight=False)
        return 1
    console.print(f"[green]holds[/green] against {'baseline ' + str(baseline_path) if baseline else 'no baseline'}",
                  highlight=False)
    return 0
