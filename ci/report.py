"""`vhil report`: the index of every run under the reports root, whichever command wrote it.

A run is a folder reports/<run-id>/ holding one or more cells <target>/<suite>/, each with the run.json and
summary.json every suite writes (hil/runinfo.py); a `vhil matrix` run adds matrix.json (cells it could not run).
The index shows, for each target x suite: its latest status and numbers (the matrix), which cases changed outcome
over its last runs (regressed, improved, newly failing, flaky) with a link to the case's report in each run, and
its headline numbers over runs as plots. A change beyond a threshold is called out; `--fail-on-regression` then
exits 1. index.html is static and stays small with hundreds of runs: per-case data only for cases that changed.
"""
from __future__ import annotations

import argparse
import calendar
import hashlib
import html
import itertools
import json
import shutil
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.artifacts import (
    REPORTS_ROOT,
    atomic_write_json,
    atomic_write_text,
    target_slug,
)
from hil.errors import SetupError
from hil.runinfo import FAILING_OUTCOMES, OUTCOME_RANK, RUN_FILE, SUMMARY_FILE

CASE_HISTORY_RUNS = 10  # per-case history looks this many runs back per target x suite
TREND_BASELINE_RUNS = 5  # a number is judged against the median of this many earlier runs
TRENDS_DIR = "trends"
STATUS_COLORS = {"pass": "#2e9e44", "fail": "#d43c3c", "error": "#8b1e1e", "timeout": "#b05f00",
                 "unavailable": "#9e9e9e", "interrupted": "#777777", "unfinished": "#c7a600"}
# a cell's main page first; the index links the first one its folder has, and the rest under it
REPORT_PAGES = ("report.html", "contract.html", "hil.html", "robustness.html", "autobahn/index.html",
                "latency_over_time.png", "latency_vs_subscribers.png", "summary.json", "junit.xml",
                "contract-junit.xml", "run.json", "cell.log")
SUITE_ORDER = ("conformance", "contract", "hil", "load", "robustness")  # matrix columns; others follow by name
EXIT_STATUSES = {0: "pass", 1: "fail", 2: "error", 130: "interrupted"}


@dataclass(frozen=True)
class TrendRule:
    better: str  # "lower" or "higher"
    relative: float  # worse than the earlier runs' median by more than this fraction ...
    absolute: float  # ... and by more than this much, in the number's unit


# Headline numbers the index judges (others are plotted only). Prefix match: mem_free_after_boot -> mem_free.
# Case counts are not judged here: the per-case history names the cases themselves.
TRENDS = {
    "p50_ms": TrendRule("lower", 0.5, 2.0), "p95_ms": TrendRule("lower", 0.25, 2.0),
    "p99_ms": TrendRule("lower", 0.5, 5.0), "delivered_per_s": TrendRule("higher", 0.2, 0.0),
    "delivery_ratio": TrendRule("higher", 0.0, 1e-6), "wall_time_s": TrendRule("lower", 0.5, 5.0),
    "boot_to_ready_s": TrendRule("lower", 0.25, 0.5), "deploy_s": TrendRule("lower", 0.25, 0.5),
    "target_rss_after_bytes": TrendRule("lower", 0.2, 1 << 20), "mem_free": TrendRule("higher", 0.1, 1024),
}
PLOTTED_NUMBERS = 6  # panels per plot: judged numbers first


def trend_rule(name: str) -> TrendRule | None:
    return TRENDS.get(name) or next((rule for prefix, rule in TRENDS.items() if name.startswith(prefix)), None)


@dataclass
class Cell:
    run_id: str
    target: str
    suite: str
    status: str
    folder: Path
    started: str = ""
    seconds: float | None = None
    reason: str = ""
    shard: str = ""  # a matrix cell sharded over a farm: the target pattern it was run for (board:*)
    run: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.target} / {self.suite}"

    @property
    def label(self) -> str:
        return f"{self.shard} on {self.key}" if self.shard else self.key

    def outcomes(self) -> dict[str, str]:
        return {case["id"]: case["outcome"] for case in self.summary.get("cases", []) if isinstance(case, dict)}

    def case_reports(self) -> dict[str, str]:
        return {case["id"]: case["report"] for case in self.summary.get("cases", [])
                if isinstance(case, dict) and case.get("report")}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent, or being written right now: the cell shows what else it has


