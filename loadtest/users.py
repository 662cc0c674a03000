"""The locust users of every scenario and the per-process state they share (the locustfile is loadtest/locustfile.py).

Users run one long session each, driven by messages from the controller (loadtest/controller.py) over locust's
custom-message channel, so the same code runs in one process or on distributed workers:

  controller -> users: `vhil_config` (target URL, rooms, payload padding, deadline), `vhil_window` (one publish window:
                       absolute start/end, total rate, publisher order), `vhil_stop`
                       `vhil_flush` (report the counters so far)
  users -> controller: `vhil_joined` (a member joined a room), `vhil_pub_ready`, `vhil_report` (the process's Tally,
                       after a flush or, finally, after the stop)

Every loop is bounded by the stop message and by the config's absolute deadline.
"""
from __future__ import annotations

import random
import secrets
import socket
import time
from collections import deque
from typing import Any, Callable

import gevent
from gevent.event import Event
from locust import User, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner

from loadtest import messages
from loadtest.accounting import MESSAGE_PREFIX, MemberLedger, Tally, ack_count_key, format_message, split_key, window_room_key
from loadtest.wsclient import OP_TEXT, ConnectionClosedByServer, FastWebSocket, WebSocketError

CONNECT_TIMEOUT_S = 10.0
REPLY_TIMEOUT_S = 10.0
POLL_S = 0.5  # socket read timeout: how often a blocked reader looks at the stop flag
SLOW_RCVBUF_BYTES = 4096  # a slow consumer advertises a tiny window so the server's buffer fills, as on a real MCU
REPORT_WAIT_S = 15.0
FINAL_REPORT = -1  # the `flush` number of the report a process sends after `vhil_stop`


class ProcessState:
    """What the users of one generator process share; reset by each `vhil_config`."""

    def __init__(self) -> None:
        self.environment: Environment | None = None
        self.config: dict[str, Any] = {}
        self.configured = Event()
        self.windows: dict[int, dict[str, Any]] = {}
        self.stop = Event()
        self.tally = Tally()
        self.sessions = 0
        self.members_assigned = 0
        self.token = secrets.token_hex(3)
        self.ids = 0

    def reset(self, config: dict[str, Any]) -> None:
        self.config = config
        self.windows = {}
        self.stop = Event()
        self.tally = Tally()
        self.sessions = 0
        self.members_assigned = 0
        self.configured.set()

    def send(self, kind: str, data: dict[str, Any]) -> None:
        assert self.environment is not None and self.environment.runner is not None
        self.environment.runner.send_message(kind, data)

    def new_id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}{self.token}.{self.ids}"

    def deadline_passed(self) -> bool:
        return self.stop.is_set() or time.time() > self.config["deadline"]

    def next_room(self) -> str:
        """Spread members over the rooms evenly across workers: member n of worker w of W takes room (n*W+w) % K."""
        assert self.environment is not None
        workers = max(1, self.config.get("workers", 1))
        index = getattr(self.environment.runner, "worker_index", 0) or 0
        rooms = self.config["rooms"]
        room = rooms[(self.members_assigned * workers + index) % len(rooms)]
        self.members_assigned += 1
        return room

    def wait_window(self, window: int) -> dict[str, Any] | None:
        """The plan of publish window `window`, or None once the run stops."""
        while not self.deadline_passed():
            if window in self.windows:
                return self.windows[window]
            gevent.sleep(0.05)
        return None


STATE = ProcessState()


# --- message handlers (registered on runners that host users) ---------------------------------------------------
def _on_config(environment: Environment, msg: Any, **_: Any) -> None:
    STATE.reset(msg.data)


def _on_window(environment: Environment, msg: Any, **_: Any) -> None:
    STATE.windows[msg.data["window"]] = msg.data


def _on_stop(environment: Environment, msg: Any, **_: Any) -> None:
    STATE.stop.set()
    gevent.spawn(_report_when_idle)


def _on_flush(environment: Environment, msg: Any, **_: Any) -> None:
    """An interim report (stepup judges each step as it ends) without stopping anything."""
    _send_report(msg.data["flush"])


def _send_report(flush: int) -> None:
    STATE.send(messages.REPORT, {"process": STATE.token, "flush": flush, "tally": STATE.tally.to_wire()})


def _report_when_idle() -> None:
    deadline = time.monotonic() + REPORT_WAIT_S
    while STATE.sessions > 0 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    if STATE.sessions > 0:
        STATE.tally.error(f"{STATE.sessions} user session(s) still running {REPORT_WAIT_S:g} s after stop")
    _send_report(FINAL_REPORT)


@events.init.add_listener
def _register_user_side(environment: Environment, **_: Any) -> None:
    STATE.environment = environment
    if environment.runner is not None and not isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(messages.CONFIG, _on_config)
        environment.runner.register_message(messages.WINDOW, _on_window)
        environment.runner.register_message(messages.STOP, _on_stop)
        environment.runner.register_message(messages.FLUSH, _on_flush)


