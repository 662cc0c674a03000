"""Baseline comparison: the outcome order, flips on non-strict targets, runs without a baseline, file handling."""
from __future__ import annotations

import json

import pytest

from conformance.baseline import Baseline, compare, default_baseline_path, load_baseline, write_baseline
from conformance.results import (ERROR, FAILED, INFORMATIONAL, NON_STRICT, NOT_RUN, OK, UNIMPLEMENTED, CaseResult,
                                 counts_by_section, not_run, rank)
from hil.errors import SetupError


def case(case_id: str, behavior: str, behavior_close: str = "OK") -> CaseResult:
    return CaseResult(case_id=case_id, behavior=behavior, behavior_close=behavior_close)


def test_outcome_order_and_error_counts_as_failed():
    order = [OK, NON_STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED]
    assert [rank(o) for o in order] == sorted(rank(o) for o in order) and len({rank(o) for o in order}) == 5
    assert rank(ERROR) == rank(FAILED)
    with pytest.raises(ValueError):
        rank(NOT_RUN)


def test_close_verdict_can_fail_a_case():
    assert case("7.1.5", OK, "WRONG CODE").outcome == FAILED
    assert case("7.1.6", INFORMATIONAL, "INFORMATIONAL").outcome == INFORMATIONAL
    assert case("12.1.1", UNIMPLEMENTED, "OK").outcome == UNIMPLEMENTED


def test_every_step_down_is_a_regression_and_every_step_up_an_improvement():
    baseline = Baseline(cases={"1": OK, "2": NON_STRICT, "3": INFORMATIONAL, "4": UNIMPLEMENTED, "5": FAILED})
    worse = compare([case("1", NON_STRICT), case("2", INFORMATIONAL), case("3", UNIMPLEMENTED),
                     case("4", FAILED), case("5", ERROR)], baseline)
    assert [(c.case_id, c.was, c.now) for c in worse.regressions] == [
        ("1", OK, NON_STRICT), ("2", NON_STRICT, INFORMATIONAL), ("3", INFORMATIONAL, UNIMPLEMENTED),
        ("4", UNIMPLEMENTED, FAILED)]  # 5: ERROR ranks as FAILED, so no change
    assert not worse.holds
    better = compare([case("2", OK), case("5", UNIMPLEMENTED), case("1", OK)], baseline)
    assert better.holds and not better.regressions
    assert [(c.case_id, c.was, c.now) for c in better.improvements] == [("2", NON_STRICT, OK), ("5", FAILED, UNIMPLEMENTED)]


def test_ok_non_strict_flip_is_tolerated_only_on_non_strict_targets():
    flip = [case("3.4", NON_STRICT)]
    strict = compare(flip, Baseline(cases={"3.4": OK}, strict=True))
    assert [c.case_id for c in strict.regressions] == ["3.4"] and not strict.holds
    loose = compare(flip, Baseline(cases={"3.4": OK}, strict=False))
    assert loose.holds and [c.case_id for c in loose.flips] == ["3.4"]
    back = compare([case("3.4", OK)], Baseline(cases={"3.4": NON_STRICT}, strict=False))
    assert back.holds and [c.case_id for c in back.flips] == ["3.4"] and not back.improvements
    # a non-strict target still may not fall further
    assert not compare([case("3.4", FAILED)], Baseline(cases={"3.4": OK}, strict=False)).holds


def test_without_baseline_only_failed_and_error_fail():
    verdict = compare([case("1.1.1", OK), case("3.1", NON_STRICT), case("12.1.1", UNIMPLEMENTED),
                       case("7.1.6", INFORMATIONAL)], None)
    assert verdict.holds
    verdict = compare([case("1.1.1", OK), case("6.3.1", FAILED), case("6.3.2", ERROR)], None)
    assert [(c.case_id, c.was) for c in verdict.regressions] == [("6.3.1", None), ("6.3.2", None)]
    # a case new to an existing baseline is judged the same way
    assert not compare([case("9.9.9", FAILED)], Baseline(cases={"1.1.1": OK})).holds


def test_not_run_cases_never_hold():
    verdict = compare([case("1.1.1", OK), not_run("1.1.2")], Baseline(cases={"1.1.1": OK, "1.1.2": OK}))
    assert verdict.not_run == ["1.1.2"] and not verdict.holds and not verdict.regressions


def test_write_and_load_round_trip(tmp_path):
    path = tmp_path / "t.json"
    write_baseline(path, "host", "kosoku", [case("1.1.2", OK), case("1.1.10", OK), case("12.1.1", UNIMPLEMENTED),
                                            not_run("2.1")])
    data = json.loads(path.read_text())
    assert list(data["cases"]) == ["1.1.2", "1.1.10", "12.1.1"] and data["strict"] is True
    loaded = load_baseline(path)
    assert loaded.cases == {"1.1.2": OK, "1.1.10": OK, "12.1.1": UNIMPLEMENTED} and loaded.strict
    # a partial run updates its cases and keeps the others; a NON-STRICT outcome marks the target not strict
    write_baseline(path, "host", "kosoku", [case("1.1.2", NON_STRICT)], loaded)
    again = load_baseline(path)
    assert again.cases == {"1.1.2": NON_STRICT, "1.1.10": OK, "12.1.1": UNIMPLEMENTED} and not again.strict


@pytest.mark.parametrize("content, words", [
    ("{", "not valid JSON"),
    ('{"target": "host"}', 'no "cases" object'),
    ('{"cases": {"1.1.1": "GREAT"}}', "case 1.1.1 has outcome 'GREAT'"),
    ('{"cases": {"1.1.1": "NOT RUN"}}', "case 1.1.1 has outcome 'NOT RUN'"),
])
def test_bad_baseline_files(tmp_path, content, words):
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(SetupError, match=words):
        load_baseline(path)


def test_committed_host_baseline_matches_the_reference_expectation():
    baseline = load_baseline(default_baseline_path("host"))
    assert baseline.strict
    results = [case(case_id, outcome) for case_id, outcome in baseline.cases.items()]
    counts = counts_by_section(results)
    assert len(results) == 517
    for section in ("1", "2", "3", "4", "5", "6", "9", "10"):
        assert set(counts[section]) == {OK}, (section, counts[section])
    assert counts["7"] == {OK: 34, INFORMATIONAL: 3}
    assert {c for c, o in baseline.cases.items() if o == INFORMATIONAL} == {"7.1.6", "7.13.1", "7.13.2"}
    assert set(counts["12"]) == {UNIMPLEMENTED} and set(counts["13"]) == {UNIMPLEMENTED}
