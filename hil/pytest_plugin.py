"""pytest plugin (entry point `vhil`): hands tests a ready target.

Options: `--target` (repeatable; tests run once per target), `--boards`, `--target-logs`, `--report-dir` (the run's
report folder: run.json, summary.json, a page per test, see hil/pytest_report.py).
Fixtures: `target` (started for the session, released at the end whatever happens), `base_url` (on serial targets
the DUT app is deployed and started when needed), `dut` (a ready raw REPL session on a serial target).
Marker: `@pytest.mark.needs("network", ...)` skips a test, with the reason, on targets lacking a capability.

On serial targets the console is watched during every test: a panic, reset, brownout, watchdog or unsolicited
traceback fails the test with the decoded event, the board is recovered (rebooted, app restarted on demand) and
the session goes on. A failed test's report (and so its JUnit <failure>) carries its slice of the serial log.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Generator, Iterator

import pytest
from _pytest._code.code import ExceptionRepr, TerminalRepr

from hil.errors import SetupError
from hil.redact import redact
from hil.targets import Target, resolve_target
from hil.targets.base import NETWORK, SERIAL

SERIAL_SLICE_LINES = 200  # the end of a test's serial log attached to its failure
_watch_key = pytest.StashKey[dict[str, Any]]()
_reports: list[Any] = []  # the hil.pytest_report.PytestSuiteReport of --report-dir, while a session runs


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vhil", "ViperHTTP HIL targets")
    group.addoption("--target", action="append", default=[], metavar="TARGET",
                    help="target to run target-using tests against (repeatable): host, sim, url:ws://..., board:<id>")
    group.addoption("--boards", default=None, metavar="FILE",
                    help="board inventory (default: $VHIL_BOARDS or ./boards.toml)")
    group.addoption("--target-logs", default=None, metavar="DIR",
                    help="folder for the targets' own logs (server output, serial log)")
    group.addoption("--lock-timeout", default=None, type=float, metavar="SECONDS",
                    help="wait this long for a board another run holds, then stop naming the holder (default 300)")
    group.addoption("--report-dir", default=None, metavar="DIR",
                    help="write run.json, summary.json and SUITE.html here as the tests go (what `vhil report` indexes)")
    group.addoption("--report-suite", default="hil", metavar="SUITE", help="the suite's name in that report (default hil)")


def _boards_path(config: pytest.Config) -> Path | None:
    value = config.getoption("--boards") or os.environ.get("VHIL_BOARDS")
    return Path(value) if value else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target_name" in metafunc.fixturenames:
        names = metafunc.config.getoption("--target") or ["host"]
        metafunc.parametrize("target_name", names, scope="session")


class _TargetFixture:
    """The `target` fixture, registered from pytest_configure: after every entry-point plugin, so it wins over
    labgrid's own `target` (pytest replays plugin registrations to its fixture parser, unregistered ones too)."""

    @pytest.fixture(scope="session")
    def target(self, target_name: str, request: pytest.FixtureRequest) -> Iterator[Target]:
        try:
            tgt = resolve_target(target_name, _boards_path(request.config))
        except SetupError as exc:
            pytest.exit(f"--target {target_name}: {exc}", returncode=2)
        availability = tgt.availability()
        if not availability.ok:
            pytest.skip(f"target {target_name} unavailable: {availability.reason}")
        from hil.artifacts import target_slug

        logs = request.config.getoption("--target-logs")
        if logs:
            tgt.log_dir = Path(logs) / target_slug(target_name)
        elif tgt.has(SERIAL):  # the serial log is what failures attach: keep one even when no folder was named
            tgt.log_dir = request.getfixturevalue("tmp_path_factory").mktemp(target_slug(target_name))
        # a wait for a busy board (its status line names the holder: hil/lock.py) shows while it happens
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            tgt.start()
        try:
            yield tgt
        finally:
            tgt.stop()


def _serial_target(target: Target) -> Any:
    from hil.targets.serial import SerialTarget

    return target if isinstance(target, SerialTarget) else None


@pytest.fixture
def base_url(target: Target) -> str:
    serial_target = _serial_target(target)
    if serial_target is not None and serial_target.has(NETWORK):
        try:
            return serial_target.ensure_app()
        except SetupError as exc:
            pytest.skip(f"target {target.name}: the DUT app could not be started: {exc}")
    if not target.base_url:
        pytest.skip(f"target {target.name} has no network endpoint")
    return target.base_url


@pytest.fixture
def dut(target: Target) -> Any:
    """A ready raw REPL session (hil.serial.repl.RawRepl) on the target's console; the running app is stopped."""
    serial_target = _serial_target(target)
    if serial_target is None or not target.has(SERIAL):
        pytest.skip(f"target {target.name} has no serial console")
    return serial_target.session()


