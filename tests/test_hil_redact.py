"""Wi-Fi passwords named in the inventory never appear in serial logs, CLI output or JUnit reports."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from conftest import simulated_board

from hil import redact as redaction
from hil.serial.console import SerialLog

SECRET = "correct-horse-battery-staple-42"
ENV = {"VHIL_TEST_WIFI_SSID": "lab-net", "VHIL_TEST_WIFI_PASSWORD": SECRET}


@pytest.fixture
def board_inventory(tmp_path: Path) -> Iterator[Path]:
    """An inventory board on a simulated board's pty, with Wi-Fi credentials from the environment."""
    with simulated_board(tmp_path / "fs") as board:
        boards = tmp_path / "boards.toml"
        boards.write_text(f'[[board]]\nid = "wifi-board"\nchip = "esp32"\nport = "{board.pty}"\nreset = "soft"\n'
                          'base_url = "http://127.0.0.1:9"\n'  # the app is not started: no port 80 on a host
                          '[board.wifi]\nssid_env = "VHIL_TEST_WIFI_SSID"\npassword_env = "VHIL_TEST_WIFI_PASSWORD"\n')
        yield boards


def test_serial_log_masks_a_secret_split_across_reads(tmp_path: Path) -> None:
    redaction.register_secret(SECRET)
    try:
        log = SerialLog(tmp_path / "serial.log")
        for piece in ("password=", SECRET[:7], SECRET[7:19], SECRET[19:] + "\r\n", "next line\r\n"):
            log.write(piece)
        log.close()
        text = (tmp_path / "serial.log").read_text()
        assert SECRET not in text and "password=***" in text and "next line" in text
        assert SECRET[:7] not in text  # not even the start of it
    finally:
        redaction.forget_all()


def test_password_never_reaches_cli_output_or_serial_log(tmp_path: Path, board_inventory: Path) -> None:
    env = dict(os.environ, **ENV)
    logs = tmp_path / "logs"
    base = [sys.executable, "-m", "hil", "hil"]
    deploy = subprocess.run([*base, "deploy", "--target", "board:wifi-board", "--boards", str(board_inventory),
                             "--logs", str(logs)], capture_output=True, text=True, env=env, timeout=90)
    assert deploy.returncode == 0, deploy.stderr
    assert "/dut_config.json" in deploy.stdout
    shown = subprocess.run([*base, "exec", "--target", "board:wifi-board", "--boards", str(board_inventory),
                            "--logs", str(logs), "print(open('/dut_config.json').read()); 1/0"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 1  # the traceback path is redacted too
    assert '"wifi_password": "***"' in shown.stdout and '"wifi_ssid": "lab-net"' in shown.stdout
    on_disk = (tmp_path / "fs" / "dut_config.json").read_text()
    assert SECRET in on_disk  # the board itself does get the password
    for text in (deploy.stdout, deploy.stderr, shown.stdout, shown.stderr, (logs / "serial.log").read_text()):
        assert SECRET not in text


def test_password_never_reaches_junit(tmp_path: Path, board_inventory: Path) -> None:
    (tmp_path / "test_inner.py").write_text(
        "def test_leaky(target):\n"
        "    target.deploy({'/x.txt': b'x'})\n"
        "    target.dut_config()\n"
        "    out = target.session().exec_ok(\"print(open('/dut_config.json').read())\")\n"
        "    assert False, 'config is ' + out + ' and ' + __import__('os').environ['VHIL_TEST_WIFI_PASSWORD']\n")
    # the config file must exist on the board for the inner test to print it
    (tmp_path / "fs" / "dut_config.json").write_text('{"wifi_password": "%s"}' % SECRET)
    junit = tmp_path / "junit.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--target",
                             "board:wifi-board", "--boards", str(board_inventory), f"--junitxml={junit}",
                             "--target-logs", str(tmp_path / "logs"), "test_inner.py"],
                            cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ, **ENV), timeout=90)
    report = junit.read_text()
    assert "test_leaky" in report and "<failure" in report, result.stdout
    assert "***" in report
    assert SECRET not in report and SECRET not in result.stdout
    assert SECRET not in (tmp_path / "logs" / "board-wifi-board" / "serial.log").read_text()
