"""Boards running ViperHTTP firmware: the simulated one (sim:viperhttp) gets only the DUT app, refuses a
/viperhttp package that would shadow its built-in module until `--clean` removes it, names its firmware, and
the contract suite names exactly its documented deviations (accepted by its committed baseline)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.baseline import load_baseline
from conformance.contract_runner import _judge, _case_rows, contract_baseline_path
from hil.dut_app import MICROPYTHON, VIPERHTTP, app_sources
from hil.errors import SetupError
from hil.inventory import load_inventory
from hil.targets import resolve_target
from hil.targets.board import BoardTarget

REPO = Path(__file__).resolve().parents[1]


def test_viperhttp_firmware_gets_the_dut_app_without_the_framework() -> None:
    on_micropython, on_viperhttp = app_sources(MICROPYTHON), app_sources(VIPERHTTP)
    assert any(path.startswith("/viperhttp/") for path in on_micropython)
    assert not any(path.startswith("/viperhttp") for path in on_viperhttp)
    assert {"/main.py", "/runtime_reference.py", "/runtime_viperhttp.py"} <= set(on_viperhttp)
    assert set(on_viperhttp) <= set(on_micropython)


def test_inventory_firmware_reaches_the_board_target(tmp_path: Path) -> None:
    boards = tmp_path / "boards.toml"
    boards.write_text('[[board]]\nid = "vh1"\nchip = "esp32s3"\nport = "/dev/null"\nfirmware = "viperhttp"\n')
    assert load_inventory(boards).board("vh1").firmware == VIPERHTTP
    target = resolve_target("board:vh1", boards)
    assert isinstance(target, BoardTarget) and target.firmware_kind == VIPERHTTP and target.board_id() == "vh1"
    listing = subprocess.run([sys.executable, "-m", "hil", "targets", "--boards", str(boards)], capture_output=True,
                             text=True, timeout=60, cwd=REPO)
    row = next(line for line in listing.stdout.splitlines() if "board:vh1" in line)
    assert "viperhttp" in row, listing.stdout


def test_a_viperhttp_package_on_the_board_is_refused_until_clean(tmp_path: Path) -> None:
    target = resolve_target("sim:viperhttp")
    target.log_dir = tmp_path
    target.start_app = False  # type: ignore[attr-defined]
    with target:
        firmware = target.details["firmware"]
        assert firmware["kind"] == VIPERHTTP and "viperhttp" in firmware["version"], firmware
        # what a deploy for plain MicroPython leaves behind
        target.deploy({"/viperhttp/__init__.py": b"SHADOW = 1\n", "/viperhttp/app.py": b"\n"})  # type: ignore[attr-defined]
        with pytest.raises(SetupError) as refused:
            target.deploy()  # type: ignore[attr-defined]
        message = str(refused.value)
        assert "/viperhttp" in message and "vhil hil deploy --clean" in message and "\n" not in message
        deployed = target.deploy(clean=True)  # type: ignore[attr-defined]
        assert not any(d.path.startswith("/viperhttp") for d in deployed)
        assert target.session().exec_ok(  # type: ignore[attr-defined]
            "import os\nprint('viperhttp' in os.listdir('/'))").strip() == "False"
        url = target.run_app()  # type: ignore[attr-defined]
        assert url.startswith("http://127.0.0.1:")


def test_contract_names_exactly_the_documented_deviations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = subprocess.run([sys.executable, "-m", "hil", "contract", "--target", "sim:viperhttp", "--no-baseline",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=240, cwd=REPO)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    rows = _case_rows(tmp_path / "contract-junit.xml")
    failed = {row[0] for row in rows if row[1] != "passed"}
    baseline = load_baseline(contract_baseline_path("sim:viperhttp"))
    judged_failed = {line.split(": ")[2] for line in run.stdout.splitlines() if line.startswith("contract sim:viperhttp: FAILED")}
    assert judged_failed == set(baseline.cases), run.stdout
    assert len(failed) == len(baseline.cases)
    assert all(baseline.reasons.get(case) for case in baseline.cases), "every accepted deviation gives its reason"
    assert "firmware under test: viperhttp 'v1.23.0-viperhttp-sim" in run.stdout
    # the same results judged against the committed baseline: accepted, and still listed as known
    assert _judge("sim:viperhttp", rows, baseline, baseline.path, update=False) == 0  # type: ignore[arg-type]
    known = [line for line in capsys.readouterr().out.splitlines() if "known deviation" in line]
    assert len(known) == len(baseline.cases)
    assert any("message shape" in line for line in known) and any("burst drop" in line for line in known)
    assert json.loads(contract_baseline_path("sim:viperhttp").read_text())["target"] == "sim:viperhttp"