# --- receiving --------------------------------------------------------------------------------------------------
def _fire(name: str, response_time: float, length: int, exception: BaseException | None = None) -> None:
    assert STATE.environment is not None
    STATE.environment.events.request.fire(request_type="WS", name=name, response_time=response_time,
                                          response_length=length, exception=exception, context=None)


def pump(ws: FastWebSocket, ledger: MemberLedger, on_reply: Callable[[bytes], bool] | None = None) -> bool:
    """One socket read: account every broadcast, hand replies (`ok `/`err `) to `on_reply`.

    Returns True when `on_reply` returned True for one of them (the awaited reply arrived); False on a read timeout.
    """
    try:
        messages = ws.receive()
    except socket.timeout:
        return False
    received_at = time.time()
    name = STATE.config["request_name"]
    done = False
    for opcode, payload in messages:
        if opcode == OP_TEXT and payload.startswith(MESSAGE_PREFIX):
            latency = ledger.account(payload, received_at)
            if latency is not None:
                _fire(name, latency, len(payload))
        elif on_reply is not None and on_reply(payload):
            done = True
        elif payload.startswith(b"err "):
            ledger.tally.error(payload[:120].decode(errors="replace"))
    return done


def read_on_readiness(ws: FastWebSocket, ledger: MemberLedger) -> ConnectionClosedByServer | None:
    """Receive until the run stops, reading from the event loop's readiness callback instead of a blocked greenlet.

    With hundreds of members each wake-up of a greenlet costs more than the frames it reads; a libev I/O watcher
    calling straight into a non-blocking read and the accounting cut the generator's CPU per delivery by 20-25%. The
    callback never blocks or switches (non-blocking socket, no waits), as the hub requires.
    Returns the close when the server closed the connection, else None.
    """
    ws.sock.settimeout(0.0)
    ended = Event()
    outcome: list[ConnectionClosedByServer] = []

    def on_readable() -> None:
        try:
            pump(ws, ledger)
        except (BlockingIOError, InterruptedError):
            pass
        except ConnectionClosedByServer as exc:
            outcome.append(exc)
            watcher.stop()
            ended.set()
        except (OSError, WebSocketError) as exc:
            outcome.append(ConnectionClosedByServer(None))
            ledger.tally.error(f"subscriber read failed: {exc}")
            watcher.stop()
            ended.set()

    watcher = gevent.get_hub().loop.io(ws.sock.fileno(), 1)
    watcher.start(on_readable)
    try:
        while not STATE.deadline_passed() and not ended.wait(POLL_S):
            pass
    finally:
        watcher.stop()
        watcher.close()
        ws.sock.settimeout(POLL_S)
    return outcome[0] if outcome else None


def await_reply(ws: FastWebSocket, ledger: MemberLedger, expected: bytes) -> None:
    """Read (accounting broadcasts on the way) until the reply `expected` arrives; socket.timeout after a while."""
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while not pump(ws, ledger, lambda payload: payload == expected):
        if time.monotonic() > deadline:
            raise socket.timeout(f"no {expected.decode()!r} within {REPLY_TIMEOUT_S:g} s")


def _connect(slow: bool = False) -> FastWebSocket:
    ws = FastWebSocket(STATE.config["url"], timeout=CONNECT_TIMEOUT_S, rcvbuf=SLOW_RCVBUF_BYTES if slow else None)
    ws.sock.settimeout(POLL_S)
    return ws


class SessionUser(User):
    """A user that runs one bounded session, then idles until the run ends (locust must not restart it).

    Every class keeps weight 1 so that locust (which drops weight-0 classes) knows them all in every worker; the
    master spawns subscribers by weight and the other kinds by `fixed_count` (loadtest/run.py sets them).
    """

    abstract = True
    wait_time = constant(0)

    @task
    def session(self) -> None:
        if not STATE.configured.wait(timeout=30) or STATE.deadline_passed():
            gevent.sleep(1)
            return
        STATE.sessions += 1
        try:
            self.run_session()
        except (OSError, WebSocketError, ConnectionClosedByServer) as exc:
            STATE.tally.error(f"{type(self).__name__}: {exc}")
            _fire(f"{type(self).__name__} session", 0, 0, exc)
        finally:
            STATE.sessions -= 1
        while not STATE.deadline_passed():
            gevent.sleep(0.2)
        gevent.sleep(1)

    def run_session(self) -> None:
        raise NotImplementedError


class SubscriberUser(SessionUser):
    """Joins one room and reads everything until the run stops."""

    slow = False

    def run_session(self) -> None:
        room = STATE.next_room()
        ledger = MemberLedger(STATE.tally, counted=not self.slow)
        ws = _connect(self.slow)
        try:
            ledger.rooms.add(room.encode())
            ws.send_text(f"join {room}")
            await_reply(ws, ledger, f"ok join {room}".encode())
            STATE.send(messages.JOINED, {"room": room, "slow": self.slow})
            if self.slow:
                self.stay_silent(ws)
                return
            closed = read_on_readiness(ws, ledger)
            if closed is not None:
                STATE.tally.unexpected_closes += 1
                STATE.tally.error(f"subscriber in {room} closed by server (code {closed.code})")
        finally:
            ws.close()

    def stay_silent(self, ws: FastWebSocket) -> None:
        """Stop reading after the join; at the end, see whether the server dropped us (its shedding policy)."""
        while not STATE.deadline_passed():
            gevent.sleep(0.2)
        ws.sock.settimeout(0.5)
        drain_until = time.monotonic() + 5.0
        try:  # drain what the kernel holds; EOF or a close frame means the server shed this member
            while time.monotonic() < drain_until:
                ws.receive()
        except ConnectionClosedByServer:
            STATE.tally.slow_closed_by_server += 1
        except (socket.timeout, OSError):
            pass


