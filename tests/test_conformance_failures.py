"""`vhil conformance` end to end against real servers: protocol breakers, unreachable and dying targets, Ctrl-C,
missing engines and bad usage. Every run goes through the CLI, real kosoku and real sockets on loopback."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from _servers_conformance import REPO, running, vhil

BREAKER_CASES = ("1.1.1", "3.*", "6.3.*")  # 1.1.1 must still pass; 3.x need RSV checks, 6.3.x UTF-8 validation
GATE_CASES = ("1.1.1", "3.1", "6.3.1")  # one case per rule, for the runs that exercise the baseline gate


def junit_failures(path: Path) -> dict[str, str]:
    root = ET.parse(path).getroot()
    return {case.get("name"): case.find("failure").get("message")
            for case in root.iter("testcase") if case.find("failure") is not None}


def junit_skipped(path: Path) -> set[str]:
    return {case.get("name") for case in ET.parse(path).getroot().iter("testcase") if case.find("skipped") is not None}


def test_protocol_breaker_fails_naming_cases(tmp_path):
    with running("raw", "--accept-invalid-utf8", "--ignore-rsv") as server:
        run = vhil("conformance", "--target", f"url:ws://127.0.0.1:{server.port}", "--cases", *BREAKER_CASES,
                   "--no-baseline", "--out", str(tmp_path))
    assert run.returncode == 1, run.stdout + run.stderr
    failures = junit_failures(tmp_path / "junit.xml")
    # 3.7 is a close frame with RSV bits: echoing the close passes whether or not the bits are checked
    assert set(failures) == {"3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "6.3.1", "6.3.2"}
    assert "FAILED" in failures["6.3.1"]
    for case_id in failures:
        assert f"REGRESSION {case_id}:" in run.stdout
    assert "REGRESSION 1.1.1" not in run.stdout and "REGRESSION 3.7" not in run.stdout
    details = {c.get("name"): c.find("failure").text for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
               if c.find("failure") is not None}
    assert details["6.3.1"].startswith("expected: ") and "\nseen: behavior FAILED" in details["6.3.1"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["holds"] is False
    assert summary["sections"]["3"] == {"FAILED": 6, "OK": 1} and summary["totals"]["OK"] == 2


def test_same_server_without_the_faults_holds(tmp_path):
    # the control for the test above: the failures come from the two broken rules, not from the server at large
    with running("raw") as server:
        run = vhil("conformance", "--target", f"url:ws://127.0.0.1:{server.port}", "--cases", *BREAKER_CASES,
                   "--no-baseline", "--out", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert junit_failures(tmp_path / "junit.xml") == {}


def test_baseline_accepts_known_failures_and_catches_new_ones(tmp_path):
    baseline = tmp_path / "breaker.json"
    with running("raw", "--ignore-rsv") as server:
        target = f"url:ws://127.0.0.1:{server.port}"
        update = vhil("conformance", "--target", target, "--cases", *GATE_CASES, "--baseline", str(baseline),
                      "--update-baseline", "--out", str(tmp_path / "update"))
        assert update.returncode == 0, update.stdout + update.stderr
        assert json.loads(baseline.read_text())["cases"]["3.1"] == "FAILED"
        again = vhil("conformance", "--target", target, "--cases", *GATE_CASES, "--baseline", str(baseline),
                     "--out", str(tmp_path / "again"))
        assert again.returncode == 0, again.stdout + again.stderr
    with running("raw", "--ignore-rsv", "--accept-invalid-utf8") as worse:
        regressed = vhil("conformance", "--target", f"url:ws://127.0.0.1:{worse.port}", "--cases", *GATE_CASES,
                         "--baseline", str(baseline), "--out", str(tmp_path / "worse"))
    assert regressed.returncode == 1
    assert set(junit_failures(tmp_path / "worse" / "junit.xml")) == {"6.3.1"}
    assert "REGRESSION 6.3.1: OK -> FAILED" in regressed.stdout
    with running("raw") as better:
        improved = vhil("conformance", "--target", f"url:ws://127.0.0.1:{better.port}", "--cases", *GATE_CASES,
                        "--baseline", str(baseline), "--out", str(tmp_path / "better"))
    assert improved.returncode == 0
    assert "improved 3.1: FAILED -> OK" in improved.stdout


def test_unreachable_target_is_a_one_line_error_within_10s(tmp_path):
    with running("raw") as server:
        port = server.port
    started = time.monotonic()
    run = vhil("conformance", "--target", f"url:ws://127.0.0.1:{port}", "--out", str(tmp_path))
    elapsed = time.monotonic() - started
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"ws://127.0.0.1:{port}/ws/autobahn" in lines[0], run.stderr
    assert elapsed < 10.0, f"took {elapsed:.1f} s"  # the interface promises the answer within 10 s


def test_target_dying_mid_run_reports_cases_so_far(tmp_path):
    baseline = tmp_path / "never-written.json"
    with running("raw", "--die-after", "10") as server:
        run = vhil("conformance", "--target", f"url:ws://127.0.0.1:{server.port}", "--cases", "1.*", "2.*",
                   "--baseline", str(baseline), "--update-baseline", "--out", str(tmp_path))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "run target died" in run.stdout and "baseline not updated" in run.stdout
    assert not baseline.exists()  # an incomplete run never becomes the accepted one
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "target died" and summary["holds"] is False
    assert summary["totals"]["OK"] == 10
    assert summary["totals"]["NOT RUN"] == 27 - 10
    assert summary["not_run"] == 17
    assert len(junit_skipped(tmp_path / "junit.xml")) == 17
    # kosoku may run a batch's cases in any order, so the 10 that ran are somewhere among the first 12 (3 batches)
    outcomes = [r["outcome"] for r in json.loads((tmp_path / "results.json").read_text())]
    assert outcomes[:12].count("OK") == 10 and set(outcomes[12:]) == {"NOT RUN"}


def test_ctrl_c_writes_partial_reports_and_stops_the_target(tmp_path):
    # 5.19/5.20 and 6.4.x hold their connection 1-2 s each and 9.x follow, so the run is still going when interrupted
    argv = [sys.executable, "-m", "hil", "conformance", "--target", "host", "--cases", "1.*", "5.19", "5.20", "6.4.*",
            "9.*", "--out", str(tmp_path)]
    proc = subprocess.Popen(argv, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    summary_path = tmp_path / "summary.json"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if summary_path.exists() and json.loads(summary_path.read_text())["totals"].get("OK", 0) >= 16:
                break
            time.sleep(0.1)
        else:
            pytest.fail("no partial summary within 60 s")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "interrupted"
    assert summary["totals"]["OK"] >= 16 and summary["totals"]["NOT RUN"] >= 1
    assert junit_skipped(tmp_path / "junit.xml")
    autobahn_index = json.loads((tmp_path / "autobahn" / "index.json").read_text())
    assert len(next(iter(autobahn_index.values()))) >= summary["totals"]["OK"]  # the cases run so far
    server_pid = summary["target"]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)


def test_kosoku_missing_is_a_setup_error(tmp_path):
    code = ("import sys; sys.modules['kosoku'] = None; from hil.cli import main; "
            f"sys.exit(main(['conformance', '--target', 'host', '--out', {str(tmp_path)!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "kosoku is not installed" in run.stderr and "pip install kosoku" in run.stderr


def test_wstest_missing_is_a_setup_error(tmp_path):
    run = vhil("conformance", "--target", "host", "--engine", "wstest", "--out", str(tmp_path),
               env={"PATH": os.path.dirname(sys.executable)})
    assert run.returncode == 2
    assert "'wstest' not found" in run.stderr and "--wstest-cmd" in run.stderr


@pytest.mark.parametrize("args, words", [
    (["--cases", "99.*"], "--cases '99.*' matches no Autobahn case"),
    (["--exclude", "*"], "--exclude removes every selected case"),
    (["--parallel", "0"], "--parallel 0"),
    (["--baseline", "/nonexistent/b.json"], "cannot read baseline /nonexistent/b.json"),
    (["--engine", "kosoku", "--wstest-cmd", "wstest"], "--wstest-cmd applies to --engine wstest only"),
])
def test_usage_errors_exit_2(tmp_path, args, words):
    run = vhil("conformance", "--target", "url:ws://127.0.0.1:9", *args, "--out", str(tmp_path))
    assert run.returncode == 2
    assert words in run.stderr and run.stderr.strip().count("\n") == 0, run.stderr


def test_outer_timeout_ends_the_run_with_the_rest_not_run(tmp_path):
    # 6.4.x keep their connection about 2 s each; a 3 s budget ends the run inside them
    with running("raw") as server:
        run = vhil("conformance", "--target", f"url:ws://127.0.0.1:{server.port}", "--cases", "1.1.1", "6.4.*",
                   "--parallel", "1", "--timeout", "3", "--no-baseline", "--out", str(tmp_path))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "run timed out" in run.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "timed out" and summary["totals"].get("NOT RUN", 0) >= 1
