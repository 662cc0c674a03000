"""The `mpy` target: the reference framework and DUT app running on the MicroPython VM (WebAssembly, in Node),
reached over real loopback sockets. Skips only when node or the npm package is missing."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import kosoku
import pytest
from websockets.asyncio.client import connect

from hil import probe
from hil.errors import SetupError
from hil.targets import mpy as mpy_module
from hil.targets import resolve_target
from hil.targets.mpy import VM_MAX_CONNECTIONS, MpyTarget
from wsframes import client_frame, close_payload, parse_server_frames

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MICROPYTHON_MAX_MESSAGE = 64 * 1024  # docs/dut-app.md: the DUT's limit on MicroPython
IO_TIMEOUT_S = 10.0


def _skip_unless_available(target: MpyTarget) -> None:
    available = target.availability()
    if not available.ok:
        pytest.skip(available.reason)


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MpyTarget]:
    target = resolve_target("mpy")
    assert isinstance(target, MpyTarget)
    _skip_unless_available(target)
    target.log_dir = tmp_path_factory.mktemp("mpy-log")
    with target:
        yield target


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def get_json(target: MpyTarget, path: str) -> dict[str, Any]:
    return probe.get_json(target.http_url(path), IO_TIMEOUT_S)


def test_health_is_served_by_the_reference_framework_on_micropython(vm: MpyTarget) -> None:
    health = get_json(vm, "/health")
    assert health["impl"] == "ViperHTTP-reference"
    assert health["platform"] == "webassembly"  # sys.platform inside the VM: not CPython's "linux"
    assert health["max_message_size"] == MICROPYTHON_MAX_MESSAGE  # the DUT app took its MicroPython branch
    # the target's dut_config.json reached the app (its cap, not MicroPython's default) and /health documents it
    assert (health["max_connections"], health["send_buffer_limit"]) == (VM_MAX_CONNECTIONS, 16 * 1024)
    assert vm.details["vm"].startswith("MicroPython 1.27")
    assert vm.details["modules"] == "mpy"  # every module ran as mpy-cross bytecode


def test_stats_report_the_vm_heap(vm: MpyTarget) -> None:
    stats = get_json(vm, "/stats")
    assert isinstance(stats["mem_free"], int) and stats["mem_free"] > 0
    assert isinstance(stats["mem_alloc"], int) and 10_000 < stats["mem_alloc"] < 16 * 1024 * 1024


def test_echo_text_binary_and_a_message_spanning_many_tcp_segments(vm: MpyTarget) -> None:
    large = os.urandom(MICROPYTHON_MAX_MESSAGE)

    async def exchange() -> tuple[Any, ...]:
        async with connect(vm.ws_url("/ws/echo"), max_size=None) as ws:
            await ws.send("hello, VM")
            text = await ws.recv()
            await ws.send(bytes(range(256)))
            binary = await ws.recv()
            await ws.send(large)
            echoed_large = await ws.recv()
        return text, binary, echoed_large, ws.close_code

    text, binary, echoed_large, close_code = run(exchange())
    assert text == "echo:hello, VM"
    assert binary == bytes(range(256))
    assert echoed_large == large
    assert close_code == 1000


class RawWebSocket:
    """A hand-driven client connection, for frame sequences a client library will not produce."""

    def __init__(self, target: MpyTarget, path: str, receive_buffer: int | None = None) -> None:
        address = urlsplit(target.base_url)
        host = address.hostname or "127.0.0.1"
        self.sock = socket.socket()
        if receive_buffer is not None:  # before connecting, so the advertised window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(IO_TIMEOUT_S)
        self.sock.connect((host, address.port or 80))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        self.buffer += data

    def frames(self, count: int, timeout: float = IO_TIMEOUT_S) -> list[tuple[int, bool, bytes]]:
        """The first `count` server frames (fewer if the server closes first or `timeout` passes)."""
        deadline = time.monotonic() + timeout
        while len(parse_server_frames(self.buffer)) < count and time.monotonic() < deadline:
            try:
                self._receive()
            except ConnectionError:
                break
        return parse_server_frames(self.buffer)[:count]

    def close(self) -> None:
        self.sock.close()


def test_fragmented_message_with_a_ping_between_fragments(vm: MpyTarget) -> None:
    raw = RawWebSocket(vm, "/ws/echo")
    try:
        raw.sock.sendall(client_frame(OP_TEXT, b"frag", fin=False) + client_frame(OP_PING, b"p1")
                         + client_frame(OP_CONTINUATION, b"men", fin=False)
                         + client_frame(OP_CONTINUATION, b"ted", fin=True))
        pong, echo = raw.frames(2)
        assert pong == (OP_PONG, True, b"p1")  # answered while the message was still open
        assert echo == (OP_TEXT, True, b"echo:fragmented")
        raw.sock.sendall(client_frame(OP_CLOSE, close_payload(1000, b"bye")))
        assert raw.frames(3)[2] == (OP_CLOSE, True, close_payload(1000))
    finally:
        raw.close()



def test_a_client_that_stops_reading_loses_nothing(vm: MpyTarget) -> None:
    """6 MB of echoes to a client with a 4 KiB receive window that reads nothing for 2 s: enough to fill the
    kernel's buffers, so the VM's writes wait on Node's drain and Node pauses reading the socket."""
    messages = [os.urandom(60_000) for _ in range(100)]
    raw = RawWebSocket(vm, "/ws/echo", receive_buffer=4096)
    sender = threading.Thread(target=lambda: raw.sock.sendall(b"".join(client_frame(OP_BINARY, m) for m in messages)))
    try:
        sender.start()
        time.sleep(2)
        frames = raw.frames(len(messages), timeout=30)
        assert [payload for _, _, payload in frames] == messages
    finally:
        raw.close()
        sender.join(10)