class SlowSubscriberUser(SubscriberUser):
    slow = True


class ChurnUser(SessionUser):
    """Connects, joins a room, reads for a while, leaves, disconnects; again and again while broadcasts run."""

    def run_session(self) -> None:
        rng = random.Random()
        while not STATE.deadline_passed():
            room = STATE.config["rooms"][rng.randrange(len(STATE.config["rooms"]))]
            ledger = MemberLedger(STATE.tally)
            ws = _connect()
            try:
                ledger.rooms.add(room.encode())
                ws.send_text(f"join {room}")
                await_reply(ws, ledger, f"ok join {room}".encode())
                dwell_until = time.monotonic() + rng.uniform(0.2, 1.0)
                while time.monotonic() < dwell_until and not STATE.deadline_passed():
                    pump(ws, ledger)
                ws.send_text(f"leave {room}")
                await_reply(ws, ledger, f"ok leave {room}".encode())
                ledger.rooms.discard(room.encode())  # from here on a broadcast to `room` is a leak
            finally:
                ws.close()
            STATE.tally.churn_cycles += 1
            gevent.sleep(rng.uniform(0.0, 0.2))


class PublisherUser(SessionUser):
    """Publishes on an absolute, staggered schedule: slot g of the window is at start + g/R, publisher g % P sends it."""

    def run_session(self) -> None:
        publisher_id = STATE.new_id("p")
        tally = STATE.tally
        ws = _connect()
        outstanding: deque[tuple[str, float]] = deque()  # (WINDOW|ROOM, send time) awaiting `ok pub`
        reader = gevent.spawn(self.read_acks, ws, outstanding)
        pad = STATE.config["pad"]
        seq, window = 0, 0
        try:
            STATE.send(messages.PUB_READY, {"id": publisher_id})
            while (plan := STATE.wait_window(window)) is not None:
                index, count = plan["publishers"].index(publisher_id), len(plan["publishers"])
                rate, start, end, rooms = plan["rate"], plan["start"], plan["end"], plan["rooms"]
                late_cutoff = end + plan["late_cutoff"]
                slot = index
                while start + slot / rate < end and not STATE.stop.is_set():
                    due = start + slot / rate
                    tally.scheduled[str(window)] += 1
                    now = time.time()
                    if now < due:
                        gevent.sleep(due - now)
                        now = time.time()
                    if now <= late_cutoff:  # past the cutoff the slot is missed: published/scheduled shows it
                        room = rooms[slot % len(rooms)]
                        key = window_room_key(window, room)
                        outstanding.append((key, now))
                        ws.send_text(f"pub {room} " + format_message(publisher_id, seq, now, room, window, pad))
                        tally.published[key] += 1
                        tally.publish_slip_ms.append((now - due) * 1000.0)
                        seq += 1
                    slot += count
                window += 1
            ack_deadline = time.monotonic() + 5.0
            while outstanding and not reader.dead and time.monotonic() < ack_deadline:
                gevent.sleep(0.05)
            if outstanding:
                tally.error(f"publisher {publisher_id}: {len(outstanding)} publish(es) never acknowledged")
        finally:
            reader.kill()
            ws.close()

    @staticmethod
    def read_acks(ws: FastWebSocket, outstanding: deque[tuple[str, float]]) -> None:
        tally = STATE.tally
        ledger = MemberLedger(tally)  # a publisher is in no room: any broadcast reaching it is a leak

        def on_reply(payload: bytes) -> bool:
            if not payload.startswith(b"ok pub "):
                return False
            parts = payload.split(b" ")
            if not outstanding or len(parts) != 4 or not parts[3].isdigit():
                tally.error(f"unexpected reply {payload[:80]!r}")
                return False
            key, sent = outstanding.popleft()
            recipients = int(parts[3])
            tally.acked[key] += 1
            tally.ack_recipients[key] += recipients
            tally.ack_n_seen[ack_count_key(*split_key(key), recipients)] += 1
            _fire("pub ack", (time.time() - sent) * 1000.0, len(payload))
            return False

        try:
            while time.time() < STATE.config["deadline"]:  # the publisher kills this reader long before
                pump(ws, ledger, on_reply)
        except (ConnectionClosedByServer, OSError) as exc:
            if not STATE.deadline_passed():
                tally.unexpected_closes += 1
                tally.error(f"publisher connection lost: {exc}")