def _status(run: dict[str, Any], summary: dict[str, Any]) -> str:
    if run.get("exit_status") is not None:
        return EXIT_STATUSES.get(run["exit_status"], "error")
    if run:
        return "unfinished"  # started, never finished: still running, or killed without a word
    holds = summary.get("holds")
    return "unfinished" if holds is None else "pass" if holds else "fail"


def _seconds(run: dict[str, Any]) -> float | None:
    """Wall time from run.json's start and end (whole seconds)."""
    try:
        started, finished = (calendar.timegm(time.strptime(run[key], "%Y-%m-%dT%H:%M:%SZ")) for key in ("started", "finished"))
    except (KeyError, TypeError, ValueError):
        return None
    return float(finished - started)


def _cell_folders(run_dir: Path) -> Iterator[Path]:
    """Cell folders of a run: <run>/<target>/<suite>/ (also a run.json directly under <run>/ or <run>/<x>/)."""
    seen = set()
    for pattern in ("*/*/", "*/", ""):
        for name in (RUN_FILE, SUMMARY_FILE):
            for path in run_dir.glob(pattern + name):
                if path.parent not in seen:
                    seen.add(path.parent)
                    yield path.parent


def load_run(run_dir: Path) -> list[Cell]:
    matrix = _read_json(run_dir / "matrix.json") or {}
    cells: dict[Path, Cell] = {}
    for folder in _cell_folders(run_dir):
        run = _read_json(folder / RUN_FILE) or {}
        summary = _read_json(folder / SUMMARY_FILE) or {}
        if not isinstance(run, dict) or not isinstance(summary, dict):
            continue
        target = run.get("target") or (summary.get("target") or {}).get("name") or folder.parent.name
        suite = run.get("suite") or summary.get("suite") or folder.name
        cells[folder.resolve()] = Cell(run_dir.name, target, suite, _status(run, summary), folder,
                                       run.get("started") or "", _seconds(run), run=run, summary=summary)
    for entry in matrix.get("cells", []):  # the matrix knows what it could not run, and each cell's exit status
        target = entry.get("board") or entry["target"]  # a cell sharded over a farm ran on, and is filed under, a board
        folder = run_dir / target_slug(target) / entry["suite"]
        cell = cells.get(folder.resolve())
        if cell is None:
            cell = cells[folder.resolve()] = Cell(run_dir.name, target, entry["suite"], entry["status"],
                                                  folder, matrix.get("started", ""))
        cell.status, cell.seconds, cell.reason = entry["status"], entry.get("seconds"), entry.get("reason", "")
        cell.shard = entry["target"] if entry.get("board") else ""
    return sorted(cells.values(), key=lambda c: (c.target, c.suite))


def load_runs(root: Path) -> list[tuple[str, list[Cell]]]:
    """Every run under root that holds a cell, oldest first (run ids start with their UTC time)."""
    runs = []
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != TRENDS_DIR):
        cells = load_run(run_dir)
        if cells:
            runs.append((run_dir.name, cells))
    return runs


