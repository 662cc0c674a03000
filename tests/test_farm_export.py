"""Farm inventory entries (`place`, `tags`) and `vhil farm export`'s exporter config and place commands."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hil.errors import SetupError
from hil.farm.export import export_boards, farm_tags, udev_match
from hil.inventory import load_inventory


def _inventory(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "boards.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("entry, expected", [
    ('place = "a b"', "field place must be a labgrid place name"),
    ('tags = {}', "field tags must be a non-empty table"),
    ('tags = {Chip = "esp32"}', "field tags.Chip must be key"),
    ('tags = {chip = 3}', "field tags.chip must be key"),
    ('place = "p1"\ntags = {chip = "esp32"}', "port, place and tags exclude each other"),
    ('port = "/dev/ttyUSB0"\nplace = "p1"', "port, place and tags exclude each other"),
    ('port = "/dev/ttyUSB0"\napp_host = "http://x/"', "field app_host must be the address the DUT app listens on"),
])
def test_bad_farm_entries_name_board_and_field(tmp_path: Path, entry: str, expected: str) -> None:
    with pytest.raises(SetupError) as raised:
        load_inventory(_inventory(tmp_path, f'[[board]]\nid = "b1"\nchip = "esp32"\n{entry}\n'))
    assert str(raised.value).startswith("board b1: ") and expected in str(raised.value), str(raised.value)


def test_export_writes_exporter_config_and_place_commands(tmp_path: Path) -> None:
    by_id = "/dev/serial/by-id/usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001-if00-port0"
    path = _inventory(tmp_path, f'''
[[board]]
id = "devkit"
chip = "esp32"
port = "{by_id}"
labels = ["bench-a", "WROOM 32"]

[[board]]
id = "sim1"
chip = "esp32s3"
port = "/dev/pts/7"
baud = 921600

[[board]]
id = "remote"
chip = "esp32"
port = "rfc2217://10.0.0.2:4001"

[[board]]
id = "farm"
chip = "esp32"
tags = {{chip = "esp32"}}
''')
    run = subprocess.run([sys.executable, "-m", "hil.cli", "farm", "export", "--boards", str(path), "--exporter", "rack1",
                          "--out", str(tmp_path / "farm")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "skipped remote: rfc2217://10.0.0.2:4001 is already a network port" in run.stderr
    assert "skipped farm: already on the farm" in run.stderr
    config = yaml.safe_load((tmp_path / "farm" / "exporter.yaml").read_text())
    assert config == {
        "devkit": {"USBSerialPort": {"match": {"ID_SERIAL": "Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001",
                                               "ID_USB_INTERFACE_NUM": "00"}, "speed": 115200}},
        "sim1": {"RawSerialPort": {"port": "/dev/pts/7", "speed": 921600}},
    }
    script = (tmp_path / "farm" / "places.sh").read_text().splitlines()
    assert "labgrid-client -p devkit create" in script
    assert "labgrid-client -p devkit add-match rack1/devkit/NetworkSerialPort" in script
    assert "labgrid-client -p devkit set-tags chip=esp32 board=devkit bench_a=yes wroom_32=yes" in script
    assert "labgrid-client -p sim1 set-tags chip=esp32s3 board=sim1" in script
    inventory = load_inventory(path)
    assert farm_tags(inventory.board("sim1")) == {"chip": "esp32s3", "board": "sim1"}


def test_app_host_gives_a_board_the_network_without_wifi(tmp_path: Path) -> None:
    from hil.targets import resolve_target

    path = _inventory(tmp_path, '[[board]]\nid = "b1"\nchip = "esp32"\ntags = {chip = "esp32"}\napp_host = "127.0.0.1"\n')
    target = resolve_target("board:b1", path)
    assert target.has("network") and target.has("serial")
    assert target.dut_config() == {"host": "127.0.0.1", "port": 0}


def test_a_usb_port_without_udev_attributes_is_a_clear_error() -> None:
    with pytest.raises(SetupError, match="no udev serial attributes found"):
        udev_match("/dev/ttyUSB97")


def test_export_with_nothing_to_export_exits_2(tmp_path: Path) -> None:
    path = _inventory(tmp_path, '[[board]]\nid = "r"\nchip = "esp32"\nport = "socket://127.0.0.1:1"\n')
    run = subprocess.run([sys.executable, "-m", "hil.cli", "farm", "export", "--boards", str(path), "--out",
                          str(tmp_path / "farm")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no board in the inventory has a local serial port" in run.stderr
    assert not export_boards(load_inventory(path), "x").places
