"""One `vhil load` run against a started target: locust environment (local or master + workers), the controller,
CPU sampling, the verdict, and every report file, written as the run goes."""
from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import locust
import numpy as np
import psutil
from locust import stats as locust_stats
from locust.env import Environment
from locust.runners import Runner

from hil.errors import SetupError
from hil.runinfo import RunInfo, write_summary
from hil.targets import Target
from hil.probe import free_tcp_port, get_json_object_or_none, wait_reachable
from hil.process import ManagedProcess
from loadtest import users
from loadtest.accounting import Tally
from loadtest.controller import Controller, RunRecord, check_worker_count
from loadtest.report import write_html, write_plots
from loadtest.scenarios import LoadOptions, population
from loadtest.verdict import (Check, Window, WindowResult, exact_percentiles, global_checks, judge_window,
                              latency_over_time, slow_shed_check, stats_leftover_check)
from loadtest.wsclient import FastWebSocket, WebSocketError

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
WORKER_CONNECT_TIMEOUT_S = 30.0


def user_classes(options: LoadOptions, slow: int, churners: int) -> list[type[locust.User]]:
    """Subscribers by weight, every other kind by fixed count; kinds the scenario does not use are left out."""
    classes: list[type[locust.User]] = [users.SubscriberUser]
    for cls, count in ((users.PublisherUser, options.publishers), (users.SlowSubscriberUser, slow),
                       (users.ChurnUser, churners)):
        cls.fixed_count = count
        if count:
            classes.append(cls)
    return classes