@pytest.mark.parametrize("frame, code", [
    (client_frame(OP_TEXT, b"\xce\xba\xed\xa0\x80"), 1007),  # a UTF-16 surrogate: invalid UTF-8
    (client_frame(OP_CLOSE, close_payload(1000, b"\xed\xa0\x80")), 1007),  # same, in a close reason
    (client_frame(OP_BINARY, b"x", rsv=1), 1002),  # RSV1 without a negotiated extension
    (client_frame(OP_BINARY, b"x" * (MICROPYTHON_MAX_MESSAGE + 1)), 1009),
], ids=["invalid-utf8-text", "invalid-utf8-close-reason", "reserved-bit", "over-the-limit"])
def test_protocol_violations_close_with_the_rfc_code(vm: MpyTarget, frame: bytes, code: int) -> None:
    raw = RawWebSocket(vm, "/ws/autobahn")
    try:
        raw.sock.sendall(frame)
        frames = raw.frames(1)
        assert frames and frames[0][0] == OP_CLOSE, frames
        assert int.from_bytes(frames[0][2][:2], "big") == code
    finally:
        raw.close()


def test_a_client_close_code_is_echoed(vm: MpyTarget) -> None:
    async def close_with_going_away() -> int | None:
        async with connect(vm.ws_url("/ws/echo")) as ws:
            await ws.close(1001, "leaving")
            received = ws.protocol.close_rcvd
            return received.code if received else None

    assert run(close_with_going_away()) == 1001


def test_abrupt_client_drop_is_noticed_and_the_member_counted_out(vm: MpyTarget) -> None:
    async def join_then_drop() -> None:
        async with connect(vm.ws_url("/ws/chat?room=vm")) as ws:
            await ws.send("hi")
            assert json.loads(await ws.recv()) == {"user": "anon", "text": "hi"}
            ws.transport.abort()  # RST, no closing handshake

    run(join_then_drop())
    deadline = time.monotonic() + IO_TIMEOUT_S
    while get_json(vm, "/stats")["connections"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get_json(vm, "/stats")["connections"] == 0


def test_autobahn_cases_through_kosoku(vm: MpyTarget) -> None:
    """A sample of the real Autobahn cases (framing, fragmentation, UTF-8, close); docs/mpy-target.md has the
    per-section outcome of sections 1-7 and 9.1-9.2."""
    cases = ["1.*", "2.*", "5.*", "6.4.*", "7.5.1", "7.7.*"]

    async def fuzz() -> list[Any]:
        try:
            return list(await kosoku.run_fuzzingclient(vm.ws_url("/ws/autobahn"), cases=cases))
        except kosoku.FailureError as failure:
            return list(failure.results)

    results = run(fuzz())
    assert len(results) > 40
    not_ok = [(r.case_id, r.behavior.value, r.behavior_close.value) for r in results
              if r.behavior.value != "OK" or r.behavior_close.value != "OK"]
    assert not_ok == []


def test_modules_from_source_serve_the_same_app() -> None:
    target = MpyTarget(name="mpy", compiled=False)
    _skip_unless_available(target)
    with target:
        assert target.details["modules"] == "source"
        assert get_json(target, "/health")["platform"] == "webassembly"


def test_stop_ends_the_vm_and_removes_its_staging(tmp_path: Path) -> None:
    target = MpyTarget(name="mpy", log_dir=tmp_path)
    _skip_unless_available(target)
    target.start()
    process, stage_dir, base_url = target.process, target.stage_dir, target.base_url
    target.stop()
    target.stop()  # idempotent
    assert process is not None and not process.alive()
    assert stage_dir is not None and not stage_dir.exists()
    address = urlsplit(base_url)
    with pytest.raises(OSError):
        socket.create_connection((address.hostname, address.port), timeout=2).close()
    assert "listening on http://127.0.0.1:" in (tmp_path / "vm.log").read_text()


def test_missing_npm_package_is_unavailable_with_the_install_command(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    monkeypatch.setattr(mpy_module, "VM_PACKAGE_JSON", tmp_path / "absent" / "package.json")
    target = MpyTarget(name="mpy")
    available = target.availability()
    assert not available.ok
    assert "npm ci --prefix" in available.reason or "node not found" in available.reason
    with pytest.raises(SetupError, match="target mpy unavailable: "):
        target.start()
    assert target.process is None and target.stage_dir is None

