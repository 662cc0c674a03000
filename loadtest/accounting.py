"""Exact delivery accounting: the broadcast message format and the counters every generator process keeps.

A broadcast payload is `m PUB SEQ SENT ROOM WINDOW[ PAD]`: publisher id, that publisher's sequence number (from 0,
across windows), send time (epoch seconds, so processes on one machine agree), the room it was published to and
the publish window (step) it belongs to. Every process keeps a `Tally`; the controller merges them (`merge`) and
turns them into the verdict (loadtest/verdict.py). Counters are keyed `WINDOW|ROOM` so they survive msgpack/JSON.
"""
from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MESSAGE_PREFIX = b"m "
MAX_ERRORS_KEPT = 20


def window_room_key(window: int, room: str) -> str:
    return f"{window}|{room}"


def split_key(key: str) -> tuple[int, str]:
    window, _, room = key.partition("|")
    return int(window), room


def ack_count_key(window: int, room: str, recipients: int) -> str:
    return f"{window}|{room}|{recipients}"


def split_ack_count_key(key: str) -> tuple[int, str, int]:
    window, room, recipients = key.split("|")
    return int(window), room, int(recipients)


def format_message(publisher: str, seq: int, sent: float, room: str, window: int, pad: str) -> str:
    """The text after `pub ROOM `: never starts with `ok `/`err ` (docs/dut-app.md)."""
    return f"m {publisher} {seq} {sent:.6f} {room} {window}{pad}"


@dataclass
class Tally:
    """Counters of one generator process (or, after `merge`, of the whole run)."""

    delivered: Counter = field(default_factory=Counter)  # WINDOW|ROOM -> unique messages received by counted members
    duplicates: int = 0
    reorders: int = 0  # arrived after a later message of the same publisher
    leaks: int = 0  # arrived at a member not in (or not joining) the message's room
    malformed: int = 0
    uncounted_received: int = 0  # received by members excluded from accounting (slow consumers)
    unexpected_closes: int = 0  # counted members the server closed
    slow_closed_by_server: int = 0
    churn_cycles: int = 0
    errors: list[str] = field(default_factory=list)
    # raw latency samples (exact percentiles): fan-out latency ms, its message's send time, its window
    latency_ms: array = field(default_factory=lambda: array("d"))
    latency_sent_at: array = field(default_factory=lambda: array("d"))
    latency_window: array = field(default_factory=lambda: array("i"))
    # publishers
    scheduled: Counter = field(default_factory=Counter)  # WINDOW -> publish slots in the window
    published: Counter = field(default_factory=Counter)  # WINDOW|ROOM -> messages sent
    acked: Counter = field(default_factory=Counter)  # WINDOW|ROOM -> `ok pub` replies
    ack_recipients: Counter = field(default_factory=Counter)  # WINDOW|ROOM -> sum of N in `ok pub ROOM N`
    ack_n_seen: Counter = field(default_factory=Counter)  # ack_count_key(WINDOW, ROOM, N) -> acks that reported N
    publish_slip_ms: array = field(default_factory=lambda: array("d"))  # send time minus scheduled time

    def error(self, text: str) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(text)

    def add_latency(self, latency_ms: float, sent_at: float, window: int) -> None:
        self.latency_ms.append(latency_ms)
        self.latency_sent_at.append(sent_at)
        self.latency_window.append(window)

    def to_wire(self) -> dict[str, Any]:
        """Plain types only (msgpack over locust's master/worker channel)."""
        return {name: (list(value) if isinstance(value, array) else dict(value) if isinstance(value, Counter) else value)
                for name, value in self.__dict__.items()}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "Tally":
        tally = cls()
        for name, value in data.items():
            current = getattr(tally, name)
            if isinstance(current, array):
                current.extend(value)
            elif isinstance(current, Counter):
                current.update(value)
            else:
                setattr(tally, name, value)
        return tally

    def merge(self, other: "Tally") -> None:
        for name, value in other.__dict__.items():
            current = getattr(self, name)
            if isinstance(current, (array, Counter)):
                current.extend(value) if isinstance(current, array) else current.update(value)
            elif isinstance(current, list):
                current.extend(value[: max(0, MAX_ERRORS_KEPT - len(current))])
            else:
                setattr(self, name, current + value)


class MemberLedger:
    """One receiving connection's view: which rooms it may receive from, and per publisher which seqs it saw."""

    __slots__ = ("rooms", "seen", "highest", "counted", "tally")

    def __init__(self, tally: Tally, counted: bool = True) -> None:
        self.rooms: set[bytes] = set()
        self.seen: dict[bytes, bytearray] = {}  # publisher -> bitmap of seqs received
        self.highest: dict[bytes, int] = {}
        self.counted = counted
        self.tally = tally

    def account(self, payload: bytes, received_at: float) -> float | None:
        """Count one broadcast; return its fan-out latency in ms when it is a valid first delivery, else None."""
        parts = payload.split(b" ", 7)
        tally = self.tally
        try:
            publisher, seq, sent, room, window = parts[1], int(parts[2]), float(parts[3]), parts[4], int(parts[5])
        except (IndexError, ValueError):
            tally.malformed += 1
            tally.error(f"malformed broadcast {payload[:60]!r}")
            return None
        if room not in self.rooms:
            tally.leaks += 1
            return None
        if not self.counted:
            tally.uncounted_received += 1
            return None
        bitmap = self.seen.get(publisher)
        if bitmap is None:
            bitmap = self.seen[publisher] = bytearray()
        byte, bit = seq >> 3, 1 << (seq & 7)
        if byte >= len(bitmap):
            bitmap.extend(bytes(byte - len(bitmap) + 1024))
        if bitmap[byte] & bit:
            tally.duplicates += 1
            return None
        bitmap[byte] |= bit
        if seq < self.highest.get(publisher, -1):
            tally.reorders += 1
        else:
            self.highest[publisher] = seq
        tally.delivered[window_room_key(window, room.decode())] += 1
        latency = (received_at - sent) * 1000.0
        tally.add_latency(latency, sent, window)
        return latency