@pytest.fixture(autouse=True)
def _vhil_console_watch(request: pytest.FixtureRequest) -> Iterator[None]:
    """Mark where this test starts in the console's events and log; recover the board if the test broke it."""
    if "target" not in request.fixturenames:
        yield
        return
    serial_target = _serial_target(request.getfixturevalue("target"))
    if serial_target is None or serial_target.console is None:
        yield
        return
    state = {"target": serial_target, "events": serial_target.console.event_count(),
             "log": serial_target.console.log.position(), "failed_by_event": False, "failed": False}
    request.node.stash[_watch_key] = state
    yield
    if (state["failed_by_event"] or state["failed"]) and not serial_target.broken:
        from hil.serial.console import ConsoleClosed
        from hil.targets.serial import BoardUnrecoverable

        try:
            if state["failed_by_event"]:
                serial_target.recover()  # it panicked or reset: let it reboot, or reset it
            else:
                serial_target.ensure_responsive()  # a test that failed may have left it hung
        except (BoardUnrecoverable, SetupError, ConsoleClosed) as exc:
            serial_target.broken = str(exc)  # later tests fail fast with this reason instead of timing out


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # labgrid installs a pytest plugin with its own `target` fixture; this suite drives labgrid through its
    # client instead, so that plugin must not shadow ours (also where pyproject's `-p no:labgrid` is not read).
    labgrid_plugin = config.pluginmanager.get_plugin("labgrid")
    if labgrid_plugin is not None:
        config.pluginmanager.unregister(labgrid_plugin)
    config.pluginmanager.register(_TargetFixture(), "vhil-target-fixture")
    config.addinivalue_line("markers", "needs(*capabilities): capabilities the target must offer (serial, network, flash)")
    lock_timeout = config.getoption("--lock-timeout", None)
    if lock_timeout is not None:  # read where a board target acquires its board (hil/lock.py)
        from hil.lock import LOCK_TIMEOUT_ENV

        os.environ[LOCK_TIMEOUT_ENV] = f"{lock_timeout:g}"
    report_dir = config.getoption("--report-dir")
    if report_dir:
        from hil.pytest_report import PytestSuiteReport

        try:  # driven from this module's hooks below
            _reports.append(PytestSuiteReport(config, Path(report_dir), config.getoption("--report-suite")))
        except SetupError as exc:
            raise pytest.UsageError(f"--report-dir: {exc}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    _reports.clear()


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    for report in _reports:
        report.test_called(item)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for suite_report in _reports:
        suite_report.add(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for report in _reports:
        report.finish(int(exitstatus))


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("needs")
    if marker is None or "target" not in getattr(item, "fixturenames", ()):
        return
    name = item.callspec.params.get("target_name") if hasattr(item, "callspec") else None
    if name is None:
        return
    try:
        tgt = resolve_target(name, _boards_path(item.config))
    except SetupError:
        return  # the target fixture reports it
    missing = [cap for cap in marker.args if not tgt.has(cap)]
    if missing:
        pytest.skip(f"target {name} lacks {', '.join(missing)}")


class _ConsoleEventRepr(TerminalRepr):
    """A failure whose cause is a console event: the headline is the JUnit message, the report its body."""

    def __init__(self, headline: str, body: str) -> None:
        self.reprcrash = SimpleNamespace(message=headline, path="", lineno=0)
        self.body = body

    def toterminal(self, tw: Any) -> None:
        for line in self.body.splitlines():
            tw.line(line)


def _serial_slice(state: dict[str, Any]) -> str:
    console = state["target"].console
    if console is None:
        return ""
    lines = console.log.text_since(state["log"]).splitlines()[-SERIAL_SLICE_LINES:]
    return redact("\n".join(lines))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed and report.longrepr is not None:
        text = str(report.longrepr)
        if redact(text) != text:  # a registered secret (Wi-Fi password) in a failure message: never into a report
            report.longrepr = redact(text)
    state = item.stash.get(_watch_key, None)
    if state is None or report.when != "call":
        return
    state["failed"] = report.failed
    target = state["target"]
    events = target.events_since(state["events"])
    serial_log = _serial_slice(state)
    if events:
        event = target.console.wait_complete(events[0])
        state["failed_by_event"] = True
        body = event.report()
        if len(events) > 1:
            body += "\nthen: " + "; ".join(e.headline() for e in events[1:])
        if report.failed:
            body += "\n\nthe test itself also failed:\n" + redact(str(report.longrepr))
        report.outcome = "failed"
        report.longrepr = _ConsoleEventRepr(event.headline(), f"{body}\n\n--- serial log during the test ---\n{serial_log}")
    elif report.failed and serial_log:
        if isinstance(report.longrepr, ExceptionRepr):
            report.longrepr.addsection("serial log during the test", serial_log)
        else:
            report.longrepr = f"{report.longrepr}\n\n--- serial log during the test ---\n{serial_log}"