def prune(root: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` runs; returns the run ids removed."""
    runs = load_runs(root)
    removed = [run_id for run_id, _ in runs[:max(0, len(runs) - keep)]]
    for run_id in removed:
        shutil.rmtree(root / run_id)
    return removed


# --- history ------------------------------------------------------------------------------------------------------
def _rank(outcome: str | None) -> int | None:
    return OUTCOME_RANK.get(outcome) if outcome is not None else None


def classify(outcomes: list[str | None]) -> list[str]:
    """What a case did over its runs (oldest first; None where the run lacks it): regressed / improved (the latest
    run against the one before), newly failing (fails now, in no earlier run), flaky (its outcome went back)."""
    ranks = [_rank(o) for o in outcomes]
    kinds = []
    latest, previous = ranks[-1], ranks[-2] if len(ranks) > 1 else None
    if latest is not None and previous is not None:
        if latest > previous:
            kinds.append("regressed")
        elif latest < previous:
            kinds.append("improved")
    if outcomes[-1] in FAILING_OUTCOMES and len(outcomes) > 1 and not any(o in FAILING_OUTCOMES for o in outcomes[:-1]):
        kinds.append("newly failing")
    ranked = [r for r in ranks if r is not None]
    directions = [b > a for a, b in itertools.pairwise(ranked) if a != b]
    if any(a != b for a, b in itertools.pairwise(directions)):
        kinds.append("flaky")
    return kinds


def _link(cell: Cell, page: str, root: Path) -> str | None:
    """A link (relative to the index) to `page` in the cell's folder, when that file exists."""
    path = cell.folder / page.split("#", 1)[0]
    if not path.is_file():
        return None
    try:
        return (cell.folder.resolve().relative_to(root.resolve()) / page).as_posix()
    except ValueError:
        return (cell.folder.resolve() / page).as_uri()


def main_page(cell: Cell, root: Path) -> str | None:
    return next((link for link in (_link(cell, page, root) for page in REPORT_PAGES) if link), None)


def case_history(history: list[Cell], root: Path) -> list[dict[str, Any]]:
    """The cases that changed outcome over `history` (one target x suite, oldest first), with their links."""
    outcomes = [cell.outcomes() for cell in history]
    ids = dict.fromkeys(case_id for per_run in outcomes for case_id in per_run)
    changed = []
    for case_id in ids:
        seen = [per_run.get(case_id) for per_run in outcomes]
        kinds = classify(seen)
        if not kinds and len({o for o in seen if o is not None}) < 2:
            continue  # the same outcome in every run that has it
        links = []
        for cell, outcome in zip(history, seen):
            report = cell.case_reports().get(case_id)
            links.append(_link(cell, report, root) if report and outcome is not None else None)
        changed.append({"id": case_id, "kinds": kinds or ["changed"], "outcomes": seen, "links": links})
    order = {"regressed": 0, "newly failing": 1, "flaky": 2, "improved": 3, "changed": 4}
    changed.sort(key=lambda c: min(order[str(k)] for k in c["kinds"]))
    return changed


def number_changes(history: list[Cell]) -> list[dict[str, Any]]:
    """The latest run's numbers worse (or better) than the median of the earlier runs beyond their TRENDS rule."""
    latest = history[-1].summary.get("numbers") or {}
    changes = []
    for name, value in latest.items():
        rule = trend_rule(name)
        earlier = [c.summary.get("numbers", {}).get(name) for c in history[-1 - TREND_BASELINE_RUNS:-1]]
        earlier = [v for v in earlier if isinstance(v, (int, float))]
        if rule is None or not earlier or not isinstance(value, (int, float)):
            continue
        reference = statistics.median(earlier)
        delta = value - reference
        worse = delta > 0 if rule.better == "lower" else delta < 0
        if abs(delta) > max(rule.absolute, rule.relative * abs(reference)):
            changes.append({"number": name, "was": reference, "now": value, "kind": "regressed" if worse else "improved"})
    return changes


# --- the index ----------------------------------------------------------------------------------------------------
def build_index(root: Path, runs: list[tuple[str, list[Cell]]]) -> dict[str, Any]:
    by_key: dict[str, list[Cell]] = {}
    for _, cells in runs:
        for cell in cells:
            by_key.setdefault(cell.key, []).append(cell)
    groups = []
    for key, history in sorted(by_key.items()):
        latest = history[-1]
        previous = history[-2] if len(history) > 1 else None
        window = [c for c in history if c.summary][-CASE_HISTORY_RUNS:]
        cases = case_history(window, root) if len(window) > 1 else []
        numbers = number_changes([c for c in history if c.summary]) if latest.summary else []
        regressions = [f"case {c['id']}: {c['outcomes'][-2]} -> {c['outcomes'][-1]}" for c in cases if "regressed" in c["kinds"]]
        regressions += [f"{n['number']}: {n['was']:g} -> {n['now']:g}" for n in numbers if n["kind"] == "regressed"]
        if previous is not None and previous.status == "pass" and latest.status in ("fail", "error", "timeout"):
            regressions.insert(0, f"status: {previous.status} -> {latest.status}")
        groups.append({
            "key": key, "target": latest.target, "suite": latest.suite, "latest_run": latest.run_id,
            "previous_run": previous.run_id if previous else None, "status": latest.status, "reason": latest.reason,
            "seconds": latest.seconds, "firmware": latest.run.get("firmware"), "counts": latest.summary.get("counts", {}),
            "numbers": latest.summary.get("numbers", {}), "page": main_page(latest, root),
            "pages": [link for link in (_link(latest, page, root) for page in REPORT_PAGES) if link],
            "case_runs": [c.run_id for c in window], "cases": cases, "number_changes": numbers,
            "regressions": regressions,
            "series": {"runs": [c.run_id for c in history if c.summary],
                       "numbers": _series([c for c in history if c.summary])},
        })
    run_rows = []
    for run_id, cells in reversed(runs):
        first = cells[0].run
        run_rows.append({"run_id": run_id, "started": min((c.started for c in cells if c.started), default=""),
                         "commit": first.get("commit"), "host": first.get("host"),
                         "cells": [{"key": c.label, "status": c.status, "page": main_page(c, root),
                                    "firmware": c.run.get("firmware")} for c in cells]})
    return {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "latest": runs[-1][0],
            "groups": groups, "runs": run_rows,
            "regressions": [{"key": g["key"], "what": r} for g in groups for r in g["regressions"]]}


def _series(history: list[Cell]) -> dict[str, list[float | None]]:
    names = dict.fromkeys(name for cell in history for name in cell.summary.get("numbers", {}))
    return {name: [cell.summary.get("numbers", {}).get(name) for cell in history] for name in names}


def write_index(root: Path = REPORTS_ROOT, keep: int | None = None) -> dict[str, Any] | None:
    root = Path(root)
    if not root.is_dir():
        return None
    if keep is not None:
        prune(root, keep)
    runs = load_runs(root)
    if not runs:
        return None
    index = build_index(root, runs)
    previous = _read_json(root / "index.json") or {}
    plotted = {g["key"]: g.get("plot_digest") for g in previous.get("groups", []) if isinstance(g, dict)}
    for group in index["groups"]:
        write_trend_plot(root, group, plotted.get(group["key"]))
    atomic_write_json(root / "index.json", index)
    atomic_write_text(root / "index.html", render(index))
    return index


# --- trend plots --------------------------------------------------------------------------------------------------
def write_trend_plot(root: Path, group: dict[str, Any], previous_digest: str | None) -> None:
    """trends/<target>-<suite>.png: one panel per headline number over runs, each scaled to its own data.
    Redrawn only when its data changed (the digest is kept in index.json)."""
    series = group["series"]
    numbers = {k: v for k, v in series["numbers"].items() if sum(x is not None for x in v) >= 1}
    names = sorted(numbers, key=lambda n: (trend_rule(n) is None, n))[:PLOTTED_NUMBERS]
    if len(series["runs"]) < 2 or not names:
        group["plot"] = None
        return
    flagged = {c["number"] for c in group["number_changes"] if c["kind"] == "regressed"}
    data = {"runs": series["runs"], "numbers": {n: numbers[n] for n in names}, "flagged": sorted(flagged)}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    relative = f"{TRENDS_DIR}/{target_slug(group['target'])}-{group['suite']}.png"
    group["plot"], group["plot_digest"] = relative, digest
    if digest == previous_digest and (root / relative).is_file():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(names))
    rows = (len(names) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.4 * rows), squeeze=False)
    xs = list(range(1, len(series["runs"]) + 1))
    for axis, name in zip(axes.flat, names):
        points = [(x, y) for x, y in zip(xs, numbers[name]) if y is not None]
        colour = "#d43c3c" if name in flagged else "#1f6feb"
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, color=colour, linewidth=1.4)
        axis.plot([points[-1][0]], [points[-1][1]], marker="o", markersize=6, color=colour)
        rule = trend_rule(name)
        axis.set_title(name + (f" ({rule.better} is better)" if rule else ""), fontsize=9,
                       color="#d43c3c" if name in flagged else "black")
        axis.margins(x=0.04, y=0.15)  # scaled to the data, whatever a limit elsewhere says
        axis.ticklabel_format(axis="y", useOffset=False, style="plain")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        axis.set_xlabel("run (oldest to newest)", fontsize=7)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.suptitle(f"{group['target']} / {group['suite']}: last {len(xs)} runs", fontsize=10)
    figure.tight_layout()
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp.png")
    figure.savefig(tmp, dpi=80)
    plt.close(figure)
    tmp.replace(path)


# --- the page -----------------------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#f6f7f9}
header{background:#1d2433;color:#fff;padding:14px 28px}header h1{margin:0;font-size:21px}header p{margin:4px 0 0;color:#b9c1d0;font-size:13px}
main{padding:8px 28px 40px;max-width:1400px}h2{font-size:17px;margin:26px 0 10px}
a{color:#0b5cd5;text-decoration:none}a:hover{text-decoration:underline}
.banner{border-radius:8px;padding:10px 16px;margin:16px 0;font-size:14px}
.bad{background:#fdecea;border:1px solid #f2b8b5}.good{background:#e8f5ea;border:1px solid #b6dcbc}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08);font-size:13px}
th,td{padding:6px 10px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top}th{background:#fafbfc;font-weight:600}
.matrix td.cell{min-width:170px;border-left:5px solid #ccc}
.chip{display:inline-block;color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600}
.num{color:#555;font-size:12px;line-height:1.5}.muted{color:#777;font-size:12px}
.strip a,.strip span{display:inline-block;width:13px;height:13px;margin-right:2px;border-radius:2px;vertical-align:middle}
.kind{font-size:11px;border-radius:3px;padding:1px 5px;margin-right:3px;color:#fff}
.regressed,.newly{background:#d43c3c}.improved{background:#2e9e44}.flaky{background:#b05f00}.changed{background:#777}
.plots{display:flex;flex-wrap:wrap;gap:14px}.plots figure{margin:0;background:#fff;padding:6px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.plots figcaption{font-size:12px;color:#555}.plots img{display:block;max-width:100%}
details summary{cursor:pointer}
"""
OUTCOME_COLORS = {0: "#2e9e44", 1: "#8bc34a", 2: "#9ccc65", 3: "#bdbdbd", 4: "#d43c3c"}


def _chip(status: str) -> str:
    return f'<span class="chip" style="background:{STATUS_COLORS.get(status, "#999")}">{html.escape(status)}</span>'


def _a(href: str | None, text: str, title: str = "") -> str:
    label = html.escape(text)
    if not href:
        return label
    return f'<a href="{html.escape(href)}"' + (f' title="{html.escape(title)}"' if title else "") + f">{label}</a>"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _matrix(groups: list[dict[str, Any]]) -> str:
    targets = list(dict.fromkeys(g["target"] for g in groups))
    suites = sorted(dict.fromkeys(g["suite"] for g in groups),
                    key=lambda s: (SUITE_ORDER.index(s) if s in SUITE_ORDER else len(SUITE_ORDER), s))
    by = {(g["target"], g["suite"]): g for g in groups}
    rows = []
    for target in targets:
        cells = []
        for suite in suites:
            group = by.get((target, suite))
            if group is None:
                cells.append("<td></td>")
                continue
            counts = ", ".join(f"{n} {o}" for o, n in group["counts"].items())
            numbers = "<br>".join(f"{html.escape(k)} <b>{_value(v)}</b>" for k, v in list(group["numbers"].items())[:5])
            firmware = group["firmware"] or {}
            fw = f'{firmware.get("impl") or ""} {firmware.get("version") or ""}'.strip()
            others = " ".join(_a(link, link.rsplit("/", 1)[-1]) for link in group["pages"][1:4])
            cells.append(
                f'<td class="cell" data-key="{html.escape(group["key"])}" style="border-left-color:{STATUS_COLORS.get(group["status"], "#999")}">'
                f'{_chip(group["status"])} {_a(group["page"], "report")}'
                + (f' <span class="chip regressed">{len(group["regressions"])} regression(s)</span>' if group["regressions"] else "")
                + f'<div class="num">{html.escape(counts)}</div><div class="num">{numbers}</div>'
                f'<div class="muted">{html.escape(group["reason"] or "")}</div>'
                f'<div class="muted">run {html.escape(group["latest_run"])}'
                + (f' · {group["seconds"]:.0f} s' if group["seconds"] is not None else "")
                + f'{" · " + html.escape(fw) if fw else ""}</div>'
                f'<div class="muted">{others}</div></td>')
        rows.append(f"<tr><th>{html.escape(target)}</th>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(s)}</th>" for s in suites)
    return f'<table class="matrix" id="matrix"><tr><th>target \\ suite</th>{head}</tr>{"".join(rows)}</table>'


def _strip(case: dict[str, Any], runs: list[str]) -> str:
    parts = []
    for run_id, outcome, link in zip(runs, case["outcomes"], case["links"]):
        colour = OUTCOME_COLORS.get(OUTCOME_RANK.get(outcome, -1), "#eee") if outcome else "#eee"
        title = f"{run_id}: {outcome or 'not in this run'}"
        style = f'style="background:{colour}" title="{html.escape(title)}"'
        parts.append(f'<a href="{html.escape(link)}" {style}></a>' if link else f"<span {style}></span>")
    return f'<span class="strip">{"".join(parts)}</span>'


def _changes(groups: list[dict[str, Any]]) -> str:
    sections = []
    for group in groups:
        if not group["cases"] and not group["number_changes"]:
            continue
        rows = []
        for case in group["cases"]:
            kinds = "".join(f'<span class="kind {k.split()[0]}">{k}</span>' for k in case["kinds"])
            now, was = case["outcomes"][-1], case["outcomes"][-2] if len(case["outcomes"]) > 1 else None
            latest_link = case["links"][-1]
            previous_link = case["links"][-2] if len(case["links"]) > 1 else None
            rows.append(f'<tr class="case" data-case="{html.escape(case["id"])}"><td>{kinds}</td><td><b>{html.escape(case["id"])}</b></td>'
                        f'<td>{_a(previous_link, str(was or "-"), "previous run")} &rarr; {_a(latest_link, str(now or "-"), "latest run")}</td>'
                        f"<td>{_strip(case, group['case_runs'])}</td></tr>")
        for change in group["number_changes"]:
            rows.append(f'<tr><td><span class="kind {change["kind"]}">{change["kind"]}</span></td><td><b>{html.escape(change["number"])}</b></td>'
                        f'<td>{_value(change["was"])} (median of earlier runs) &rarr; {_value(change["now"])}</td><td></td></tr>')
        sections.append(f'<h3>{html.escape(group["key"])} <span class="muted">over its last {len(group["case_runs"])} runs</span></h3>'
                        f'<table class="changes"><tr><th>what</th><th>case / number</th><th>previous &rarr; latest</th>'
                        f"<th>outcome per run (oldest first; click for that run's report)</th></tr>{''.join(rows)}</table>")
    return "".join(sections) or "<p>No case changed outcome and no number moved beyond its threshold.</p>"


def _runs(rows: list[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        cells = " ".join(f'{_chip(c["status"])} {_a(c["page"], c["key"])}' for c in row["cells"])
        firmware = {f'{c["firmware"].get("impl")} {c["firmware"].get("version")}' for c in row["cells"] if c["firmware"]}
        body.append(f'<tr><td>{html.escape(row["run_id"])}</td><td>{html.escape(row["started"] or "")}</td>'
                    f'<td>{html.escape(row["commit"] or "")}</td><td>{html.escape(", ".join(sorted(firmware)))}</td><td>{cells}</td></tr>')
    return ('<table id="runs"><tr><th>run</th><th>started (UTC)</th><th>commit</th><th>firmware</th><th>cells</th></tr>'
            + "".join(body) + "</table>")


def render(index: dict[str, Any]) -> str:
    groups, regressions = index["groups"], index["regressions"]
    if regressions:
        items = "".join(f"<li><b>{html.escape(r['key'])}</b>: {html.escape(r['what'])}</li>" for r in regressions)
        banner = f'<div class="banner bad" id="regressions"><b>{len(regressions)} regression(s) in the latest runs</b><ul>{items}</ul></div>'
    else:
        banner = '<div class="banner good" id="regressions">No regression in the latest runs.</div>'
    plots = "".join(f'<figure><img src="{html.escape(g["plot"])}" alt="{html.escape(g["key"])} over runs">'
                    f'<figcaption>{html.escape(g["key"])}</figcaption></figure>' for g in groups if g.get("plot"))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>ViperHTTP HIL reports</title><style>{CSS}</style></head><body>
<header><h1>ViperHTTP HIL reports</h1><p>{len(index["runs"])} runs · latest {html.escape(index["latest"])} · generated {html.escape(index["generated"])} · data: <a style="color:#b9c1d0" href="index.json">index.json</a></p></header>
<main>{banner}
<h2>Latest result per target and suite</h2>{_matrix(groups)}
<h2 id="changes">What changed</h2>{_changes(groups)}
<h2 id="trends">Trends</h2><div class="plots">{plots or "<p>Plots appear once a target and suite have two runs.</p>"}</div>
<h2>All runs</h2>{_runs(index["runs"])}
</main></body></html>
"""


def _run(args: argparse.Namespace) -> int:
    root = Path(args.reports)
    if args.keep is not None and args.keep < 1:
        raise SetupError(f"--keep {args.keep}: keep at least 1 run")
    index = write_index(root, args.keep)
    if index is None:
        raise SetupError(f"no runs under {root}: run a suite first, e.g. `vhil conformance --target host`")
    print(root / "index.html")
    for regression in index["regressions"]:
        print(f"regression: {regression['key']}: {regression['what']}")
    print(f"{len(index['runs'])} runs, {len(index['groups'])} target/suite pairs, {len(index['regressions'])} regression(s)")
    return 1 if args.fail_on_regression and index["regressions"] else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="index every run under the reports root: index.html and index.json",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", default=str(REPORTS_ROOT), metavar="DIR", help="reports root (default reports/)")
    parser.add_argument("--keep", type=int, default=None, metavar="N", help="delete all but the newest N runs first")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when the latest runs regressed (a case, a headline number beyond its threshold, a status)")
    parser.set_defaults(func=_run)
