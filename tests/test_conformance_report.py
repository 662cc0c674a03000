"""The Autobahn report parser on both engines' layouts, and the wstest fuzzingclient spec."""
from __future__ import annotations

import asyncio
import json
import shlex
import sys
from pathlib import Path

import kosoku
import pytest
from kosoku._report import write_reports

from _servers_conformance import running
from conformance.autobahn_report import read_report
from conformance.engines import EngineRun, KosokuEngine, Selection, WstestEngine, batches, select_cases, wstest_spec
from conformance.results import FAILED, INFORMATIONAL, OK, UNIMPLEMENTED
from hil.errors import SetupError


def kosoku_results(port: int, cases: list[str]) -> list:
    async def run() -> list:
        try:
            return await kosoku.run_fuzzingclient(f"ws://127.0.0.1:{port}/ws/autobahn", cases=cases)
        except kosoku.FailureError as failure:
            return failure.results
    return asyncio.run(run())


def test_kosoku_layout_reads_back_as_the_in_memory_results(tmp_path):
    with running("raw", "--ignore-rsv") as server:
        raw = kosoku_results(server.port, ["1.1.1", "3.1", "7.1.6"])
    write_reports(raw, str(tmp_path), produce_html=False)
    agent, parsed = read_report(tmp_path)
    assert agent == "broken-raw/1"  # the Server header
    engine = KosokuEngine()
    assert parsed == [engine._to_result(r) for r in raw]
    by_id = {r.case_id: r for r in parsed}
    assert by_id["1.1.1"].outcome == OK and by_id["1.1.1"].remote_close_code == 1000
    assert by_id["1.1.1"].description and by_id["1.1.1"].expectation and by_id["1.1.1"].duration_ms is not None
    assert (tmp_path / by_id["1.1.1"].report_file).exists()
    assert by_id["3.1"].behavior == FAILED and by_id["3.1"].behavior_close == "FAILED BY CLIENT"
    assert "differ" in by_id["3.1"].result_text
    assert by_id["7.1.6"].outcome == INFORMATIONAL


def _wstest_case(case_id: str, behavior: str, behavior_close: str, remote_code: int | None, result: str,
                 result_close: str) -> dict:
    """A per-case report with the keys autobahn-testsuite 0.10.9's fuzzing client writes."""
    return {
        "agent": "vhil-target", "behavior": behavior, "behaviorClose": behavior_close, "case": 1,
        "closedByMe": True, "createStats": True, "createWirelog": True,
        "description": f"Description of {case_id}", "droppedByMe": True, "duration": 3,
        "expectation": f"Expectation of {case_id}", "expected": {"OK": []}, "expectedClose": {
            "closeCode": [1000], "closedByMe": True, "requireClean": True},
        "failedByMe": False, "httpRequest": "GET /ws/autobahn HTTP/1.1\r\n", "httpResponse": "HTTP/1.1 101 Switching Protocols\r\n",
        "id": case_id, "isServer": False, "localCloseCode": 1000, "localCloseReason": None, "received": [],
        "remoteCloseCode": remote_code, "remoteCloseReason": None, "reportCompressionRatio": False,
        "reportTime": False, "result": result, "resultClose": result_close, "rxFrameStats": {}, "rxOctetStats": {},
        "started": "2026-11-26T08:00:00.000Z", "trafficStats": None, "txFrameStats": {}, "txOctetStats": {},
        "wasClean": True, "wasCloseHandshakeTimeout": False, "wasNotCleanReason": None,
        "wasOpenHandshakeTimeout": False, "wasServerConnectionDropTimeout": False, "wirelog": [],
    }


def write_wstest_layout(outdir: Path) -> None:
    cases = {
        "1.1.1": ("OK", "OK", 1000, "Actual events match at least one expected.", "Connection was properly closed"),
        "5.1": ("OK", "WRONG CODE", 1002, "Actual events match at least one expected.",
                "The close code should have been 1000 or empty"),
        "6.3.1": ("FAILED", "FAILED BY CLIENT", None, "Actual events differ from any expected.",
                  "It is preferred that the server close the TCP connection"),
        "7.1.6": ("INFORMATIONAL", "INFORMATIONAL", 1000, "Close was processed before text message could be returned.",
                  "Connection was properly closed"),
        "12.1.1": ("UNIMPLEMENTED", "OK", 1000, "Actual events differ from any expected.", "Connection was properly closed"),
    }
    index = {"vhil-target": {}}
    for case_id, (behavior, close, code, result, result_close) in cases.items():
        report = f"vhiltarget_case_{case_id.replace('.', '_')}.json"
        index["vhil-target"][case_id] = {"behavior": behavior, "behaviorClose": close, "duration": 3,
                                         "remoteCloseCode": code, "reportfile": report}
        (outdir / report).write_text(json.dumps(_wstest_case(case_id, behavior, close, code, result, result_close),
                                                indent=3, sort_keys=True))
    # a case whose per-case file is gone: index.json alone still carries its verdict
    index["vhil-target"]["2.2"] = {"behavior": "OK", "behaviorClose": "OK", "duration": 1, "remoteCloseCode": 1000,
                                   "reportfile": "vhiltarget_case_2_2.json"}
    (outdir / "index.json").write_text(json.dumps(index, indent=3, sort_keys=True))


