"""pytest plugin (entry point `vhil`): hands tests a ready target.

Options: `--target` (repeatable; tests run once per target), `--boards`.
Fixtures: `target` (started for the session, released at the end whatever happens), `base_url`.
Marker: `@pytest.mark.needs("network", ...)` skips a test, with the reason, on targets lacking a capability.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from hil.errors import SetupError
from hil.targets import Target, resolve_target


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vhil", "ViperHTTP HIL targets")
    group.addoption("--target", action="append", default=[], metavar="TARGET",
                    help="target to run target-using tests against (repeatable): host, sim, url:ws://..., board:<id>")
    group.addoption("--boards", default=None, metavar="FILE",
                    help="board inventory (default: $VHIL_BOARDS or ./boards.toml)")
    group.addoption("--target-logs", default=None, metavar="DIR",
                    help="folder for the targets' own logs (server output, serial log)")


def _boards_path(config: pytest.Config) -> Path | None:
    value = config.getoption("--boards") or os.environ.get("VHIL_BOARDS")
    return Path(value) if value else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target_name" in metafunc.fixturenames:
        names = metafunc.config.getoption("--target") or ["host"]
        metafunc.parametrize("target_name", names, scope="session")


@pytest.fixture(scope="session")
def target(target_name: str, request: pytest.FixtureRequest) -> Iterator[Target]:
    try:
        tgt = resolve_target(target_name, _boards_path(request.config))
    except SetupError as exc:
        pytest.exit(f"--target {target_name}: {exc}", returncode=2)
    availability = tgt.availability()
    if not availability.ok:
        pytest.skip(f"target {target_name} unavailable: {availability.reason}")
    logs = request.config.getoption("--target-logs")
    if logs:
        from hil.artifacts import target_slug
        tgt.log_dir = Path(logs) / target_slug(target_name)
    with tgt:
        yield tgt


@pytest.fixture
def base_url(target: Target) -> str:
    if not target.base_url:
        pytest.skip(f"target {target.name} has no network endpoint")
    return target.base_url


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*capabilities): capabilities the target must offer (serial, network, flash)")


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
