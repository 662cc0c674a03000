"""The headline check: the full Autobahn suite against the reference framework holds against the committed baseline."""
from __future__ import annotations

import json

from _servers_conformance import vhil


def test_full_suite_on_host_holds_against_committed_baseline(tmp_path):
    run = vhil("conformance", "--target", "host", "--parallel", "4", "--out", str(tmp_path), timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["holds"] is True
    assert summary["selected"] == 517 and summary["baseline"].endswith("conformance/baselines/host.json")
    assert summary["totals"] == {"OK": 298, "INFORMATIONAL": 3, "UNIMPLEMENTED": 216}
    assert summary["agent"].startswith("ViperHTTP-reference/")
    assert (tmp_path / "autobahn" / "index.html").exists() and (tmp_path / "junit.xml").exists()
    assert "holds against baseline" in run.stdout
