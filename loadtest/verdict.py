"""From the merged counters to numbers and the websocket-shootout verdict.

Expected deliveries per (window, room) come from the membership the generator controls (published x members that
joined before the window), except in `churn`, where membership moves and the server's own recipient counts
(`ok pub ROOM N`) are the expectation. In the static scenarios every `ok pub` N is also checked against that
membership. The verdict holds when every check holds:

  delivery   exact (losses 0) or delivered/expected >= --min-delivery; no duplicates, leaks, malformed messages
  latency    the p95 of fan-out latency (exact, nearest rank over raw samples) <= --p95-ms
  schedule   published/scheduled >= PUBLISHED_MIN_RATIO (the generator kept up with its own schedule)
  flat       median of the last fifth of the window <= FLAT_FACTOR x median of the first fifth + FLAT_SLACK_MS
  scenario   churn: no leftover connections or rooms in /stats; slow-consumer: the silent members were shed
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadtest.accounting import Tally, split_ack_count_key, split_key

PUBLISHED_MIN_RATIO = 0.99
FLAT_FACTOR = 2.0
FLAT_SLACK_MS = 5.0
PERCENTILES = (50, 95, 99)


@dataclass
class Window:
    """One publish window as the controller ran it."""

    index: int
    start: float
    end: float
    members: dict[str, int]  # room -> counted members (slow consumers excluded)
    all_members: dict[str, int]  # room -> every member, slow ones included (what `ok pub N` should say)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class WindowResult:
    index: int
    subscribers: int
    expected: int
    delivered: int
    latency: dict[str, float | None]
    published: int
    scheduled: int
    delivered_per_s: float
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def exact_percentiles(samples: np.ndarray) -> dict[str, float | None]:
    if samples.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    values = np.percentile(samples, PERCENTILES, method="inverted_cdf")  # nearest rank: a real sample, not a blend
    result: dict[str, float | None] = {f"p{p}": round(float(v), 3) for p, v in zip(PERCENTILES, values)}
    result["max"] = round(float(samples.max()), 3)
    result["count"] = int(samples.size)
    return result


def expected_deliveries(tally: Tally, window: Window, membership_from_acks: bool) -> int:
    total = 0
    source = tally.ack_recipients if membership_from_acks else tally.published
    for key, count in source.items():
        index, room = split_key(key)
        if index == window.index:
            total += count if membership_from_acks else count * window.members.get(room, 0)
    return total


def _window_sum(counter: dict[str, int], index: int) -> int:
    return sum(count for key, count in counter.items() if split_key(key)[0] == index)


def judge_window(tally: Tally, window: Window, latencies: np.ndarray, sent_at: np.ndarray, *, p95_limit: float,
                 min_delivery: float, membership_from_acks: bool, check_ack_counts: bool) -> WindowResult:
    expected = expected_deliveries(tally, window, membership_from_acks)
    delivered = _window_sum(tally.delivered, window.index)
    published = _window_sum(tally.published, window.index)
    acked = _window_sum(tally.acked, window.index)
    scheduled = int(tally.scheduled.get(str(window.index), 0))
    stats = exact_percentiles(latencies)
    length = max(1e-9, window.end - window.start)
    result = WindowResult(window.index, sum(window.members.values()), expected, delivered, stats, published, scheduled,
                          round(delivered / length, 1))
    losses = expected - delivered
    ratio = delivered / expected if expected else 0.0
    if min_delivery >= 1.0:
        result.checks.append(Check("delivery", expected > 0 and losses == 0,
                                   f"delivered {delivered} of {expected} expected ({losses} lost)"))
    else:
        result.checks.append(Check("delivery", expected > 0 and ratio >= min_delivery,
                                   f"delivered {delivered} of {expected} expected, ratio {ratio:.4f} (min {min_delivery:g})"))
    result.checks.append(Check("acks", acked == published, f"{acked} of {published} publishes acknowledged"))
    if check_ack_counts:
        wrong = {room: recipients for index, room, recipients in map(split_ack_count_key, tally.ack_n_seen)
                 if index == window.index and recipients != window.all_members.get(room, 0)}
        result.checks.append(Check("recipient counts", not wrong,
                                   "every `ok pub N` equals the room's membership" if not wrong else
                                   f"server reported recipients {wrong} but membership is {window.all_members}"))
    p95 = stats["p95"]
    result.checks.append(Check("p95", p95 is not None and p95 <= p95_limit,
                               f"p95 {p95} ms (limit {p95_limit:g} ms)"))
    published_ratio = published / scheduled if scheduled else 0.0
    result.checks.append(Check("published/scheduled", published_ratio >= PUBLISHED_MIN_RATIO,
                               f"{published}/{scheduled} = {published_ratio:.3f} (min {PUBLISHED_MIN_RATIO})"))
    result.checks.append(flat_median_check(latencies, sent_at, window))
    return result


def flat_median_check(latencies: np.ndarray, sent_at: np.ndarray, window: Window) -> Check:
    fifth = (window.end - window.start) / 5
    first = latencies[sent_at < window.start + fifth]
    last = latencies[sent_at >= window.end - fifth]
    if first.size == 0 or last.size == 0:
        return Check("flat median", False, "no samples in the first or last fifth of the window")
    m_first, m_last = float(np.median(first)), float(np.median(last))
    limit = FLAT_FACTOR * m_first + FLAT_SLACK_MS
    return Check("flat median", m_last <= limit,
                 f"median {m_first:.2f} ms in the first fifth, {m_last:.2f} ms in the last (limit {limit:.2f})")


def global_checks(tally: Tally) -> list[Check]:
    return [
        Check("duplicates", tally.duplicates == 0, f"{tally.duplicates} duplicate deliveries"),
        Check("leaks", tally.leaks == 0, f"{tally.leaks} messages seen outside the room they were published to"),
        Check("malformed", tally.malformed == 0, f"{tally.malformed} malformed broadcasts"),
        Check("connections", tally.unexpected_closes == 0,
              f"{tally.unexpected_closes} judged connections closed by the server"),
    ]


def stats_leftover_check(before: dict[str, Any] | None, after: dict[str, Any] | None, rooms: list[str]) -> Check:
    if before is None or after is None:
        return Check("stats after", False, "GET /stats failed, cannot check for leftovers")
    leftover_rooms = sorted(set(after.get("rooms", {})) & set(rooms))
    extra = after.get("connections", 0) - before.get("connections", 0)
    return Check("stats after", extra <= 0 and not leftover_rooms,
                 f"/stats after: {after.get('connections')} connections (before {before.get('connections')}), "
                 f"leftover rooms of this run: {leftover_rooms or 'none'}")


def slow_shed_check(tally: Tally, slow: int, last_window: Window) -> Check:
    """The silent members must be gone by the end: the server closed them, or its last recipient count excludes them."""
    healthy = sum(last_window.members.values())
    final_counts = [recipients for index, _, recipients in map(split_ack_count_key, tally.ack_n_seen)
                    if index == last_window.index]
    lowest = min(final_counts) if final_counts else None
    shed = tally.slow_closed_by_server >= slow or (lowest is not None and lowest <= healthy)
    return Check("slow members shed", shed,
                 f"{tally.slow_closed_by_server} of {slow} silent members closed by the server; lowest `ok pub N` "
                 f"{lowest} (healthy members {healthy})")


def latency_over_time(latencies: np.ndarray, sent_at: np.ndarray, start: float, bucket_s: float = 1.0) -> list[dict[str, float]]:
    """Exact p50/p95/p99 per bucket of send time, for the over-time plot and summary."""
    if latencies.size == 0:
        return []
    buckets = np.floor((sent_at - start) / bucket_s).astype(int)
    rows = []
    for bucket in np.unique(buckets):
        values = latencies[buckets == bucket]
        pcts = np.percentile(values, PERCENTILES, method="inverted_cdf")
        rows.append({"t": round(float(bucket * bucket_s), 3), "count": int(values.size),
                     **{f"p{p}": round(float(v), 3) for p, v in zip(PERCENTILES, pcts)}})
    return rows
