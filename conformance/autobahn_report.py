"""The one reader of the Autobahn report layout, which both engines write:

    OUTDIR/index.json            {agent: {case_id: {behavior, behaviorClose, duration, remoteCloseCode, reportfile}}}
    OUTDIR/<agent>_case_<id>.json   per case: id, description, expectation, behavior, behaviorClose, result,
                                    resultClose, duration, remoteCloseCode, localCloseCode, ...

kosoku's in-memory results go through the same per-case translation (`case_from_report`) via the dict its report
writer would store, so there is one mapping from Autobahn's words to the results model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from conformance.results import CaseResult, case_sort_key
from hil.errors import SetupError


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def case_from_report(case: Mapping[str, Any], index_entry: Mapping[str, Any] | None = None) -> CaseResult:
    """A per-case report dict (file or kosoku's `case_to_dict`), with its index.json entry filling any gap."""
    entry = dict(index_entry or {})
    merged = {**entry, **{k: v for k, v in case.items() if v is not None}}
    duration = merged.get("duration")
    return CaseResult(
        case_id=str(merged["id"]),
        description=str(merged.get("description") or ""),
        expectation=str(merged.get("expectation") or ""),
        behavior=str(merged.get("behavior") or "ERROR"),
        behavior_close=str(merged.get("behaviorClose") or ""),
        duration_ms=float(duration) if isinstance(duration, (int, float)) else None,
        remote_close_code=_int_or_none(merged.get("remoteCloseCode")),
        local_close_code=_int_or_none(merged.get("localCloseCode")),
        result_text=str(merged.get("result") or ""),
        result_close_text=str(merged.get("resultClose") or ""),
        report_file=entry.get("reportfile") or None,
        connected=bool(merged.get("httpResponse", True)),
    )


def read_report(outdir: Path, agent: str | None = None) -> tuple[str, list[CaseResult]]:
    """(agent, results in case order) from an Autobahn report folder; SetupError when it is missing or malformed."""
    index_path = Path(outdir) / "index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SetupError(f"no Autobahn report at {index_path}: the engine wrote no index.json (see its output above)") from None
    except (OSError, ValueError) as exc:
        raise SetupError(f"unreadable Autobahn report {index_path}: {exc}") from None
    if not isinstance(index, dict) or not index:
        raise SetupError(f"Autobahn report {index_path} lists no agent: expected {{agent: {{case_id: ...}}}}")
    if agent is None:
        if len(index) > 1:
            raise SetupError(f"Autobahn report {index_path} holds several agents ({', '.join(sorted(index))}): name one")
        agent = next(iter(index))
    if agent not in index:
        raise SetupError(f"Autobahn report {index_path} has no agent {agent!r} (it has {', '.join(sorted(index))})")
    results = []
    for case_id, entry in index[agent].items():
        case: dict[str, Any] = {"id": case_id}
        report_file = entry.get("reportfile")
        if report_file:
            try:
                case.update(json.loads((Path(outdir) / report_file).read_text(encoding="utf-8")))
            except FileNotFoundError:
                pass  # index.json alone still carries the verdicts
            except (OSError, ValueError) as exc:
                raise SetupError(f"unreadable Autobahn case report {Path(outdir) / report_file}: {exc}") from None
        case["id"] = case_id
        results.append(case_from_report(case, entry))
    results.sort(key=lambda result: case_sort_key(result.case_id))
    return agent, results
