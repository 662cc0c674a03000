"""Runs one scenario through a locust runner (local, or a master with workers): spawn, join, publish windows, drain,
stop, collect every process's Tally. Every wait here is bounded."""
from __future__ import annotations

import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, Runner

from hil.errors import SetupError
from hil.probe import get_json_object_or_none
from loadtest import messages, users
from loadtest.accounting import Tally
from loadtest.scenarios import LoadOptions, Population, step_window_seconds
from loadtest.verdict import Window

SPAWN_RATE = 100.0  # users per second; locust warns above 100
JOIN_TIMEOUT_BASE_S = 20.0
WINDOW_LEAD_S = 0.5  # a window starts this long after its plan is sent, so every publisher has it
LATE_CUTOFF_S = 1.0  # a slot more than this late after the window's end is not sent (shows as published/scheduled)
REPORT_TIMEOUT_S = 30.0
PROGRESS_EVERY_S = 2.0
STATS_SETTLE_S = 10.0


def join_timeout(members: int) -> float:
    """How long spawning and joining `members` may take: locust spawns SPAWN_RATE users per second."""
    return JOIN_TIMEOUT_BASE_S + members / SPAWN_RATE * 2


def fetch_stats(base_url: str) -> dict[str, Any] | None:
    return get_json_object_or_none(base_url.rstrip("/") + "/stats")


@dataclass
class RunRecord:
    """What happened, for the verdict and the reports."""

    windows: list[Window] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    processes_reported: int = 0
    joined: int = 0
    expected_members: int = 0
    stats_before: dict[str, Any] | None = None
    stats_after: dict[str, Any] | None = None
    stepup_stopped_at: int | None = None
    notes: list[str] = field(default_factory=list)


