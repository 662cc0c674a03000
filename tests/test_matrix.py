"""`vhil matrix` and `vhil report`: real cells in their own processes, the index, and the run-to-run diff."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def vhil(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hil.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_matrix_runs_cells_writes_index_and_diffs_runs(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    first = vhil("matrix", "--targets", "host", "qemu-esp32", "--suites", "contract", "--reports", str(reports), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    index = json.loads((reports / "index.json").read_text())
    cells = {(g["target"], g["suite"]): g for g in index["groups"]}
    assert cells[("host", "contract")]["status"] == "pass"
    assert cells[("host", "contract")]["page"].endswith("host/contract/contract.html")
    assert cells[("host", "contract")]["counts"]["passed"] >= 20  # the cell's numbers come from its summary.json
    unavailable = cells[("qemu-esp32", "contract")]
    assert unavailable["status"] == "unavailable" and unavailable["reason"]  # says why, never pretends to run
    page = (reports / "index.html").read_text()
    assert 'id="matrix"' in page and "contract.html" in page and cells[("host", "contract")]["previous_run"] is None

    second = vhil("matrix", "--targets", "host", "--suites", "contract", "--reports", str(reports), cwd=tmp_path)
    assert second.returncode == 0
    index = json.loads((reports / "index.json").read_text())
    host = next(g for g in index["groups"] if g["key"] == "host / contract")
    assert host["previous_run"] is not None and len(index["runs"]) == 2
    rebuilt = vhil("report", "--reports", str(reports), cwd=tmp_path)
    assert rebuilt.returncode == 0 and "index.html" in rebuilt.stdout


def test_matrix_rejects_an_unknown_suite_in_one_line(tmp_path: Path) -> None:
    result = vhil("matrix", "--suites", "nonsense", "--reports", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown suite 'nonsense'" in result.stderr


def test_report_without_runs_says_so(tmp_path: Path) -> None:
    result = vhil("report", "--reports", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "no runs under" in result.stderr and result.stderr.strip().count("\n") == 0
