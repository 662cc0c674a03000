"""Boards on a labgrid farm: reserve a place (by name or by tags), acquire it, reach its exported serial port,
release it; all through labgrid's own client session to the coordinator (gRPC), as `labgrid-client` does.

The coordinator identifies clients as HOST/USER (LG_HOSTNAME/LG_USERNAME override both), not by process, so every
place this process acquires is also recorded under a local OS lock (`place-NAME` in hil.lock's directory):
`vhil farm release --stale` frees the places of this host and user whose recorded holder is gone.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from hil.errors import SetupError
from hil.lock import ExclusiveLock, WaitStatus, read_holder

COORDINATOR_ENV = "LG_COORDINATOR"  # labgrid's own variable for the coordinator address
TOKEN_ENV = "LG_TOKEN"  # labgrid's: a reservation the caller holds (`eval $(labgrid-client reserve --wait --shell ...)`)
DEFAULT_COORDINATOR = "127.0.0.1:20408"
RPC_TIMEOUT_S = 30.0
POLL_S = 0.5  # reservation polls; each one also keeps the reservation from expiring (labgrid: 60 s)
PORT_TIMEOUT_S = 15.0  # from acquire until the exporter has ser2net listening
# exported resources with a power driver in labgrid (labgrid-client power ... picks the driver from the class)
POWER_RESOURCES = ("NetworkPowerPort", "NetworkUSBPowerPort", "NetworkSiSPMPowerPort", "PDUDaemonPort",
                   "TasmotaPowerPort", "NetworkYKUSHPowerPort", "NetworkSysfsGPIO")
_STATE_NAMES = {0: "waiting", 1: "allocated", 2: "acquired", 3: "expired", 4: "invalid"}


def coordinator_address() -> str:
    return os.environ.get(COORDINATOR_ENV) or DEFAULT_COORDINATOR


def place_lock(place: str) -> ExclusiveLock:
    return ExclusiveLock(f"place-{place}", f"labgrid place {place}")


def reservation_lock(token: str) -> ExclusiveLock:
    return ExclusiveLock(f"reservation-{token}", f"labgrid reservation {token}")


class Coordinator:
    """A labgrid ClientSession on an event loop of its own thread, so blocking code can call it."""

    def __init__(self, address: str | None = None) -> None:
        from labgrid.remote.client import ClientSession
        from labgrid.remote.generated import labgrid_coordinator_pb2

        self.address = address or coordinator_address()
        self.pb = labgrid_coordinator_pb2
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="labgrid-client", daemon=True)
        self._thread.start()

        async def start() -> Any:
            session = ClientSession(self.address, self.loop, args=argparse.Namespace())
            await asyncio.wait_for(session.start(), RPC_TIMEOUT_S)
            return session

        try:
            self.session = self._run(start)
        except Exception as exc:  # noqa: BLE001 - grpc, timeout, ServerError: all mean "not reachable" here
            self._stop_loop()
            raise SetupError(f"labgrid coordinator {self.address} not reachable ({type(exc).__name__}: {exc}); "
                             f"start it or set {COORDINATOR_ENV}=HOST:PORT") from None

    @property
    def identity(self) -> str:
        return f"{self.session.gethostname()}/{self.session.getuser()}"

    def _run(self, make: Callable[[], Awaitable[Any]], timeout: float = RPC_TIMEOUT_S) -> Any:
        async def call() -> Any:
            return await make()
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def rpc(self, method: str, request: Any) -> Any:
        """One coordinator call; SetupError with the coordinator's reason when it refuses."""
        import grpc

        try:
            return self._run(lambda: getattr(self.session.stub, method)(request))
        except grpc.aio.AioRpcError as exc:
            raise SetupError(f"labgrid coordinator {self.address}: {method} refused: {exc.details()}") from None

    def sync(self) -> None:
        """Wait until the coordinator's place and resource updates so far have arrived."""
        self._run(self.session.sync_with_coordinator)

    def places(self) -> dict[str, Any]:
        return dict(self.session.places)

    def resource(self, path: list[str] | tuple[str, ...]) -> Any:
        exporter, group, _cls, name = path
        return self.session.resources.get(exporter, {}).get(group, {}).get(name)

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()

    def close(self) -> None:
        try:
            self._run(self.session.stop, 10)
            self._run(self.session.close, 10)
        except Exception:  # noqa: BLE001 - closing a session to a coordinator that is gone
            pass
        self._stop_loop()


def matches(tags: dict[str, str], filters: dict[str, str], name: str) -> bool:
    """labgrid's scheduler rule: every filter pair is among the place's tags (or `name` is the place name)."""
    return all(tags.get(k) == v or (k == "name" and v == name) for k, v in filters.items())