class CpuMeter:
    """CPU seconds of a set of processes between two points: percent of one core over the wall time."""

    def __init__(self, pids: list[int]) -> None:
        self.processes = []
        for pid in pids:
            try:
                self.processes.append(psutil.Process(pid))
            except psutil.Error:
                pass
        self.restart()

    def restart(self) -> None:
        self.start_cpu, self.start_wall = self._cpu(), time.monotonic()

    def _cpu(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def percent(self) -> float | None:
        if not self.processes:
            return None
        wall = time.monotonic() - self.start_wall
        return round(100.0 * (self._cpu() - self.start_cpu) / wall, 1) if wall > 0 else None


def probe_rooms_endpoint(ws_url: str) -> None:
    """Fail fast, in one line, when the target does not speak the DUT app's /ws/rooms protocol."""
    try:
        ws = FastWebSocket(ws_url, timeout=10)
        try:
            ws.send_text("stats")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                for _, payload in ws.receive():
                    if payload.startswith(b"ok stats "):
                        return
        finally:
            ws.close()
    except (OSError, WebSocketError, socket.timeout) as exc:
        raise SetupError(f"{ws_url} does not serve the DUT app's /ws/rooms (docs/dut-app.md): {exc}") from None
    raise SetupError(f"{ws_url} did not answer `stats` with `ok stats ...`: is it the DUT app (docs/dut-app.md)?")


def print_verdict(summary: dict[str, Any]) -> None:
    for check in summary["verdict"]["checks"]:
        print(f"  {'PASS' if check['ok'] else 'FAIL'} {check['name']}: {check['detail']}", file=sys.stderr)
    lat = summary["latency_ms"]
    print(f"vhil load {summary['scenario']}: {'verdict holds' if summary['verdict']['ok'] else 'verdict FAILED'}; "
          f"delivery {summary['delivery_ratio']} ({summary['delivered']}/{summary['expected']}), "
          f"{summary['delivered_per_s']}/s, p50 {lat['p50']} p95 {lat['p95']} p99 {lat['p99']} ms; "
          f"report {summary['out_dir']}", flush=True)


def check_cases(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verdict's checks as summary.json cases; a name that repeats (one per window) gets its occurrence number."""
    seen: dict[str, int] = {}
    cases = []
    for check in checks:
        seen[check["name"]] = seen.get(check["name"], 0) + 1
        name = check["name"] if seen[check["name"]] == 1 else f"{check['name']} #{seen[check['name']]}"
        cases.append({"id": name, "outcome": "passed" if check["ok"] else "failed", "report": "report.html"})
    return cases


class LoadRun:
    def __init__(self, options: LoadOptions, target: Target, out_dir: Path, run_info: RunInfo) -> None:
        self.options = options
        self.run_info = run_info
        self.target = target
        self.out_dir = out_dir
        self.pop = population(options)  # sized again from the target's /health once it is up
        self.workers: list[ManagedProcess] = []
        self.step_results: list[WindowResult] = []
        self.started = time.time()
        self.meters: tuple[CpuMeter, CpuMeter] = ()  # type: ignore[assignment]  # generator, target; set in execute
        self.cpu_percent: tuple[float | None, float | None] = (None, None)

    # --- setup ------------------------------------------------------------------------------------------------
    def execute(self) -> int:
        target, options = self.target, self.options
        if not target.base_url:
            raise SetupError(f"target {target.name} has no network endpoint for the load suite")
        wait_reachable(target.base_url)
        ws_url = target.ws_url("/ws/rooms")
        probe_rooms_endpoint(ws_url)
        health = get_json_object_or_none(target.http_url("/health")) or {}
        self.run_info.identify(health)
        self.pop = population(options, health.get("max_message_size"))
        environment = Environment(user_classes=user_classes(options, self.pop.slow, self.pop.churners),
                                  events=locust.events)
        runner: Runner
        if options.workers:
            port = options.master_port or free_tcp_port(options.master_bind)
            runner = environment.create_master_runner(options.master_bind, port)
        else:
            runner = environment.create_local_runner()
        environment.events.init.fire(environment=environment, runner=runner, web_ui=None)
        csv_writer = locust_stats.StatsCSVFileWriter(environment, locust_stats.PERCENTILES_TO_REPORT,
                                                     str(self.out_dir / "locust"), full_history=False)
        greenlets = [gevent.spawn(csv_writer.stats_writer), gevent.spawn(locust_stats.stats_history, runner)]
        try:
            if options.workers:
                self.start_workers(port)
                check_worker_count(runner, options.workers, WORKER_CONNECT_TIMEOUT_S)
            processes = max(1, options.workers)
            generator_cpu = CpuMeter([psutil.Process().pid] + [w.pid for w in self.workers])
            target_pid = target.details.get("pid")
            target_cpu = CpuMeter([target_pid] if target_pid else [])
            target_rss_before = self.rss(target_pid)
            self.meters = (generator_cpu, target_cpu)
            controller = Controller(environment, options, self.pop, ws_url, target.base_url, processes,
                                    on_phase=self.on_phase,
                                    judge_step=self.judge_step if self.pop.steps else None)
            self.controller = controller
            record = controller.run()
            summary = self.summarise(record, *self.cpu_percent, target_rss_before, self.rss(target_pid))
        finally:
            for greenlet in greenlets:
                greenlet.kill()
            csv_writer.close_files()
            self.stop_workers()
        write_html(environment, summary, self.out_dir / "report.html")
        summary["files"] = sorted(["summary.json", "report.html", *write_plots(self.out_dir, summary),
                                   *(p.name for p in self.out_dir.glob("locust_*.csv"))])
        write_summary(self.out_dir, **summary)
        print_verdict(summary)
        return 0 if summary["verdict"]["ok"] else 1

    def start_workers(self, port: int) -> None:
        local = self.options.workers if self.options.local_workers is None else self.options.local_workers
        for index in range(local):
            argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host",
                    self.options.master_bind, "--master-port", str(port), "--loglevel", "WARNING"]
            self.workers.append(ManagedProcess(argv, log_path=self.out_dir / f"worker-{index}.log"))
        if local < self.options.workers:
            print(f"vhil load: waiting for {self.options.workers - local} remote worker(s): run "
                  f"`locust -f loadtest/locustfile.py --worker --master-host {self.options.master_bind} "
                  f"--master-port {port}` on each", file=sys.stderr, flush=True)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop(grace=5.0)

    @staticmethod
    def rss(pid: int | None) -> int | None:
        try:
            return psutil.Process(pid).memory_info().rss if pid else None
        except psutil.Error:
            return None

    # --- judging ----------------------------------------------------------------------------------------------
    def judge(self, tally: Tally, window: Window) -> WindowResult:
        selected = np.asarray(tally.latency_window, dtype=np.int64) == window.index
        latencies = np.asarray(tally.latency_ms, dtype=np.float64)[selected]
        sent_at = np.asarray(tally.latency_sent_at, dtype=np.float64)[selected]
        scenario = self.options.scenario
        return judge_window(tally, window, latencies, sent_at, p95_limit=self.options.p95_ms,
                            min_delivery=self.options.min_delivery, membership_from_acks=scenario == "churn",
                            check_ack_counts=scenario in ("fanout", "rooms", "stepup"))

    def judge_step(self, record: RunRecord, window: Window) -> bool:
        result = self.judge(record.tally, window)
        self.step_results.append(result)
        ok = result.ok and all(check.ok for check in global_checks(record.tally))
        print(f"vhil load [stepup] step {window.index}: {result.subscribers} subscribers, p95 {result.latency['p95']} ms, "
              f"delivered {result.delivered}/{result.expected} -> {'pass' if ok else 'stop'}", file=sys.stderr, flush=True)
        return ok

    def on_phase(self, phase: str, record: RunRecord) -> None:
        """CPU is measured over the publish windows and their drain: from the first window's start to the stop."""
        if phase == "publishing" and len(record.windows) == 1:
            for meter in self.meters:
                meter.restart()
        if phase == "stopping":
            generator, target = self.meters
            self.cpu_percent = (generator.percent(), target.percent())
        self.write_progress_summary(phase, record)

    def write_progress_summary(self, phase: str, record: RunRecord) -> None:
        write_summary(self.out_dir, suite="load", target=self.target.describe(), status="running", holds=None,
                      counts={}, numbers={}, cases=[], phase=phase, scenario=self.options.scenario,
                      options=self.options.__dict__, started=self.started, windows_done=len(record.windows),
                      stats_before=record.stats_before)

    def summarise(self, record: RunRecord, generator_cpu: float | None, target_cpu: float | None,
                  rss_before: int | None, rss_after: int | None) -> dict[str, Any]:
        tally, options = record.tally, self.options
        results = [self.judge(tally, window) for window in record.windows]
        checks: list[Check] = [Check("members joined", record.joined >= record.expected_members and bool(record.windows),
                                     f"{record.joined} of {record.expected_members} members joined")]
        checks.append(Check("generator processes", record.processes_reported >= max(1, options.workers),
                            f"{record.processes_reported} of {max(1, options.workers)} generator processes reported"))
        checks += global_checks(tally)
        steps = None
        max_subscribers = 0
        if self.pop.steps:
            passing = [r for r in self.step_results if r.ok]
            steps = [{"step": r.index, "subscribers": r.subscribers, "latency_ms": r.latency, "expected": r.expected,
                      "delivered": r.delivered, "ok": r.ok, "checks": [c.as_dict() for c in r.checks]}
                     for r in self.step_results]
            max_subscribers = max((r.subscribers for r in passing), default=0)
            checks.append(Check("stepup", bool(passing),
                                f"max subscribers with p95 <= {options.p95_ms:g} ms and exact delivery: {max_subscribers}"
                                + (f" (stopped at step {record.stepup_stopped_at})" if record.stepup_stopped_at is not None else "")))
        else:
            for result in results:
                checks += result.checks
        if options.scenario == "churn":
            checks.append(Check("churn cycles", tally.churn_cycles > 0, f"{tally.churn_cycles} connect/join/leave/disconnect cycles"))
            checks.append(stats_leftover_check(record.stats_before, record.stats_after, self.controller.rooms))
        if options.scenario == "slow-consumer" and record.windows:
            checks.append(slow_shed_check(tally, self.pop.slow, record.windows[-1]))
        judged = results if not self.pop.steps else [r for r in self.step_results if r.ok] or results[:1]
        expected = sum(r.expected for r in judged)
        delivered = sum(r.delivered for r in judged)
        window_seconds = sum(w.end - w.start for w in record.windows if any(r.index == w.index for r in judged))
        indices = {r.index for r in judged}
        selected = np.isin(np.asarray(tally.latency_window, dtype=np.int64), list(indices))
        latencies = np.asarray(tally.latency_ms, dtype=np.float64)
        sent_at = np.asarray(tally.latency_sent_at, dtype=np.float64)
        slips = np.asarray(tally.publish_slip_ms, dtype=np.float64)
        published = sum(tally.published.values())
        scheduled = sum(tally.scheduled.values())
        verdict_checks = [c.as_dict() for c in checks]
        latency = exact_percentiles(latencies[selected])
        delivered_per_s = round(delivered / window_seconds, 1) if window_seconds else None
        summary: dict[str, Any] = {
            "suite": "load", "status": "complete", "holds": all(c.ok for c in checks),
            "counts": {"passed": sum(c.ok for c in checks), "failed": sum(not c.ok for c in checks)},
            "numbers": {"p50_ms": latency["p50"], "p95_ms": latency["p95"], "p99_ms": latency["p99"],
                        "delivered_per_s": delivered_per_s, "delivery_ratio": round(delivered / expected, 6) if expected else None,
                        "target_rss_after_bytes": rss_after, "target_cpu_percent": target_cpu},
            "cases": check_cases(verdict_checks),
            "scenario": options.scenario, "target": self.target.describe(), "options": options.__dict__,
            "population": {"subscribers": self.pop.subscribers, "slow": self.pop.slow, "churners": self.pop.churners,
                           "publishers": options.publishers, "rooms": len(self.controller.rooms),
                           "payload_pad_bytes": self.pop.pad_bytes, "steps": self.pop.steps},
            "started": self.started, "finished": time.time(), "out_dir": str(self.out_dir),
            "expected": expected, "delivered": delivered,
            "delivery_ratio": round(delivered / expected, 6) if expected else None,
            "losses": max(0, expected - delivered), "duplicates": tally.duplicates, "reorders": tally.reorders,
            "leaks": tally.leaks, "malformed": tally.malformed, "unexpected_closes": tally.unexpected_closes,
            "slow_closed_by_server": tally.slow_closed_by_server, "uncounted_received": tally.uncounted_received,
            "churn_cycles": tally.churn_cycles,
            "delivered_per_s": delivered_per_s,
            "latency_ms": latency,
            "published": published, "scheduled": scheduled,
            "published_over_scheduled": round(published / scheduled, 4) if scheduled else None,
            "acked": sum(tally.acked.values()), "server_recipients": sum(tally.ack_recipients.values()),
            "publish_slip_ms": exact_percentiles(slips),
            "generator_cpu_percent": generator_cpu, "target_cpu_percent": target_cpu,
            "generator_processes": max(1, options.workers),
            "target_rss_bytes": {"before": rss_before, "after": rss_after},
            "stats_before": record.stats_before, "stats_after": record.stats_after,
            "windows": [{"window": r.index, "subscribers": r.subscribers, "expected": r.expected, "delivered": r.delivered,
                         "published": r.published, "scheduled": r.scheduled, "delivered_per_s": r.delivered_per_s,
                         "latency_ms": r.latency, "ok": r.ok} for r in results],
            "latency_over_time": latency_over_time(latencies, sent_at, record.windows[0].start) if record.windows else [],
            "errors": tally.errors, "notes": record.notes,
            "verdict": {"ok": all(c.ok for c in checks), "checks": verdict_checks},
        }
        if steps is not None:
            summary["steps"] = steps
            summary["max_subscribers"] = max_subscribers
        return summary

