"""Exact accounting of one member's deliveries, the counters' wire form, and the fast client against a real server."""
from __future__ import annotations

import sys
import time

import numpy as np

from hil.probe import READY_LINE_PATTERN
from hil.process import ManagedProcess
from loadtest.accounting import MemberLedger, Tally, format_message
from loadtest.verdict import Window, exact_percentiles, judge_window
from loadtest.wsclient import FastWebSocket


def message(seq: int, room: str = "r1", publisher: str = "p1", window: int = 0) -> bytes:
    return format_message(publisher, seq, time.time() - 0.01, room, window, "").encode()


def test_ledger_counts_duplicates_reorders_leaks_and_malformed() -> None:
    tally = Tally()
    ledger = MemberLedger(tally)
    ledger.rooms.add(b"r1")
    for seq in (0, 1, 3, 2, 3):  # 2 arrives after 3 (reorder), 3 twice (duplicate)
        ledger.account(message(seq), time.time())
    ledger.account(message(4, room="r2"), time.time())  # not a member of r2
    ledger.account(b"m p1 notanumber", time.time())
    assert tally.delivered == {"0|r1": 4}
    assert (tally.duplicates, tally.reorders, tally.leaks, tally.malformed) == (1, 1, 1, 1)
    assert len(tally.latency_ms) == 4 and all(latency >= 10.0 for latency in tally.latency_ms)


def test_tally_survives_the_wire_and_merges() -> None:
    first, second = Tally(), Tally()
    first.delivered["0|a"] = 3
    first.add_latency(1.5, 100.0, 0)
    second.delivered["0|a"] = 2
    second.duplicates = 1
    second.add_latency(2.5, 101.0, 0)
    merged = Tally.from_wire(first.to_wire())
    merged.merge(Tally.from_wire(second.to_wire()))
    assert merged.delivered["0|a"] == 5 and merged.duplicates == 1
    assert list(merged.latency_ms) == [1.5, 2.5]


def test_percentiles_are_nearest_rank_samples() -> None:
    stats = exact_percentiles(np.arange(1.0, 101.0))
    assert (stats["p50"], stats["p95"], stats["p99"], stats["max"]) == (50.0, 95.0, 99.0, 100.0)


def test_window_verdict_fails_on_a_single_lost_delivery() -> None:
    tally = Tally()
    tally.scheduled["0"] = 10
    tally.published["0|r"] = 10
    tally.acked["0|r"] = 10
    tally.ack_recipients["0|r"] = 30
    tally.ack_n_seen["0|r|3"] = 10
    tally.delivered["0|r"] = 29
    window = Window(0, 0.0, 10.0, {"r": 3}, {"r": 3})
    latencies, sent_at = np.full(29, 2.0), np.linspace(0.0, 9.9, 29)
    result = judge_window(tally, window, latencies, sent_at, p95_limit=50, min_delivery=1.0,
                          membership_from_acks=False, check_ack_counts=True)
    assert {c.name for c in result.checks if not c.ok} == {"delivery"}
    lenient = judge_window(tally, window, latencies, sent_at, p95_limit=50, min_delivery=0.95,
                           membership_from_acks=False, check_ack_counts=True)
    assert lenient.ok


def test_fast_client_round_trips_large_and_small_messages() -> None:
    process = ManagedProcess([sys.executable, "-m", "vhil_serve", "--port", "0", "--impl", "websockets"])
    try:
        port = process.wait_for_line(READY_LINE_PATTERN, 20).group(2)
        ws = FastWebSocket(f"ws://127.0.0.1:{port}/ws/autobahn", timeout=10)
        big = bytes(range(256)) * 4096  # 1 MiB: 64-bit length, many socket reads
        ws.send_bytes(big)
        ws.send_text("small")
        received: list[tuple[int, bytes]] = []
        while len(received) < 2:
            received += ws.receive()
        assert received == [(2, big), (1, b"small")]
        ws.close()
    finally:
        process.stop()