def test_wstest_layout(tmp_path):
    write_wstest_layout(tmp_path)
    agent, parsed = read_report(tmp_path, WstestEngine.AGENT)
    assert agent == "vhil-target"
    assert [r.case_id for r in parsed] == ["1.1.1", "2.2", "5.1", "6.3.1", "7.1.6", "12.1.1"]  # numeric order
    by_id = {r.case_id: r for r in parsed}
    assert by_id["1.1.1"].outcome == OK and by_id["1.1.1"].description == "Description of 1.1.1"
    assert by_id["5.1"].outcome == FAILED and by_id["5.1"].remote_close_code == 1002  # messages OK, close wrong
    assert "1000 or empty" in by_id["5.1"].what_was_seen()
    assert by_id["6.3.1"].outcome == FAILED and by_id["6.3.1"].remote_close_code is None
    assert by_id["7.1.6"].outcome == INFORMATIONAL and by_id["12.1.1"].outcome == UNIMPLEMENTED
    assert by_id["2.2"].outcome == OK and by_id["2.2"].description == "" and by_id["2.2"].duration_ms == 1


def test_report_errors_are_one_line_setup_errors(tmp_path):
    with pytest.raises(SetupError, match="no Autobahn report at .*index.json"):
        read_report(tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(SetupError, match="unreadable Autobahn report"):
        read_report(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"a": {}, "b": {}}))
    with pytest.raises(SetupError, match="several agents"):
        read_report(tmp_path)
    with pytest.raises(SetupError, match="no agent 'c'"):
        read_report(tmp_path, "c")


def test_wstest_spec_and_command(tmp_path):
    spec = wstest_spec("ws://127.0.0.1:9001/ws/autobahn", "vhil-target", tmp_path / "autobahn", ["1.*", "9.1.1"], ["9.1.*"])
    assert spec == {
        "options": {"failByDrop": False},
        "outdir": str(tmp_path / "autobahn"),
        "servers": [{"agent": "vhil-target", "url": "ws://127.0.0.1:9001/ws/autobahn"}],
        "cases": ["1.*", "9.1.1"],
        "exclude-cases": ["9.1.*"],
        "exclude-agent-cases": {},
    }
    assert wstest_spec("ws://h:1/", "a", tmp_path, None, None)["cases"] == ["*"]
    python = shlex.quote(sys.executable)
    appended = WstestEngine(f"{python} -m wstest")
    assert appended.command(tmp_path / "s.json") == [sys.executable, "-m", "wstest", "-m", "fuzzingclient", "-s",
                                                     str(tmp_path / "s.json")]
    placeholder = WstestEngine(f"{python} run --spec={{spec}} --mode fuzzingclient")
    assert placeholder.command(tmp_path / "s.json") == [sys.executable, "run", f"--spec={tmp_path / 's.json'}",
                                                        "--mode", "fuzzingclient"]


def test_wstest_engine_writes_the_spec_and_reads_what_the_command_wrote(tmp_path):
    # The command stands in for wstest (not installable here) only by copying a wstest-layout report into the
    # spec's outdir: it proves the spec handed over and the report read back are the ones the engine expects.
    fixture = tmp_path / "fixture"
    fixture.mkdir()
    write_wstest_layout(fixture)
    copier = tmp_path / "copier.py"
    copier.write_text("import json, shutil, sys\nspec = json.load(open(sys.argv[-1]))\n"
                      f"shutil.copytree({str(fixture)!r}, spec['outdir'])\n")
    engine = WstestEngine(f"{shlex.quote(sys.executable)} {shlex.quote(str(copier))}")
    batches_seen: list[list] = []
    run = EngineRun()
    engine.run("ws://127.0.0.1:9/ws/autobahn", Selection(("1.*",), ("9.*",), []), 1, 30, tmp_path,
               lambda batch: batches_seen.append(batch) or True, run)
    assert run.stopped_early is None and run.agent == "vhil-target"
    spec = json.loads((tmp_path / "fuzzingclient.json").read_text())
    assert spec["cases"] == ["1.*"] and spec["exclude-cases"] == ["9.*"]
    assert spec["outdir"] == str((tmp_path / "autobahn").resolve())
    assert [r.case_id for r in batches_seen[0]] == ["1.1.1", "2.2", "5.1", "6.3.1", "7.1.6", "12.1.1"]


def test_case_selection_and_batches():
    catalogue = ["1.1.1", "1.1.2", "9.1.1", "9.1.2", "9.2.1", "10.1.1", "12.1.1"]
    assert select_cases(catalogue, ["9.1.*", "10.1.1"], None) == ["9.1.1", "9.1.2", "10.1.1"]
    assert select_cases(catalogue, None, ["9.*", "12.*"]) == ["1.1.1", "1.1.2", "10.1.1"]
    with pytest.raises(SetupError, match="matches no Autobahn case"):
        select_cases(catalogue, ["9.9"], None)
    # section 9 runs one case at a time whatever --parallel says
    assert batches(catalogue, 2) == [(["1.1.1", "1.1.2"], 2), (["9.1.1", "9.1.2", "9.2.1"], 1), (["10.1.1", "12.1.1"], 2)]


def test_autobahn_url_keeps_a_given_path_and_appends_the_route_otherwise():
    from conformance.runner import autobahn_url
    from hil.targets import resolve_target

    assert autobahn_url(resolve_target("url:ws://127.0.0.1:8765")) == "ws://127.0.0.1:8765/ws/autobahn"
    assert autobahn_url(resolve_target("url:ws://127.0.0.1:8765/")) == "ws://127.0.0.1:8765/ws/autobahn"
    assert autobahn_url(resolve_target("url:ws://127.0.0.1:8765/echo?x=1")) == "ws://127.0.0.1:8765/echo?x=1"
