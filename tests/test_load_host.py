"""`vhil load` scenarios against the reference framework on `host` (and the peer for the distributed run).

Short windows and few users: these check behaviour (exact delivery, clean-up, shedding, merged counters), never speed.
"""
from __future__ import annotations

from pathlib import Path

from hil.runinfo import summary_problems
from test_load_faults import failed_checks, run_load


def test_fanout_on_host_delivers_everything_and_writes_reports(tmp_path: Path) -> None:
    code, summary, output = run_load(tmp_path, "--target", "host", "--scenario", "fanout", "--users", "20",
                                     "--duration", "3", "--rate", "20")
    assert code == 0, output
    assert summary is not None and summary["verdict"]["ok"] is True
    assert summary_problems(summary) == [] and summary["holds"] is True  # the one summary.json shape
    assert summary["numbers"]["p95_ms"] == summary["latency_ms"]["p95"] and summary["numbers"]["delivered_per_s"] > 0
    assert summary["delivery_ratio"] == 1.0
    assert summary["expected"] == 20 * 60 and summary["delivered"] == 20 * 60
    assert summary["losses"] == summary["duplicates"] == summary["leaks"] == 0
    assert summary["published"] == summary["scheduled"] == summary["acked"] == 60
    assert summary["server_recipients"] == 20 * 60
    assert summary["latency_ms"]["count"] == 20 * 60
    assert summary["target"]["impl"] == "reference"
    assert summary["target_cpu_percent"] is not None and summary["generator_cpu_percent"] is not None
    for name in ("locust_stats.csv", "locust_stats_history.csv", "report.html", "latency_over_time.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "broadcast fanout" in (tmp_path / "locust_stats.csv").read_text()
    assert "verdict holds" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "latency_over_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_churn_on_host_leaves_no_connections_or_rooms(tmp_path: Path) -> None:
    code, summary, output = run_load(tmp_path, "--target", "host", "--scenario", "churn", "--users", "12",
                                     "--duration", "3", "--rate", "20")
    assert code == 0, output
    assert summary is not None
    assert summary["churn_cycles"] > 0
    assert summary["stats_after"]["connections"] == 0
    assert summary["stats_after"]["rooms"] == {}
    assert summary["losses"] == summary["leaks"] == 0


def test_slow_consumers_do_not_hurt_the_others_on_host(tmp_path: Path) -> None:
    code, summary, output = run_load(tmp_path, "--target", "host", "--scenario", "slow-consumer", "--users", "10",
                                     "--duration", "5", "--rate", "50")
    assert code == 0, output
    assert summary is not None
    assert summary["population"]["slow"] == 1
    assert summary["delivery_ratio"] == 1.0  # the 9 readers got every broadcast
    assert summary["expected"] == 9 * 250
    assert summary["unexpected_closes"] == 0
    assert {"slow members shed", "flat median", "p95"}.isdisjoint(failed_checks(summary))
    assert summary["stats_after"]["connections"] == 0


def test_stepup_reports_max_subscribers_and_plot(tmp_path: Path) -> None:
    code, summary, output = run_load(tmp_path, "--target", "host:websockets", "--scenario", "stepup", "--users", "10",
                                     "--duration", "4", "--rate", "20")
    assert code == 0, output
    assert summary is not None
    assert [step["subscribers"] for step in summary["steps"]] == [2, 4, 6, 8, 10]
    assert summary["max_subscribers"] == 10
    assert (tmp_path / "latency_vs_subscribers.png").stat().st_size > 0


def test_two_local_workers_merge_their_counters(tmp_path: Path) -> None:
    code, summary, output = run_load(tmp_path, "--target", "host:websockets", "--scenario", "rooms", "--users", "8",
                                     "--rooms", "2", "--duration", "2", "--rate", "20", "--workers", "2")
    assert code == 0, output
    assert summary is not None
    assert summary["generator_processes"] == 2
    assert summary["expected"] == summary["delivered"] == 8 * 40 // 2  # each broadcast reaches one room of 4
    assert summary["latency_ms"]["count"] == summary["delivered"]
