"""`vhil matrix --labels L` / `--targets 'board:*'`: board cells run at once, each on a free matching board,
never two on one board; the index says which board ran which cell."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from conftest import simulated_board
from hil.farm.shard import run_sharded
from hil.sim.sessions import read_sessions


@dataclass
class _Cell:
    target: str
    suite: str


@dataclass
class _Result:
    target: str
    suite: str
    board: str = ""


def test_cells_take_turns_on_each_board_and_use_all_of_them() -> None:
    busy: dict[str, int] = {}
    most: dict[str, int] = {}
    running = [0]
    peak = [0]
    guard = threading.Lock()

    def run(cell: _Cell) -> _Result:
        with guard:
            busy[cell.target] = busy.get(cell.target, 0) + 1
            most[cell.target] = max(most.get(cell.target, 0), busy[cell.target])
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with guard:
            busy[cell.target] -= 1
            running[0] -= 1
        return _Result(cell.target, cell.suite)

    cells = [_Cell("board:*", f"suite{i}") for i in range(6)]
    results = list(run_sharded(cells, ["board:a", "board:b", "board:c"], run, stop=lambda: None))
    assert sorted(r.suite for r in results) == [f"suite{i}" for i in range(6)]
    assert all(r.target == "board:*" and r.board in ("board:a", "board:b", "board:c") for r in results)
    assert set(most.values()) == {1}, "two cells ran on one board at once"
    assert peak[0] == 3, "the cells did not run concurrently over the free boards"


def test_matrix_shards_board_cells_over_the_labelled_boards(tmp_path: Path) -> None:
    with ExitStack() as stack:
        boards = {name: stack.enter_context(simulated_board(tmp_path / name, sessions=tmp_path / f"{name}.jsonl"))
                  for name in ("bench1", "bench2", "spare")}
        (tmp_path / "boards.toml").write_text("".join(
            f'[[board]]\nid = "{name}"\nchip = "esp32"\nport = "{sim.pty}"\nreset = "soft"\n'
            f'labels = [{json.dumps("bench") if name != "spare" else ""}]\n' for name, sim in boards.items()))
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "hil.cli", "matrix", "--boards", str(tmp_path / "boards.toml"),
                              "--labels", "bench", "--suites", "hil", "contract", "--reports", str(tmp_path / "reports")],
                             capture_output=True, text=True, timeout=240)
        elapsed = time.monotonic() - started
        time.sleep(0.3)  # the boards' recorders write the last close
    assert run.returncode == 0, run.stdout + run.stderr
    matrix = json.loads(next((tmp_path / "reports").glob("*/matrix.json")).read_text())
    ran_on = {c["suite"]: c["board"] for c in matrix["cells"]}
    assert sorted(ran_on) == ["contract", "hil"] and sorted(ran_on.values()) == ["board:bench1", "board:bench2"]
    assert all(c["target"] == "board:*" and c["status"] == "pass" for c in matrix["cells"]), matrix["cells"]
    sessions = {name: read_sessions(tmp_path / f"{name}.jsonl") for name in boards}
    assert sessions["spare"] == [], "a board without the label was used"
    assert all(s.overlaps == 0 for name in ("bench1", "bench2") for s in sessions[name])
    assert elapsed < sum(c["seconds"] for c in matrix["cells"]), "the two cells did not run at the same time"
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "board:* on board:bench1" in index and "board:* on board:bench2" in index
