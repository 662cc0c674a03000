"""Board inventory: the documented example loads; every bad field is a one-line error naming board and field."""
from __future__ import annotations

from pathlib import Path

import pytest

from hil.errors import SetupError
from hil.inventory import load_inventory, load_inventory_if_present

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "boards.toml"
    path.write_text(text)
    return path


def test_example_inventory_loads_with_every_field() -> None:
    inventory = load_inventory(REPO / "boards.example.toml")
    devkit = inventory.board("esp32-devkit")
    assert devkit.chip == "esp32" and devkit.reset == "dtr-rts" and devkit.baud == 115200
    assert devkit.images[0].offset == 0x1000 and devkit.images[0].path.is_absolute()
    assert devkit.wifi is not None and devkit.wifi.password_env == "VHIL_WIFI_PASSWORD"
    lab = inventory.board("lab-s2")
    assert lab.port_is_url and lab.base_url == "http://127.0.0.1:8080"
    farm = inventory.board("farm-s3")
    assert farm.on_farm and dict(farm.tags) == {"chip": "esp32s3"} and farm.port is None
    assert inventory.board("bench-c3").place == "bench-c3"
    assert devkit.firmware == "micropython" and farm.firmware == "micropython"  # the default when not given


@pytest.mark.parametrize("entry, expected", [
    ('id = "b1"\nchip = "esp31"\nport = "/dev/x"', "board b1: field chip must be one of"),
    ('id = "b1"\nchip = "esp32"\nport = "/dev/x"\nbaud = "fast"', "board b1: field baud"),
    ('id = "b1"\nchip = "esp32"\nport = "/dev/x"\nreset = "pulse"', "board b1: field reset"),
    ('id = "b1"\nchip = "esp32"', "board b1: field port is missing"),
    ('id = "b1"\nchip = "esp32"\nport = "/dev/x"\nbase_url = "ftp://x"', "board b1: field base_url"),
    ('id = "b1"\nchip = "esp32"\nport = "/dev/x"\ncolour = "red"', "board b1: field colour is not known"),
    ('id = "b1"\nchip = "esp32"\nport = "/dev/x"\n[board.wifi]\nssid_env = "S"\npassword = "hunter22"',
     "board b1: field wifi.password must not hold a literal secret"),
    ('id = "b1"\nchip = "esp32"\nport = "/dev/x"\n[board.wifi]\nssid_env = "my ssid"', "board b1: field wifi.ssid_env"),
    ('id = "b1"\nchip = "esp32"\nport = "/dev/x"\n[board.flash]\nimages = [{offset = "zz", file = "f.bin"}]',
     "board b1: field flash.images[1].offset"),
    ('id = "bad id"\nchip = "esp32"', "board #1: field id"),
    ('id = "b1"\nchip = "esp32"\nport = "/dev/x"\nfirmware = "circuitpython"',
     "board b1: field firmware must be one of micropython, viperhttp"),
])
def test_bad_entries_name_board_and_field(tmp_path: Path, entry: str, expected: str) -> None:
    with pytest.raises(SetupError) as raised:
        load_inventory(write(tmp_path, "[[board]]\n" + entry + "\n"))
    message = str(raised.value)
    assert expected in message and "\n" not in message


def test_duplicate_ids_and_bad_toml(tmp_path: Path) -> None:
    board = '[[board]]\nid = "b1"\nchip = "esp32"\nport = "/dev/x"\n'
    with pytest.raises(SetupError, match="board b1: id is used twice"):
        load_inventory(write(tmp_path, board + board))
    with pytest.raises(SetupError, match="not valid TOML"):
        load_inventory(write(tmp_path, "[[board]\n"))
    with pytest.raises(SetupError, match="not found: pass --boards"):
        load_inventory(tmp_path / "missing.toml")


def test_unknown_board_lists_the_known_ones(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, '[[board]]\nid = "b1"\nchip = "esp32"\nport = "/dev/x"\n'))
    with pytest.raises(SetupError, match=r"board 'b9' is not in .*boards there: b1"):
        inventory.board("b9")


def test_inventory_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VHIL_BOARDS", raising=False)
    assert load_inventory_if_present(None) is None  # no file anywhere: no boards, not an error
    path = write(tmp_path, '[[board]]\nid = "b1"\nchip = "esp32"\nport = "/dev/x"\n')
    assert [b.id for b in load_inventory_if_present(None).boards] == ["b1"]  # ./boards.toml
    other = tmp_path / "other.toml"
    other.write_text('[[board]]\nid = "b2"\nchip = "esp32"\nport = "/dev/y"\n')
    monkeypatch.setenv("VHIL_BOARDS", str(other))
    assert [b.id for b in load_inventory_if_present(None).boards] == ["b2"]
    assert [b.id for b in load_inventory_if_present(path).boards] == ["b1"]  # --boards wins
