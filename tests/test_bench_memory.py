"""`vhil bench memory` on the mpy VM, with fewer connections and echoes than the real run: each figure is
measured, and the measurement sees what it must (a 64 KiB message alive at the peak, connections costing heap)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hil import bench
from hil.targets.mpy import MpyTarget


@pytest.fixture
def short_run(monkeypatch: pytest.MonkeyPatch) -> None:
    if not MpyTarget(name="mpy").availability().ok:
        pytest.skip(MpyTarget(name="mpy").availability().reason)
    monkeypatch.setattr(bench, "IDLE_CONNECTIONS", 10)
    monkeypatch.setattr(bench, "ECHO_WARMUP", 50)
    monkeypatch.setattr(bench, "ECHO_MESSAGES", 300)


@pytest.mark.parametrize("app", ["viperhttp", "microdot"])
def test_every_figure_is_measured_on_the_vm(short_run: None, app: str) -> None:
    figures = bench.measure_app(app, progress=lambda line: None)
    assert set(figures) == set(bench.FIGURES)
    assert 10_000 < figures["import_bytes"] < 200_000
    assert 500 < figures["per_connection_bytes"] < 20_000  # a connection's objects are on the heap
    assert figures["peak_64k_echo_bytes"] >= bench.BIG_ECHO_BYTES  # the message itself was alive at the peak
    assert abs(figures["growth_after_10k_bytes"]) < 100_000


def test_budgets_compare_with_the_peer() -> None:
    ours = {"import_bytes": 39_000, "per_connection_bytes": 1_400, "growth_after_10k_bytes": 0, "peak_64k_echo_bytes": 1}
    verdicts = bench.budgets({"viperhttp": ours, "microdot": dict(ours, per_connection_bytes=1_300)})
    assert [v["holds"] for v in verdicts] == [True, True, True, False]


def test_only_the_mpy_target_has_a_heap_to_read(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "hil", "bench", "memory", "--target", "host", "--out",
                             str(tmp_path / "m.json")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "use --target mpy" in result.stderr
    assert not (tmp_path / "m.json").exists()
