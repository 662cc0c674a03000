"""The HIL suite: what a board must do beyond conformance. Run: `pytest hil/tests --target sim` (or
qemu-microbit, qemu-esp32, board:<id>). Tests needing the network skip on serial-only targets.

Measurements (boot-to-ready time, deploy time, REPL latency, free memory) are recorded as JUnit properties;
they are reported, never asserted against a speed (speed belongs in benchmarks).
"""
from __future__ import annotations

import functools
import os
import statistics
import time
from typing import Any, Callable

import pytest
from websockets.sync.client import connect

from hil.serial.events import PANIC, REBOOT, RESET, TRACEBACK
from hil import probe
from hil.targets.base import NETWORK, SERIAL

HTTP_TIMEOUT_S = 10.0
REPL_SAMPLES = 20
LEAK_WARMUP_MESSAGES = 100
# A leak shows as free memory falling with traffic. Allowed drift between the readings: allocator noise, caches.
LEAK_ALLOWANCE_BYTES = 16 * 1024
LEAK_ALLOWANCE_FRACTION = 0.05
SOAK_STATUS_EVERY_S = 30.0


def get_json(url: str) -> dict[str, Any]:
    return probe.get_json(url, HTTP_TIMEOUT_S)


def ws_echo_round_trips(base_url: str, count: int, payload: Callable[[int], str]) -> int:
    """Send `count` text messages on /ws/echo, checking every reply; the number of correct replies."""
    url = base_url.replace("http://", "ws://") + "/ws/echo"
    with connect(url, open_timeout=HTTP_TIMEOUT_S, close_timeout=HTTP_TIMEOUT_S, compression=None) as ws:
        for index in range(count):
            text = payload(index)
            ws.send(text)
            assert ws.recv(timeout=HTTP_TIMEOUT_S) == "echo:" + text, f"message {index}: wrong echo"
    return count


@pytest.mark.needs(SERIAL, NETWORK)
def test_deploy_and_run_dut_app(target: Any, record_property: Callable[[str, object], None]) -> None:
    started = time.monotonic()
    deployed = target.deploy()
    record_property("deploy_s", round(time.monotonic() - started, 3))
    record_property("deployed_bytes", sum(d.size for d in deployed))
    assert any(d.path == "/main.py" for d in deployed) and all(d.size > 0 for d in deployed)
    url = target.run_app()
    health = get_json(url + "/health")
    assert health["status"] == "ok"
    record_property("impl", f"{health['impl']} {health['version']} on {health['platform']}")


@pytest.mark.needs(SERIAL, NETWORK)
def test_boot_to_ready_time(target: Any, base_url: str, record_property: Callable[[str, object], None]) -> None:
    """Soft reboot -> `listening on ...`: the board's time to serve after a reset."""
    url = target.run_app()
    record_property("boot_to_ready_s", target.details["boot_to_ready_s"])
    assert get_json(url + "/health")["status"] == "ok"


@pytest.mark.needs(SERIAL)
def test_deploy_4k_file_verified(dut: Any, record_property: Callable[[str, object], None]) -> None:
    data = os.urandom(4096)
    deployed = dut.deploy_file(data, "vhil_4k.bin")  # relative: the micro:bit's flat filesystem has no '/'
    record_property("deploy_4k_s", round(deployed.seconds, 3))
    record_property("verification", "sha256" if not deployed.digest.startswith("sum:") else "byte sum (no hashlib)")
    assert deployed.size == 4096
    assert dut.exec_ok("import os\nos.remove('vhil_4k.bin')\nprint('vhil_4k.bin' in os.listdir())").strip() == "False"


@pytest.mark.needs(SERIAL)
def test_repl_responsiveness(dut: Any, record_property: Callable[[str, object], None]) -> None:
    latencies = []
    for index in range(REPL_SAMPLES):
        started = time.monotonic()
        assert dut.exec_ok(f"print({index}*3)").strip() == str(index * 3)
        latencies.append(time.monotonic() - started)
    record_property("exec_median_ms", round(statistics.median(latencies) * 1000, 1))
    record_property("exec_max_ms", round(max(latencies) * 1000, 1))


