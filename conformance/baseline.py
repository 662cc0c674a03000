"""Baselines: the accepted outcome per case for one target, and the comparison a run is judged by.

File `conformance/baselines/<target-slug>.json`:
    {"target": NAME, "engine": ..., "strict": BOOL, "cases": {case_id: outcome}}
`strict` false means the target is known to flip between OK and NON-STRICT from run to run (the echo may leave
before the protocol error is noticed), so a case moving between OK and NON-STRICT, either way, is reported as a
flip: neither a regression nor an improvement.
It is recorded true when the run that wrote the baseline had no NON-STRICT case at all; edit it to override.
An optional `"reasons": {case_id: text}` says why an accepted failure is accepted (reports show it).
The robustness suite keeps its baselines, in the same format, under `conformance/baselines/robustness/`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from hil.artifacts import atomic_write_text, target_slug
from hil.errors import SetupError
from conformance.results import ERROR, FAILED, NON_STRICT, NOT_RUN, OK, OUTCOMES, CaseResult, case_sort_key, rank

BASELINES_DIR = Path(__file__).resolve().parent / "baselines"


@dataclass(frozen=True)
class Baseline:
    cases: dict[str, str]
    strict: bool = True
    path: Path | None = None
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    case_id: str
    was: str | None  # None: the case is not in the baseline
    now: str


@dataclass
class Verdict:
    regressions: list[Change] = field(default_factory=list)
    improvements: list[Change] = field(default_factory=list)
    flips: list[Change] = field(default_factory=list)  # OK <-> NON-STRICT on a non-strict target: tolerated
    not_run: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.regressions and not self.not_run


def default_baseline_path(target_name: str, directory: Path = BASELINES_DIR) -> Path:
    return directory / f"{target_slug(target_name)}.json"


def load_baseline(path: Path) -> Baseline:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SetupError(f"cannot read baseline {path}: {exc.strerror or exc}; pass --no-baseline to judge without one") from None
    except ValueError as exc:
        raise SetupError(f"baseline {path} is not valid JSON ({exc}); fix it or rewrite it with --update-baseline") from None
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, dict):
        raise SetupError(f"baseline {path} has no \"cases\" object; rewrite it with --update-baseline")
    bad = sorted((cid for cid, outcome in cases.items() if outcome not in OUTCOMES or outcome == NOT_RUN), key=case_sort_key)
    if bad:
        raise SetupError(f"baseline {path}: case {bad[0]} has outcome {cases[bad[0]]!r}; use one of {', '.join(OUTCOMES[:-1])}")
    reasons = data.get("reasons", {})
    if not isinstance(reasons, dict) or not all(isinstance(text, str) for text in reasons.values()):
        raise SetupError(f"baseline {path}: \"reasons\" must map case ids to text")
    return Baseline(cases=dict(cases), strict=bool(data.get("strict", True)), path=Path(path), reasons=dict(reasons))


def write_baseline(path: Path, target_name: str, engine: str, results: Iterable[CaseResult],
                   previous: Baseline | None = None) -> None:
    """The run's outcomes become the accepted ones; cases this run did not select keep their previous entry."""
    ran = {result.case_id: result.outcome for result in results if result.outcome != NOT_RUN}
    cases = {**(previous.cases if previous else {}), **ran}
    strict = NON_STRICT not in cases.values()
    document = {
        "target": target_name,
        "engine": engine,
        "strict": strict,
        "cases": dict(sorted(cases.items(), key=lambda kv: case_sort_key(kv[0]))),
    }
    reasons = {cid: text for cid, text in (previous.reasons if previous else {}).items() if cid in cases}
    if reasons:
        document["reasons"] = reasons
    atomic_write_text(Path(path), json.dumps(document, indent=2) + "\n")  # cases in numeric order, for review diffs


def compare(results: Iterable[CaseResult], baseline: Baseline | None) -> Verdict:
    """Every case against its accepted outcome; without one (no baseline, or a case new to it) FAILED/ERROR regress."""
    verdict = Verdict()
    for result in sorted(results, key=lambda r: case_sort_key(r.case_id)):
        now = result.outcome
        if now == NOT_RUN:
            verdict.not_run.append(result.case_id)
            continue
        was = baseline.cases.get(result.case_id) if baseline else None
        if was is None:
            if now in (FAILED, ERROR):
                verdict.regressions.append(Change(result.case_id, None, now))
            continue
        if now == was or rank(now) == rank(was):
            continue
        change = Change(result.case_id, was, now)
        if baseline is not None and not baseline.strict and {was, now} == {OK, NON_STRICT}:
            verdict.flips.append(change)
        elif rank(now) > rank(was):
            verdict.regressions.append(change)
        else:
            verdict.improvements.append(change)
    return verdict
