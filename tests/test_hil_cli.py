"""`vhil targets` and `vhil hil ...` as users and CI call them: real subprocesses, real sim/QEMU, real ptys."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from conftest import simulated_board

from hil.targets.qemu_microbit import FIRMWARE

VHIL = [sys.executable, "-m", "hil"]
QEMU_MISSING = shutil.which("qemu-system-arm") is None or not FIRMWARE.is_file()


def vhil(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VHIL, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture
def panicking_pty(tmp_path: Path) -> Iterator[str]:
    """An arbitrary pty whose board prints an ESP-IDF panic when code runs (the sim, started by hand)."""
    with simulated_board(tmp_path / "fs", faults="panic-on-exec") as board:
        yield board.pty


def test_exec_prints_output_on_sim() -> None:
    result = vhil("hil", "exec", "--target", "sim", "print(6*7)")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42\n"


def test_exec_traceback_exits_1_naming_it() -> None:
    result = vhil("hil", "exec", "--target", "sim", "import nosuchmodule")
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith("traceback: ImportError: no module named 'nosuchmodule'") or first.startswith(
        "traceback: ModuleNotFoundError"), result.stderr
    assert "Traceback (most recent call last):" in result.stderr


def test_board_on_arbitrary_pty_panicking_makes_exec_exit_1_with_panic(tmp_path: Path, panicking_pty: str) -> None:
    boards = tmp_path / "boards.toml"
    boards.write_text(f'[[board]]\nid = "bench"\nchip = "esp32"\nport = "{panicking_pty}"\nreset = "soft"\n')
    result = vhil("hil", "exec", "--target", "board:bench", "--boards", str(boards), "print(1)")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("panic: Guru Meditation Error: Core  1 panic'ed (LoadProhibited)"), result.stderr
    assert any("Backtrace: 0x400d719f:0x3ffbf0f0" in line for line in lines[1:])


@pytest.mark.skipif(shutil.which("addr2line") is None or not Path("/bin/true").is_file(), reason="needs binutils")
def test_inventory_elf_and_addr2line_decode_the_backtrace(tmp_path: Path, panicking_pty: str) -> None:
    """The wiring from the inventory to the decoder (a host ELF: the addresses resolve to ??, but through addr2line)."""
    boards = tmp_path / "boards.toml"
    boards.write_text(f'[[board]]\nid = "bench"\nchip = "esp32"\nport = "{panicking_pty}"\nreset = "soft"\n'
                      'elf = "/bin/true"\naddr2line = "addr2line"\n')
    result = vhil("hil", "exec", "--target", "board:bench", "--boards", str(boards), "print(1)")
    assert result.returncode == 1 and result.stderr.startswith("panic: ")
    decoded = result.stderr.split("decoded backtrace:", 1)[1].splitlines()
    assert int(decoded[1].split(":")[0], 16) == 0x400D719F  # one line per frame, in backtrace order


def test_brownout_loop_is_reported_and_does_not_hang() -> None:
    result = vhil("hil", "exec", "--target", "sim", "print(1)", env={"VHIL_SIM_FAULTS": "brownout-loop"}, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("brownout: "), result.stderr
    assert "loop" in result.stderr.splitlines()[0]


def test_hung_board_is_reported_as_hang() -> None:
    code = "import time\ntime.sleep(8)\nprint(1)"  # the board hangs (hang-after=3) while this runs
    result = vhil("hil", "exec", "--target", "sim", "--timeout", "6", code, env={"VHIL_SIM_FAULTS": "hang-after=3"},
                  timeout=90)
    assert result.returncode == 1
    # normally during the exec ("the board stopped answering"); on a very loaded machine possibly before it
    assert result.stderr.startswith("hang: "), result.stderr


def test_code_outrunning_its_timeout_is_interrupted() -> None:
    result = vhil("hil", "exec", "--target", "sim", "--timeout", "1", "while True: pass")
    assert result.returncode == 1
    assert result.stderr.startswith("timeout: the code was still running after 1 s"), result.stderr


def test_setup_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "boards.toml"
    bad.write_text('[[board]]\nid = "b1"\nchip = "esp99"\nport = "/dev/null"\n')
    for args in (("hil", "exec", "--target", "board:b1", "--boards", str(bad), "1"),
                 ("targets", "--boards", str(bad)),
                 ("hil", "exec", "--target", "host", "1"),
                 ("hil", "exec", "--target", "nonsense", "1")):
        result = vhil(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    result = vhil("hil", "exec", "--target", "sim", "1", env={"VHIL_SIM_FAULTS": "explode"})
    assert result.returncode == 2 and "VHIL_SIM_FAULTS: unknown fault 'explode'" in result.stderr


def test_targets_table_lists_kinds_capabilities_and_reasons(tmp_path: Path) -> None:
    boards = tmp_path / "boards.toml"
    boards.write_text('[[board]]\nid = "gone"\nchip = "esp32"\nport = "/dev/serial/by-id/vhil-not-here"\n')
    result = vhil("targets", "--boards", str(boards), env={"COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 4}
    assert "sim" in rows and "serial" in rows["sim"] and "yes" in rows["sim"]
    assert "no: qemu-system-xtensa" in rows["qemu-esp32"] or "no: " in rows["qemu-esp32"]
    assert "board:gone" in rows and "not present" in rows["board:gone"]


def test_deploy_explicit_paths_verified(tmp_path: Path) -> None:
    payload = tmp_path / "app"
    payload.mkdir()
    (payload / "a.py").write_text("A = 1\n")
    (payload / "b.bin").write_bytes(bytes(range(256)))
    result = vhil("hil", "deploy", "--target", "sim", str(payload))
    assert result.returncode == 0, result.stderr
    assert "/app/a.py\t6 bytes" in result.stdout and "/app/b.bin\t256 bytes" in result.stdout
    assert result.stdout.count("verified") == 2


def test_flash_skipped_without_images(tmp_path: Path) -> None:
    boards = tmp_path / "boards.toml"
    boards.write_text('[[board]]\nid = "b1"\nchip = "esp32"\nport = "socket://127.0.0.1:9"\n')
    result = vhil("hil", "flash", "--target", "board:b1", "--boards", str(boards))
    assert result.returncode == 0 and "flash skipped" in result.stdout and "no flash.images" in result.stdout
    result = vhil("hil", "flash", "--target", "sim")
    assert result.returncode == 2 and "only board:<id>" in result.stderr


@pytest.mark.skipif(QEMU_MISSING, reason="needs apt packages qemu-system-arm firmware-microbit-micropython")
def test_exec_on_qemu_microbit_prints_42() -> None:
    result = vhil("hil", "exec", "--target", "qemu-microbit", "print(6*7)")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42\n"


@pytest.mark.skipif(QEMU_MISSING, reason="needs apt packages qemu-system-arm firmware-microbit-micropython")
def test_deploy_4k_file_to_qemu_microbit_arrives_intact(tmp_path: Path) -> None:
    source = tmp_path / "blob4k.py"  # a 4 KiB text file: the micro:bit's flat filesystem takes /name only
    source.write_text(("# " + "x" * 61 + "\n") * 64)
    assert source.stat().st_size == 4096
    result = vhil("hil", "deploy", "--target", "qemu-microbit", str(source), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "/blob4k.py\t4096 bytes\tsum:" in result.stdout and "verified" in result.stdout


def test_run_reports_a_panic_after_n_seconds_with_its_backtrace() -> None:
    result = vhil("hil", "run", "--target", "sim", "--duration", "30", env={"VHIL_SIM_FAULTS": "panic-after=5"})
    assert result.returncode == 1
    assert result.stdout.startswith("http://127.0.0.1:")  # the URL came first; then the board panicked
    lines = result.stderr.splitlines()
    first = next(line for line in lines if not line.startswith(("deploying", "DUT app ready")))
    assert first.startswith("panic: Guru Meditation Error"), result.stderr
    assert "backtrace (not decoded" in result.stderr


def test_noise_and_slow_boot_do_not_break_the_runner() -> None:
    result = vhil("hil", "exec", "--target", "sim", "print('ok')", env={"VHIL_SIM_FAULTS": "noise,slow-boot=1.5"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_monitor_shows_the_console_and_exits_1_on_a_panic() -> None:
    result = vhil("hil", "monitor", "--target", "sim", "--duration", "20", env={"VHIL_SIM_FAULTS": "panic-after=1"})
    assert result.returncode == 1
    assert "Guru Meditation Error" in result.stdout  # the console, as it came
    # events are announced as they come ([vhil] reset: ... when the power-on was seen); the crash ends it
    summary = [line for line in result.stderr.splitlines() if not line.startswith("[vhil] ")]
    assert summary[0].startswith("panic: Guru Meditation Error"), result.stderr


def test_monitor_stops_after_its_duration() -> None:
    result = vhil("hil", "monitor", "--target", "sim", "--duration", "1")
    assert result.returncode == 0, result.stderr
