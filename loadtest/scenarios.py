"""The five scenarios as data: how many users of each kind, which rooms, what the publishers send."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from hil.errors import SetupError

SCENARIOS = ("fanout", "rooms", "churn", "slow-consumer", "stepup")
SLOW_FRACTION = 0.1  # slow-consumer: this share of the members stops reading
CHURN_FRACTION = 0.25  # churn: this share of the users connect/join/leave/disconnect in a loop
# slow-consumer: large messages so a silent member fills its buffers (kernel + the server's own) within seconds, yet
# small against the target's limits: a MicroPython build (64 KiB max message, 16 KiB send buffer) gets 4 KiB
SLOW_CONSUMER_PAD_BYTES = 16 * 1024
SLOW_CONSUMER_PAD_SHARE_OF_MAX_MESSAGE = 16
STEPUP_STEPS = 5
STEPUP_MIN_WINDOW_S = 2.0


@dataclass
class LoadOptions:
    """`vhil load` arguments after validation."""

    scenario: str
    users: int = 100
    publishers: int = 2
    rate: float = 50.0  # broadcasts per second, all publishers together
    rooms: int | None = None  # default: 4 for `rooms`, else 1
    duration: float = 20.0  # publish window (stepup: the sum of its step windows)
    p95_ms: float = 500.0
    min_delivery: float = 1.0
    workers: int = 0  # 0: one process; K: a locust master and K workers
    local_workers: int | None = None  # of those K, how many to start here (default all)
    master_bind: str = "127.0.0.1"
    master_port: int = 0
    drain: float = 3.0  # seconds after the last publish before the generator stops reading
    room_prefix: str = "load"

    def validate(self) -> None:
        if self.scenario not in SCENARIOS:
            raise SetupError(f"unknown scenario {self.scenario!r}: use one of {', '.join(SCENARIOS)}")
        checks = [
            (self.users >= 1, f"--users must be at least 1 (got {self.users})"),
            (self.publishers >= 1, f"--publishers must be at least 1 (got {self.publishers})"),
            (self.rate > 0, f"--rate must be positive (got {self.rate:g})"),
            (self.rooms is None or self.rooms >= 1, f"--rooms must be at least 1 (got {self.rooms})"),
            (self.duration > 0, f"--duration must be positive seconds (got {self.duration:g})"),
            (self.p95_ms > 0, f"--p95-ms must be positive (got {self.p95_ms:g})"),
            (0 < self.min_delivery <= 1, f"--min-delivery must be a ratio in (0, 1] (got {self.min_delivery:g})"),
            (self.workers >= 0, f"--workers must be 0 or more (got {self.workers})"),
            (self.local_workers is None or 0 <= self.local_workers <= self.workers,
             f"--local-workers must be between 0 and --workers (got {self.local_workers})"),
        ]
        for ok, message in checks:
            if not ok:
                raise SetupError(message)
        if self.scenario == "slow-consumer" and self.users < 2:
            raise SetupError("slow-consumer needs --users 2 or more (some members stop reading, the others are judged)")
        if self.scenario == "churn" and self.users < 2:
            raise SetupError("churn needs --users 2 or more (stable members plus churning ones)")
        if self.scenario == "rooms" and self.room_count < 2:
            raise SetupError("the rooms scenario needs --rooms 2 or more (leaks are judged between rooms)")

    @property
    def room_count(self) -> int:
        return self.rooms if self.rooms is not None else (4 if self.scenario == "rooms" else 1)


@dataclass
class Population:
    """How many users of each kind the scenario spawns (stepup: per step)."""

    subscribers: int
    slow: int = 0
    churners: int = 0
    pad_bytes: int = 0
    steps: list[int] = field(default_factory=list)  # stepup: subscriber count of each step

    @property
    def members(self) -> int:
        return self.subscribers + self.slow


def population(options: LoadOptions, max_message_size: int | None = None) -> Population:
    """`max_message_size` as the target's /health reports it (None: unknown, the CPython-sized default applies)."""
    users = options.users
    if options.scenario == "slow-consumer":
        slow = max(1, int(users * SLOW_FRACTION))
        pad = SLOW_CONSUMER_PAD_BYTES
        if max_message_size:
            pad = min(pad, max_message_size // SLOW_CONSUMER_PAD_SHARE_OF_MAX_MESSAGE)
        return Population(subscribers=users - slow, slow=slow, pad_bytes=pad)
    if options.scenario == "churn":
        churners = max(1, int(users * CHURN_FRACTION))
        return Population(subscribers=users - churners, churners=churners)
    if options.scenario == "stepup":
        step = math.ceil(users / STEPUP_STEPS)
        steps = sorted({min(users, step * k) for k in range(1, STEPUP_STEPS + 1)})
        return Population(subscribers=steps[0], steps=steps)
    return Population(subscribers=users)


def step_window_seconds(options: LoadOptions, steps: int) -> float:
    return max(STEPUP_MIN_WINDOW_S, options.duration / max(1, steps))