@pytest.mark.needs(SERIAL)
def test_soft_reset_recovery(target: Any, dut: Any) -> None:
    dut.exec_ok("vhil_marker = 1")
    dut.soft_reboot()  # from the friendly REPL: boot.py and main.py run again
    session = target.session()  # interrupts main.py if it started the app
    assert session.exec_ok("print('vhil_marker' in globals())").strip() == "False", "soft reboot kept the heap"


@pytest.mark.needs(SERIAL)
def test_hard_reset_recovery(target: Any, dut: Any) -> None:
    dut.exec_ok("vhil_marker = 1")
    with target.console.expecting(RESET, REBOOT, TRACEBACK):
        try:
            target.hard_reset()
        except Exception as exc:  # noqa: BLE001 - a board without a reset line says so in SetupError
            pytest.skip(str(exc))
        target.wait_booted()
    assert target.session().exec_ok("print(6*7, 'vhil_marker' in globals())").strip() == "42 False"


@pytest.mark.needs(SERIAL)
def test_panic_detection(target: Any, dut: Any) -> None:
    """An injected panic is caught by the watchers with its backtrace, and the board comes back."""
    if not hasattr(target, "inject_panic"):
        pytest.skip(f"target {target.name} cannot inject a panic (sim only)")
    since = target.console.event_count()
    with target.console.expecting(PANIC, RESET, REBOOT, TRACEBACK):
        target.inject_panic()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(e.kind == PANIC for e in target.console.events[since:]):
            time.sleep(0.05)
        panics = [e for e in target.console.events[since:] if e.kind == PANIC]
        assert panics, "no panic event within 10 s of the injection"
        event = target.console.wait_complete(panics[0])
        target.recover()
    assert event.summary.startswith("Guru Meditation Error")
    assert event.backtrace and all(pc.startswith("0x4") for pc, _ in event.backtrace)
    assert "Backtrace" in event.report() or "backtrace" in event.report()
    assert target.session().exec_ok("print(6*7)").strip() == "42"


@pytest.mark.needs(SERIAL, NETWORK)
def test_free_memory_after_boot_and_websocket_messages(target: Any, base_url: str, leak_messages: int,
                                                       record_property: Callable[[str, object], None]) -> None:
    after_boot = get_json(base_url + "/stats")
    if after_boot.get("mem_free") is None:
        pytest.skip(f"target {target.name}'s runtime does not report free memory")
    record_property("mem_free_after_boot", after_boot["mem_free"])
    ws_echo_round_trips(base_url, LEAK_WARMUP_MESSAGES, lambda i: f"warmup {i}")  # first-use allocations
    before = get_json(base_url + "/stats")["mem_free"]
    ws_echo_round_trips(base_url, leak_messages, lambda i: f"message {i} " + "x" * (i % 64))
    after = get_json(base_url + "/stats")["mem_free"]
    record_property("mem_free_before_messages", before)
    record_property(f"mem_free_after_{leak_messages}_messages", after)
    allowance = max(LEAK_ALLOWANCE_BYTES, int(before * LEAK_ALLOWANCE_FRACTION))
    assert after >= before - allowance, f"free memory fell by {before - after} bytes over {leak_messages} messages"


@pytest.mark.needs(SERIAL, NETWORK)
def test_soak_echo_traffic(target: Any, base_url: str, soak_seconds: float, capsys: pytest.CaptureFixture[str],
                           record_property: Callable[[str, object], None]) -> None:
    """Echo traffic for --soak-seconds with the console watched (a panic or reset fails this test)."""
    started = time.monotonic()
    deadline = started + soak_seconds
    next_status = started + SOAK_STATUS_EVERY_S
    rounds = messages = 0
    while time.monotonic() < deadline:
        messages += ws_echo_round_trips(base_url, 50, functools.partial("soak {}/{}".format, rounds))
        rounds += 1
        if time.monotonic() >= next_status:  # a steady status line: a long soak is not silent
            next_status += SOAK_STATUS_EVERY_S
            with capsys.disabled():
                print(f"\nsoak {target.name}: {time.monotonic() - started:.0f}/{soak_seconds:.0f} s, "
                      f"{messages} echoes, console events: {len(target.events_since(0))}", flush=True)
    record_property("soak_messages", messages)
    assert messages > 0
    assert get_json(base_url + "/health")["status"] == "ok"