@dataclass
class PlaceLease:
    """One board reserved and acquired on the farm; `release` gives everything back (idempotent)."""

    filters: dict[str, str]  # {"name": PLACE} for a named place, else the tags to match
    what: str  # "board farm-s3": how messages name it
    coordinator: Coordinator | None = None
    token: str | None = None
    place: str | None = None
    serial_url: str | None = None
    power: bool = False  # the place has a power resource labgrid can switch
    own_token: bool = True  # False: the reservation is the caller's ($LG_TOKEN), not ours to cancel
    reservation_wait_s: float = 0.0
    acquire_s: float = 0.0
    _lock: ExclusiveLock | None = field(default=None, repr=False)  # the local record of the acquired place
    _reservation_record: ExclusiveLock | None = field(default=None, repr=False)

    def acquire(self, timeout: float, status: WaitStatus | None = None) -> None:
        status = status or WaitStatus()
        self.coordinator = Coordinator()
        try:
            self._reserve(timeout, status)
            self._acquire_place()
        except BaseException:
            self.release()
            raise

    def _reserve(self, timeout: float, status: WaitStatus) -> None:
        assert self.coordinator is not None
        pb = self.coordinator.pb
        started = time.monotonic()
        held = os.environ.get(TOKEN_ENV)
        if held and "name" not in self.filters:
            # the job holds a reservation for all its steps (the same board for flash and every suite); it must
            # be for what this board entry asks, and it stays the job's to cancel
            self.token, self.own_token = held, False
        else:
            request = pb.CreateReservationRequest(filters={"main": pb.Reservation.Filter(filter=self.filters)}, prio=0)
            self.token = self.coordinator.rpc("CreateReservation", request).reservation.token
            # a reservation whose owner is killed while it waits would take the next free place and keep it
            # (unpolled) for 60 s: the record lets `vhil farm release --stale` cancel it
            self._reservation_record = reservation_lock(self.token)
            self._reservation_record.try_acquire()
        try:
            while True:
                reservation = self.coordinator.rpc("PollReservation", pb.PollReservationRequest(token=self.token)).reservation
                state = _STATE_NAMES.get(reservation.state, str(reservation.state))
                if state == "allocated":
                    self.place = reservation.allocations["main"]
                    if not self.own_token and dict(reservation.filters["main"].filter) != self.filters:
                        raise SetupError(f"{self.what}: ${TOKEN_ENV} is a reservation for "
                                         f"{_filter_text(dict(reservation.filters['main'].filter))}, but the inventory "
                                         f"entry asks for {_filter_text(self.filters)}; reserve with those tags")
                    return
                if state != "waiting" and not (state == "acquired" and not self.own_token):  # acquired: another step
                    raise SetupError(f"{self.what}: labgrid reservation {self.token} became {state} before a place was "
                                     f"allocated (is a place with {_filter_text(self.filters)} defined?)")
                waited = time.monotonic() - started
                busy = self.busy_places()
                if waited >= timeout:
                    raise SetupError(f"{self.what}: no labgrid place with {_filter_text(self.filters)} free after "
                                     f"{timeout:g} s; {busy} (raise --lock-timeout, or free a place)")
                status.show(self.holders(), f"waiting for a labgrid place with {_filter_text(self.filters)} "
                                  f"({waited:.0f}/{timeout:g} s): {busy}")
                time.sleep(POLL_S)
        finally:
            status.done()
            self.reservation_wait_s = time.monotonic() - started

    def holders(self) -> str:
        """Who holds the matching places, without times: the status line's subject (reprinted when it changes)."""
        assert self.coordinator is not None
        return " ".join(f"{n}={p.acquired}" for n, p in sorted(self.coordinator.places().items())
                        if matches(p.tags, self.filters, n))

    def busy_places(self) -> str:
        """Who holds the places that would match, for the status line and the timeout message."""
        assert self.coordinator is not None
        candidates = {n: p for n, p in self.coordinator.places().items() if matches(p.tags, self.filters, n)}
        if not candidates:
            return "no place matches"
        held = []
        for name, place in sorted(candidates.items()):
            holder = place.acquired or (f"reserved {place.reservation}" if place.reservation else "free")
            local = read_holder(place_lock(name).path) if place.acquired == self.coordinator.identity else None
            held.append(f"{name} held by {holder}" + (f" ({local.describe()})" if local else ""))
        return "; ".join(held)

    def _acquire_place(self) -> None:
        assert self.coordinator is not None and self.place is not None
        started = time.monotonic()
        self.coordinator.rpc("AcquirePlace", self.coordinator.pb.AcquirePlaceRequest(placename=self.place))
        lock = place_lock(self.place)
        if not lock.try_acquire():  # the coordinator handed it to us: a local holder is a stale record's owner
            holder = read_holder(lock.path)
            raise SetupError(f"{self.what}: place {self.place} is recorded as held by "
                             f"{holder.describe() if holder else 'another run'} on this host")
        self._lock = lock
        deadline = time.monotonic() + PORT_TIMEOUT_S
        while True:
            self.coordinator.sync()
            place = self.coordinator.places()[self.place]
            classes = {path[2] for path in place.acquired_resources}
            self.power = bool(classes & set(POWER_RESOURCES))
            port = next((self.coordinator.resource(path) for path in place.acquired_resources
                         if path[2] == "NetworkSerialPort"), None)
            if port is not None and port.avail and port.params.get("port"):
                # ser2net's RFC 2217 on a pty (or a USB UART without modem lines) never answers SET-CONTROL
                self.serial_url = f"rfc2217://{port.params['host']}:{port.params['port']}?ign_set_control"
                break
            if time.monotonic() >= deadline:
                raise SetupError(f"{self.what}: place {self.place} has no available NetworkSerialPort after "
                                 f"{PORT_TIMEOUT_S:g} s (is its exporter running? `labgrid-client -p {self.place} show`)")
            time.sleep(0.1)
        self.acquire_s = time.monotonic() - started

    def power_cycle(self) -> None:
        """Power-cycle through labgrid's power driver for the place's power resource (`labgrid-client power`)."""
        import subprocess
        import sys

        assert self.place is not None and self.coordinator is not None
        argv = [sys.executable, "-c", "from labgrid.remote.client import main; main()", "-x", self.coordinator.address,
                "-p", self.place, "power", "cycle"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise SetupError(f"{self.what}: labgrid power cycle of place {self.place} failed: "
                             f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}")

    def release(self) -> None:
        if self.coordinator is None:
            return
        coordinator, self.coordinator = self.coordinator, None
        pb = coordinator.pb
        try:
            # Cancel first: a released place stays allocated to its reservation (kept from others) until that is
            # cancelled or expires, and the coordinator hands a freed place to the next reservation only when it
            # schedules (on a release, or every 15 s), so releasing last lets the next waiter have it at once.
            if self.token is not None and self.own_token:
                coordinator.rpc("CancelReservation", pb.CancelReservationRequest(token=self.token))
            if self._lock is not None:
                coordinator.rpc("ReleasePlace", pb.ReleasePlaceRequest(placename=self.place))
        except SetupError:
            pass  # the coordinator went away: it forgets the acquisition with its state, or `farm release --stale`
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            if self._reservation_record is not None:
                self._reservation_record.path.unlink(missing_ok=True)
                self._reservation_record.release()
                self._reservation_record = None
            self.token = None
            coordinator.close()


def _filter_text(filters: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(filters.items()))


@dataclass(frozen=True)
class StaleLease:
    kind: str  # place | reservation
    name: str
    holder: str  # what the local record says about the holder that is gone


def release_stale(coordinator: Coordinator) -> list[StaleLease]:
    """Cancel the reservations and release the places of this host/user whose local record's holder is gone."""
    released = []
    pb = coordinator.pb
    for reservation in coordinator.rpc("GetReservations", pb.GetReservationsRequest()).reservations:
        record = reservation_lock(reservation.token)
        if reservation.owner != coordinator.identity or not record.path.exists():
            continue
        holder = read_holder(record.path)
        if not record.try_acquire():
            continue  # its holder is alive and waiting
        try:
            coordinator.rpc("CancelReservation", pb.CancelReservationRequest(token=reservation.token))
            released.append(StaleLease("reservation", reservation.token, holder.describe() if holder else "unknown"))
        finally:
            record.path.unlink(missing_ok=True)
            record.release()
    for name, place in sorted(coordinator.places().items()):
        if place.acquired != coordinator.identity:
            continue
        lock = place_lock(name)
        if not lock.path.exists():
            continue  # acquired by something other than vhil (labgrid-client acquire): not ours to judge
        holder = read_holder(lock.path)
        if not lock.try_acquire():
            continue  # its holder is alive
        try:
            if place.reservation:
                try:
                    coordinator.rpc("CancelReservation", pb.CancelReservationRequest(token=place.reservation))
                except SetupError:
                    pass  # already cancelled above, or expired
            coordinator.rpc("ReleasePlace", pb.ReleasePlaceRequest(placename=name))
            released.append(StaleLease("place", name, holder.describe() if holder else "unknown"))
        finally:
            lock.release()
    return released