class Controller:
    def __init__(self, environment: Environment, options: LoadOptions, pop: Population, ws_url: str, base_url: str,
                 processes: int, on_phase: Callable[[str, RunRecord], None],
                 judge_step: Callable[[RunRecord, Window], bool] | None = None) -> None:
        self.env = environment
        self.runner: Runner = environment.runner  # type: ignore[assignment]
        self.options = options
        self.pop = pop
        self.ws_url = ws_url
        self.base_url = base_url
        self.processes = processes
        self.on_phase = on_phase
        self.judge_step = judge_step
        token = secrets.token_hex(2)
        self.rooms = [f"{options.room_prefix}{token}-{i}" for i in range(options.room_count)]
        self.record = RunRecord()
        self.members: dict[str, int] = {}  # room -> counted members joined
        self.all_members: dict[str, int] = {}  # room -> every member joined (slow ones too)
        self.publisher_ids: list[str] = []
        self.reports: dict[str, tuple[int, Tally]] = {}  # process -> (flush number, its latest counters)
        self.flushes = 0
        self.runner.register_message(messages.JOINED, self._on_joined)
        self.runner.register_message(messages.PUB_READY, self._on_pub_ready)
        self.runner.register_message(messages.REPORT, self._on_report)

    # --- messages from users --------------------------------------------------------------------------------------
    def _on_joined(self, environment: Environment, msg: Any, **_: Any) -> None:
        room = msg.data["room"]
        self.all_members[room] = self.all_members.get(room, 0) + 1
        if not msg.data["slow"]:
            self.members[room] = self.members.get(room, 0) + 1

    def _on_pub_ready(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.publisher_ids.append(msg.data["id"])

    def _on_report(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.reports[msg.data["process"]] = (msg.data["flush"], Tally.from_wire(msg.data["tally"]))

    def gather(self, flush: int, what: str) -> None:
        """Wait for every process's report number `flush`, then merge the latest counters into the record."""
        self.wait(lambda: sum(1 for number, _ in self.reports.values() if number == flush) >= self.processes,
                  REPORT_TIMEOUT_S, f"{what} from {self.processes} generator process(es)")
        merged = Tally()
        for _, report in self.reports.values():
            merged.merge(report)
        self.record.tally = merged
        self.record.processes_reported = sum(1 for number, _ in self.reports.values() if number == flush)

    # --- the run ----------------------------------------------------------------------------------------------
    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.record.notes.append(f"timed out after {timeout:g} s waiting for {what}")
                return False
            gevent.sleep(0.05)
        return True

    def run(self) -> RunRecord:
        options, pop = self.options, self.pop
        step_s = step_window_seconds(options, len(pop.steps)) if pop.steps else options.duration
        windows = pop.steps or [pop.subscribers]
        planned_s = sum(step_s + options.drain + join_timeout(n + pop.slow) for n in windows) + REPORT_TIMEOUT_S
        config = {"url": self.ws_url, "rooms": self.rooms, "pad": " " + "x" * (pop.pad_bytes - 1) if pop.pad_bytes else "",
                  "deadline": time.time() + planned_s, "workers": max(1, self.processes),
                  "request_name": f"broadcast {options.scenario}"}
        self.runner.send_message(messages.CONFIG, config)
        self.record.stats_before = fetch_stats(self.base_url)
        self.on_phase("spawning", self.record)
        try:
            for index, subscribers in enumerate(windows):
                if not self.run_window(index, subscribers, step_s):
                    break
        finally:
            self.finish()
        return self.record

    def run_window(self, index: int, subscribers: int, length_s: float) -> bool:
        """Spawn up to `subscribers`, wait for their joins, publish for `length_s`, drain. False: stop stepping."""
        options, pop = self.options, self.pop
        members = subscribers + pop.slow
        self.record.expected_members = members
        self.runner.start(options.publishers + members + pop.churners, spawn_rate=SPAWN_RATE)
        joined = self.wait(lambda: sum(self.all_members.values()) >= members
                           and len(self.publisher_ids) >= options.publishers, join_timeout(members),
                           f"{members} members and {options.publishers} publishers to join")
        self.record.joined = sum(self.all_members.values())
        if not joined:
            return False
        start = time.time() + WINDOW_LEAD_S
        window = Window(index, start, start + length_s, dict(self.members), dict(self.all_members))
        self.record.windows.append(window)
        self.runner.send_message(messages.WINDOW, {
            "window": index, "start": window.start, "end": window.end, "rate": options.rate,
            "publishers": sorted(self.publisher_ids), "rooms": self.rooms, "late_cutoff": LATE_CUTOFF_S})
        self.on_phase("publishing", self.record)
        progress_at = time.monotonic()
        while time.time() < window.end + options.drain:
            gevent.sleep(0.1)
            if time.monotonic() - progress_at >= PROGRESS_EVERY_S:
                progress_at = time.monotonic()
                self.progress(window)
        if self.judge_step is not None:
            self.flushes += 1
            self.runner.send_message(messages.FLUSH, {"flush": self.flushes})
            self.gather(self.flushes, f"step {index} counters")
            if not self.judge_step(self.record, window):
                self.record.stepup_stopped_at = index
                return False
        return True

    def progress(self, window: Window) -> None:
        entry = self.env.stats.get(f"broadcast {self.options.scenario}", "WS")
        elapsed = min(window.end, time.time()) - window.start
        phase = "publishing" if time.time() < window.end else "draining"
        approx_p95 = entry.get_current_response_time_percentile(0.95) if entry.num_requests else None
        print(f"vhil load [{self.options.scenario}] window {window.index} {phase} {elapsed:5.1f}/{window.end - window.start:g} s  "
              f"members {sum(window.all_members.values())}  received {entry.num_requests}  "
              f"recent p95 ~{approx_p95} ms (locust buckets; exact figures at the end)", file=sys.stderr, flush=True)

    def finish(self) -> None:
        self.on_phase("stopping", self.record)
        self.runner.send_message(messages.STOP, {})
        self.gather(users.FINAL_REPORT, "final counters")
        self.runner.quit()
        self.record.stats_after = self.settled_stats()

    def settled_stats(self) -> dict[str, Any] | None:
        """/stats once the server has noticed every disconnect (bounded), so leftovers are real."""
        before = self.record.stats_before or {"connections": 0}
        deadline = time.monotonic() + STATS_SETTLE_S
        stats = fetch_stats(self.base_url)
        while stats is not None and time.monotonic() < deadline and (
                stats.get("connections", 0) > before.get("connections", 0) or set(stats.get("rooms", {})) & set(self.rooms)):
            time.sleep(0.2)
            stats = fetch_stats(self.base_url)
        return stats


def check_worker_count(runner: Runner, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while isinstance(runner, MasterRunner) and len(runner.clients.ready) < expected:
        if time.monotonic() > deadline:
            raise SetupError(f"only {len(runner.clients.ready)} of {expected} locust workers connected within "
                             f"{timeout:g} s: start the remote ones as docs/load.md shows, or lower --workers")
        gevent.sleep(0.1)
