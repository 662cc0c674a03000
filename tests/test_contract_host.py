"""`vhil contract`: passes on the reference (host), writes JUnit and its HTML page next to the Autobahn report,
and fails fast with exit status 2 on an unreachable target."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from _servers_conformance import running, vhil


def test_contract_passes_on_host(tmp_path):
    run = vhil("contract", "--target", "host", "--out", str(tmp_path), timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    cases = list(ET.parse(tmp_path / "contract-junit.xml").getroot().iter("testcase"))
    assert len(cases) >= 25 and all(c.find("failure") is None and c.find("error") is None for c in cases)
    page = (tmp_path / "contract.html").read_text()
    assert f"{len(cases)} passed" in page and "test_burst_of_1000_echoed_in_order" in page


def test_contract_failure_exits_1_and_the_page_names_it(tmp_path):
    with running("dut", "--fault", "echo-no-prefix") as server:
        run = vhil("contract", "--target", f"url:ws://127.0.0.1:{server.port}", "--out", str(tmp_path), "--",
                   "-k", "test_echo")
    assert run.returncode == 1, run.stdout[-3000:]
    page = (tmp_path / "contract.html").read_text()
    assert "failed" in page and "test_text_is_echoed_with_prefix" in page


def test_contract_unreachable_target_exits_2(tmp_path):
    with running("raw") as server:
        port = server.port
    run = vhil("contract", "--target", f"url:ws://127.0.0.1:{port}", "--out", str(tmp_path), timeout=60)
    assert run.returncode == 2
    assert f"http://127.0.0.1:{port}" in run.stdout + run.stderr


def test_contract_bad_target_name_is_a_one_line_error(tmp_path):
    run = vhil("contract", "--target", "nosuch", "--out", str(tmp_path))
    assert run.returncode == 2 and "unknown target 'nosuch'" in run.stderr and run.stderr.strip().count("\n") == 0
