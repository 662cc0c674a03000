"""The results model every part of the conformance harness shares: one `CaseResult` per Autobahn case.

Outcome of a case: the engine's `behavior`, except that a case whose messages passed but whose closing handshake
did not (behaviorClose WRONG CODE, UNCLEAN, FAILED BY CLIENT, FAILED) is FAILED, as kosoku's own `passed` and the
Autobahn report's red cells have it. ERROR (the engine could not run the case) ranks as FAILED.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable

OK, NON_STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED, ERROR = (
    "OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR")
NOT_RUN = "NOT RUN"  # selected but never run: the target died, the run timed out or was interrupted
OUTCOMES = (OK, NON_STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED, ERROR, NOT_RUN)  # display order
# best first; ERROR counts as FAILED; NOT RUN is not ranked (a run with NOT RUN cases never holds)
_RANK = {OK: 0, NON_STRICT: 1, INFORMATIONAL: 2, UNIMPLEMENTED: 3, FAILED: 4, ERROR: 4}
PASSING_CLOSE = ("OK", "INFORMATIONAL")


def rank(outcome: str) -> int:
    """Position in OK > NON-STRICT > INFORMATIONAL > UNIMPLEMENTED > FAILED (0 best); ValueError for others."""
    try:
        return _RANK[outcome]
    except KeyError:
        raise ValueError(f"not a rankable Autobahn outcome: {outcome!r}") from None


def case_sort_key(case_id: str) -> tuple[int, ...]:
    """1.2.10 after 1.2.9."""
    return tuple(int(part) if part.isdigit() else 0 for part in case_id.split("."))


def section_of(case_id: str) -> str:
    return case_id.split(".", 1)[0]


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    description: str = ""
    expectation: str = ""
    behavior: str = NOT_RUN
    behavior_close: str = ""
    duration_ms: float | None = None
    remote_close_code: int | None = None
    local_close_code: int | None = None
    result_text: str = ""  # the engine's words on `behavior` ("Actual events differ from any expected.")
    result_close_text: str = ""  # the engine's words on `behavior_close`
    report_file: str | None = None  # per-case JSON in the Autobahn report folder
    connected: bool = True  # False: the engine never got a handshake response (connection refused, reset, timed out)

    @property
    def section(self) -> str:
        return section_of(self.case_id)

    @property
    def outcome(self) -> str:
        if self.behavior in (OK, NON_STRICT, INFORMATIONAL) and self.behavior_close not in PASSING_CLOSE:
            return FAILED
        return self.behavior

    def what_was_seen(self) -> str:
        """The engine's account of a case, for failure texts and the terminal."""
        if self.behavior == NOT_RUN:
            return "not run"
        parts = [f"behavior {self.behavior}: {self.result_text}".rstrip(": "),
                 f"close {self.behavior_close}: {self.result_close_text}".rstrip(": ")]
        if self.remote_close_code is not None:
            parts.append(f"server close code {self.remote_close_code}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "section": self.section, "outcome": self.outcome}


def not_run(case_id: str, description: str = "", expectation: str = "") -> CaseResult:
    return CaseResult(case_id=case_id, description=description, expectation=expectation)


def counts_by_section(results: Iterable[CaseResult]) -> dict[str, dict[str, int]]:
    """{section: {outcome: n}} with sections in numeric order; only outcomes that occur."""
    counts: dict[str, Counter[str]] = {}
    for result in results:
        counts.setdefault(result.section, Counter())[result.outcome] += 1
    return {section: dict(sorted(counts[section].items(), key=lambda kv: OUTCOMES.index(kv[0])))
            for section in sorted(counts, key=case_sort_key)}


def totals(results: Iterable[CaseResult]) -> dict[str, int]:
    counter = Counter(result.outcome for result in results)
    return {outcome: counter[outcome] for outcome in OUTCOMES if counter[outcome]}
